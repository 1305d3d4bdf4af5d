package dev.medtune.model;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Autoregressive generation for a batch of prompts: prefill processes every prompt token in
 * batches of up to {@link Llama#maxRows()} rows (several prompts share a pass), then decode
 * runs one token per unfinished prompt per pass against the {@link KvCache}. Each prompt stops at
 * any EOS id of the config or after {@code maxNewTokens}; every produced token is handed to the
 * listener as soon as it is sampled (the EOS too, so callers see why a sequence ended).
 *
 * <p>Greedy decoding, and temperature sampling without top-k / top-p, pick the tokens where the
 * logits are when there is no repetition penalty ({@link Llama#forwardArgmax},
 * {@link Llama#forwardSample}: an int per prompt comes back, not 128,256 logits), with the host
 * {@link Sampler}'s meaning and its seeded uniforms. Top-k, top-p and the penalty copy the logits.
 */
public final class Generator {

  /** Receives tokens as they are produced. */
  public interface Listener {
    /** Token {@code token} was produced for prompt {@code prompt}; {@code eos} when it ends it. */
    void onToken(int prompt, int token, boolean eos);
  }

  /**
   * What a run produced and how fast.
   *
   * @param tokens the new tokens per prompt (an ending EOS included)
   * @param prefillTokens prompt tokens processed
   * @param prefillNanos time of the prefill passes
   * @param decodeTokens tokens produced by decode passes
   * @param decodeNanos time of the decode passes
   */
  public record Result(List<int[]> tokens, long prefillTokens, long prefillNanos,
      long decodeTokens, long decodeNanos) {

    public double prefillTokensPerSecond() {
      return prefillNanos == 0 ? 0 : prefillTokens * 1e9 / prefillNanos;
    }

    public double decodeTokensPerSecond() {
      return decodeNanos == 0 ? 0 : decodeTokens * 1e9 / decodeNanos;
    }
  }

  private final Llama model;
  private final KvCache cache;
  private boolean pickOnBackend = true;

  /** Generates with {@code model} using {@code cache} (one slot per prompt of a batch). */
  public Generator(Llama model, KvCache cache) {
    this.model = model;
    this.cache = cache;
  }

  /**
   * Whether greedy decoding and temperature sampling (without top-k, top-p or a repetition
   * penalty) pick tokens on the backend (the default) or copy the logits to the host sampler;
   * benchmarks compare the two.
   */
  public void pickOnBackend(boolean on) {
    pickOnBackend = on;
  }

  /**
   * Checks that {@code promptLength + maxNewTokens} fits the model's context and the cache, and
   * says which limit is broken otherwise.
   */
  public static void checkFits(LlamaConfig config, int promptLength, int maxNewTokens, int cacheLength) {
    long need = (long) promptLength + maxNewTokens;
    if (need > config.maxPositionEmbeddings()) {
      throw new IllegalArgumentException("prompt of " + promptLength + " tokens + " + maxNewTokens
          + " new tokens = " + need + " exceeds the model's context of "
          + config.maxPositionEmbeddings() + " tokens (max_position_embeddings);"
          + " shorten the prompt or lower --max-new-tokens");
    }
    if (need > cacheLength) {
      throw new IllegalArgumentException("prompt of " + promptLength + " tokens + " + maxNewTokens
          + " new tokens = " + need + " exceeds the KV cache of " + cacheLength + " positions");
    }
  }

  /** Generates up to {@code maxNewTokens} tokens after each prompt. */
  public Result generate(List<int[]> prompts, Sampler.Params params, int maxNewTokens, Listener listener) {
    LlamaConfig config = model.config();
    int n = prompts.size();
    if (n == 0) {
      return new Result(List.of(), 0, 0, 0, 0);
    }
    if (n > cache.slots() || n > model.maxLogitRows()) {
      throw new IllegalArgumentException(n + " prompts in one batch; this generator was planned for "
          + Math.min(cache.slots(), model.maxLogitRows()));
    }
    if (maxNewTokens < 1) {
      throw new IllegalArgumentException("max new tokens must be at least 1, found " + maxNewTokens);
    }
    for (int p = 0; p < n; p++) {
      int[] prompt = prompts.get(p);
      if (prompt.length == 0) {
        throw new IllegalArgumentException("prompt " + (p + 1) + " is empty (no tokens)");
      }
      checkFits(config, prompt.length, maxNewTokens, cache.maxLength());
    }
    int vocab = config.vocabSize();
    int maxRows = model.maxRows();
    int[] tokens = new int[maxRows];
    int[] slots = new int[maxRows];
    int[] positions = new int[maxRows];
    int[] logitRows = new int[n];
    int[] logitSeq = new int[n];
    boolean greedy = params.temperature() == 0;
    // on the backend: greedy, or temperature sampling without top-k / top-p; no repetition penalty
    boolean onDevice = pickOnBackend && params.repetitionPenalty() == 1
        && (greedy || params.topK() == 0 && params.topP() == 1);
    float[] logits = onDevice ? null : new float[n * vocab];
    int[] picked = new int[n];
    double[] uniforms = greedy || !onDevice ? null : new double[n];
    int[][] history = new int[n][];
    int[] length = new int[n];
    Sampler[] samplers = new Sampler[n];
    for (int p = 0; p < n; p++) {
      int[] prompt = prompts.get(p);
      history[p] = Arrays.copyOf(prompt, prompt.length + maxNewTokens);
      length[p] = prompt.length;
      samplers[p] = new Sampler(new Sampler.Params(params.temperature(), params.topK(), params.topP(),
          params.repetitionPenalty(), params.seed() + p), vocab);
    }
    List<int[]> produced = new ArrayList<>();
    int[] producedCount = new int[n];
    boolean[] done = new boolean[n];
    for (int p = 0; p < n; p++) {
      produced.add(new int[maxNewTokens]);
    }

    // prefill: all prompt tokens, packed into passes of up to maxRows rows
    long prefillTokens = 0;
    long t0 = System.nanoTime();
    int seq = 0;
    int pos = 0;
    while (seq < n) {
      int rows = 0;
      int logitCount = 0;
      while (rows < maxRows && seq < n) {
        int[] prompt = prompts.get(seq);
        tokens[rows] = prompt[pos];
        slots[rows] = seq;
        positions[rows] = pos;
        if (pos == prompt.length - 1) {
          logitRows[logitCount] = rows;
          logitSeq[logitCount++] = seq;
          seq++;
          pos = 0;
        } else {
          pos++;
        }
        rows++;
      }
      if (uniforms != null) {
        for (int i = 0; i < logitCount; i++) {
          uniforms[i] = samplers[logitSeq[i]].nextUniform();
        }
      }
      pass(tokens, slots, positions, rows, logitRows, logitCount, onDevice, logits, picked, samplers[0], uniforms);
      prefillTokens += rows;
      for (int i = 0; i < logitCount; i++) {
        accept(logitSeq[i], onDevice, picked[i], logits, i * vocab, samplers, history, length, produced,
            producedCount, done, maxNewTokens, config, listener);
      }
    }
    long prefillNanos = System.nanoTime() - t0;

    // decode: one token per unfinished prompt per pass
    long decodeTokens = 0;
    long t1 = System.nanoTime();
    while (true) {
      int rows = 0;
      for (int p = 0; p < n; p++) {
        if (!done[p]) {
          tokens[rows] = history[p][length[p] - 1];
          slots[rows] = p;
          positions[rows] = length[p] - 1;
          logitRows[rows] = rows;
          logitSeq[rows] = p;
          rows++;
        }
      }
      if (rows == 0) {
        break;
      }
      if (uniforms != null) {
        for (int i = 0; i < rows; i++) {
          uniforms[i] = samplers[logitSeq[i]].nextUniform();
        }
      }
      pass(tokens, slots, positions, rows, logitRows, rows, onDevice, logits, picked, samplers[0], uniforms);
      decodeTokens += rows;
      for (int i = 0; i < rows; i++) {
        accept(logitSeq[i], onDevice, picked[i], logits, i * vocab, samplers, history, length, produced,
            producedCount, done, maxNewTokens, config, listener);
      }
    }
    long decodeNanos = System.nanoTime() - t1;

    List<int[]> out = new ArrayList<>();
    for (int p = 0; p < n; p++) {
      out.add(Arrays.copyOf(produced.get(p), producedCount[p]));
    }
    return new Result(out, prefillTokens, prefillNanos, decodeTokens, decodeNanos);
  }

  /**
   * One forward pass: the tokens picked on the backend into {@code picked} (greedy, or drawn with
   * {@code uniforms}), or the logits to the host.
   */
  private void pass(int[] tokens, int[] slots, int[] positions, int rows, int[] logitRows, int logitCount,
      boolean onDevice, float[] logits, int[] picked, Sampler sampler, double[] uniforms) {
    if (onDevice && uniforms != null) {
      model.forwardSample(tokens, slots, positions, rows, cache, logitRows, logitCount, sampler.invTemperature(),
          uniforms, picked);
    } else if (onDevice) {
      model.forwardArgmax(tokens, slots, positions, rows, cache, logitRows, logitCount, picked);
    } else {
      model.forward(tokens, slots, positions, rows, cache, logitRows, logitCount, logits);
    }
  }

  private static void accept(int p, boolean onDevice, int pickedToken, float[] logits, int offset,
      Sampler[] samplers, int[][] history, int[] length, List<int[]> produced, int[] producedCount,
      boolean[] done, int maxNewTokens, LlamaConfig config, Listener listener) {
    int token = onDevice ? pickedToken : samplers[p].sample(logits, offset, history[p], length[p]);
    history[p][length[p]++] = token;
    produced.get(p)[producedCount[p]++] = token;
    boolean eos = config.isEos(token);
    if (eos || producedCount[p] == maxNewTokens) {
      done[p] = true;
    }
    listener.onToken(p, token, eos);
  }
}
