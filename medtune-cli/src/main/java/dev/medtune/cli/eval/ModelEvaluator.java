package dev.medtune.cli.eval;

import dev.medtune.data.McqQuestion;
import dev.medtune.data.PromptTemplate;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Generator;
import dev.medtune.model.KvCache;
import dev.medtune.model.Llama;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.Sampler;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.eval.ContinuationScorer;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import dev.medtune.model.train.LossOn;
import dev.medtune.model.train.SftExample;
import dev.medtune.model.train.TokenizedExample;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * Runs one model over a question set or a prepared validation set: tokenizes with the model's own
 * tokenizer, leaves out (and counts) what is longer than the model's context, plans the forward
 * buffers for the data at hand, and scores.
 *
 * <p>What is scored, exactly (log-likelihood method): the prompt is
 * {@code PromptTemplate.prompt(question)} tokenized with BOS ({@code add_special_tokens=True}); the
 * continuation of an option is the option's text followed by {@code "."}, tokenized on its own
 * without special tokens and appended to the prompt's tokens. The {@code "."} is the separator the
 * recipe's completion puts after the answer ({@code "{answer}. {explanation}"}), so an option is
 * scored as a whole answer, not as the prefix of a longer one. Tokenizing prompt and continuation
 * separately (as lm-evaluation-harness does) gives every option the same prompt tokens, which is
 * what lets the prompt be computed once.
 *
 * <p>Loss method: exactly training's tokenization and masking ({@link TokenizedExample} with
 * {@link LossOn#COMPLETION}): {@code BOS + tokens(prompt + completion) + EOS}, the text encoded
 * in one pass, the counted targets those from where the prompt's own ids stop matching the
 * text's, through the EOS ({@code eos_token} of {@code tokenizer_config.json}, else the config's
 * first {@code eos_token_id}). An example longer than the context is skipped and counted, where
 * training would truncate it.
 */
public final class ModelEvaluator implements AutoCloseable {
  /** Rows of logits held at once are capped to about this many floats (host and device each). */
  private static final long LOGIT_FLOATS = 16L << 20;
  /** The KV cache is capped to about this many bytes, but always holds one request. */
  private static final long CACHE_BYTES = 512L << 20;
  private static final int MAX_SLOTS = 64;

  private final String name;
  private final Checkpoint base;
  private final Checkpoint checkpoint;
  private final LlamaTokenizer tokenizer;
  private final Backend backend;
  private final PromptTemplate template;
  private final int batchTokens;
  private IntConsumer progress = n -> { };

  /**
   * Opens the model folder (config, weights, tokenizer).
   *
   * @param batchTokens tokens per forward pass (more are used when one request needs them)
   */
  public ModelEvaluator(Path modelDir, Backend backend, PromptTemplate template, int batchTokens) {
    this(modelDir, null, backend, template, batchTokens);
  }

  /**
   * Opens the model folder with a LoRA adapter (PEFT layout) merged into its projections in
   * memory; {@code adapterDir} null is the base model.
   */
  public ModelEvaluator(Path modelDir, Path adapterDir, Backend backend, PromptTemplate template,
      int batchTokens) {
    this.name = adapterDir == null ? modelDir.toString() : modelDir + " + " + adapterDir;
    this.base = Checkpoint.open(modelDir);
    try {
      this.checkpoint = dev.medtune.cli.Adapters.apply(base, adapterDir);
      this.tokenizer = LlamaTokenizer.load(modelDir);
    } catch (RuntimeException e) {
      base.close();
      throw e;
    }
    this.backend = backend;
    this.template = template;
    this.batchTokens = batchTokens;
  }

  /** Called with the number of questions or examples done so far, after each chunk. */
  public ModelEvaluator progress(IntConsumer progress) {
    this.progress = progress;
    return this;
  }

  public LlamaConfig config() {
    return checkpoint.config();
  }

  /** The continuation scored for an option: its text and the template's separator. */
  public static String continuation(String option) {
    return option + ".";
  }

  // ------------------------------------------------------------------ log-likelihood

  public McqRun loglik(List<McqQuestion> questions) {
    int context = config().maxPositionEmbeddings();
    List<McqQuestion> kept = new ArrayList<>();
    List<ContinuationScorer.Request> requests = new ArrayList<>();
    List<int[]> chars = new ArrayList<>();
    List<Skip> skipped = new ArrayList<>();
    for (McqQuestion q : questions) {
      int[] prompt = tokenizer.encode(template.prompt(q.question()), true);
      List<int[]> conts = new ArrayList<>();
      int[] c = new int[q.options().size()];
      for (int k = 0; k < c.length; k++) {
        String text = continuation(q.options().get(k));
        conts.add(tokenizer.encode(text, false));
        c[k] = text.codePointCount(0, text.length());
      }
      ContinuationScorer.Request r = new ContinuationScorer.Request(prompt, conts);
      if (r.length() > context) {
        skipped.add(new Skip(q.id(), longerThanContext(context)));
        continue;
      }
      kept.add(q);
      requests.add(r);
      chars.add(c);
    }
    List<QuestionResult> results = new ArrayList<>();
    if (requests.isEmpty()) {
      return new McqRun(name, "loglik", results, skipped, 0, 0, backend.description());
    }
    ContinuationScorer scorer = scorer(requests);
    long warm = warmUp(scorer, requests.get(0));
    long t0 = System.nanoTime();
    int chunk = 32;
    for (int i = 0; i < requests.size(); i += chunk) {
      List<ContinuationScorer.Request> part =
          requests.subList(i, Math.min(requests.size(), i + chunk));
      List<double[][]> lps = scorer.score(part);
      for (int j = 0; j < part.size(); j++) {
        double[][] lp = lps.get(j);
        List<OptionScore> scores = new ArrayList<>();
        for (int k = 0; k < lp.length; k++) {
          scores.add(new OptionScore(Arrays.stream(lp[k]).sum(), lp[k].length, chars.get(i + j)[k]));
        }
        results.add(QuestionResult.loglik(kept.get(i + j), scores));
      }
      progress.accept(results.size());
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    return new McqRun(name, "loglik", results, skipped, scorer.forwardTokens() - warm, seconds,
        backend.description());
  }

  /**
   * Scores one request untimed, so that tokens/s measures the steady state rather than the JIT
   * compiling the kernels; returns the tokens it ran.
   */
  private static long warmUp(ContinuationScorer scorer, ContinuationScorer.Request first) {
    long before = scorer.forwardTokens();
    scorer.score(List.of(first));
    return scorer.forwardTokens() - before;
  }

  private static String longerThanContext(int context) {
    return "longer than the context (" + context + " tokens)";
  }

  /** A scorer whose model buffers and cache are planned for these requests. */
  private ContinuationScorer scorer(List<ContinuationScorer.Request> requests) {
    LlamaConfig c = config();
    int maxLength = 0;
    int maxPrompt = 0;
    int maxPass2 = 1;
    int maxConts = 1;
    for (ContinuationScorer.Request r : requests) {
      maxLength = Math.max(maxLength, r.length());
      maxPrompt = Math.max(maxPrompt, r.prompt().length);
      int pass2 = 0;
      for (int[] t : r.continuations()) {
        pass2 += t.length - 1;
      }
      maxPass2 = Math.max(maxPass2, pass2);
      maxConts = Math.max(maxConts, r.continuations().size());
    }
    int maxRows = Math.max(batchTokens, Math.max(maxPrompt, maxPass2));
    int logitRows = (int) Math.max(maxPass2, Math.min(maxRows, LOGIT_FLOATS / c.vocabSize()));
    long slotBytes = 2L * c.numLayers() * maxLength * c.kvDim() * Float.BYTES;
    int slots = (int) Math.max(maxConts, Math.min(MAX_SLOTS, CACHE_BYTES / slotBytes));
    Llama model = new Llama(checkpoint, backend, maxRows, logitRows, maxLength);
    KvCache cache = model.newCache(slots);
    return new ContinuationScorer(model, cache);
  }

  // ------------------------------------------------------------------ greedy generation

  /** Greedy answers of up to {@code maxNewTokens} tokens, matched to the options. */
  public McqRun generate(List<McqQuestion> questions, int maxNewTokens) {
    int context = config().maxPositionEmbeddings();
    List<McqQuestion> kept = new ArrayList<>();
    List<int[]> prompts = new ArrayList<>();
    List<Skip> skipped = new ArrayList<>();
    int maxPrompt = 0;
    for (McqQuestion q : questions) {
      int[] prompt = tokenizer.encode(template.prompt(q.question()), true);
      if (prompt.length + maxNewTokens > context) {
        skipped.add(new Skip(q.id(), longerThanContext(context) + " with " + maxNewTokens
            + " new tokens"));
        continue;
      }
      kept.add(q);
      prompts.add(prompt);
      maxPrompt = Math.max(maxPrompt, prompt.length);
    }
    List<QuestionResult> results = new ArrayList<>();
    if (prompts.isEmpty()) {
      return new McqRun(name, "generate", results, skipped, 0, 0, backend.description());
    }
    LlamaConfig c = config();
    int maxLength = maxPrompt + maxNewTokens;
    long slotBytes = 2L * c.numLayers() * maxLength * c.kvDim() * Float.BYTES;
    int batch = (int) Math.max(1, Math.min(Math.min(16, LOGIT_FLOATS / c.vocabSize()),
        CACHE_BYTES / slotBytes));
    Llama model = new Llama(checkpoint, backend, Math.max(batchTokens, batch), batch, maxLength);
    Generator generator = new Generator(model, model.newCache(batch));
    // untimed warm-up (see warmUp)
    generator.generate(prompts.subList(0, 1), Sampler.Params.greedy(), 2, (p, token, eos) -> { });
    long tokens = 0;
    long t0 = System.nanoTime();
    for (int i = 0; i < prompts.size(); i += batch) {
      List<int[]> part = prompts.subList(i, Math.min(prompts.size(), i + batch));
      Generator.Result r = generator.generate(part, Sampler.Params.greedy(), maxNewTokens,
          (p, token, eos) -> { });
      tokens += r.prefillTokens() + r.decodeTokens();
      for (int j = 0; j < part.size(); j++) {
        int[] ids = r.tokens().get(j);
        int n = ids.length;
        if (n > 0 && c.isEos(ids[n - 1])) {
          n--;
        }
        String text = tokenizer.decode(Arrays.copyOf(ids, n), true);
        results.add(QuestionResult.generated(kept.get(i + j), text));
      }
      progress.accept(results.size());
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    return new McqRun(name, "generate", results, skipped, tokens, seconds, backend.description());
  }

  // ------------------------------------------------------------------ held-out loss

  /** The EOS appended to a completion: the tokenizer's {@code eos_token}, else the config's first. */
  public int eosId() {
    if (tokenizer.eosId() >= 0) {
      return tokenizer.eosId();
    }
    if (config().eosTokenIds().length == 0) {
      throw new IllegalArgumentException(name + ": neither tokenizer_config.json nor config.json"
          + " names an end-of-sequence token");
    }
    return config().eosTokenIds()[0];
  }

  public LossRun loss(List<SftExample> examples) {
    int context = config().maxPositionEmbeddings();
    int eos = eosId();
    int bos = tokenizer.bosId() >= 0 ? tokenizer.bosId() : config().bosTokenId();
    List<ContinuationScorer.Request> requests = new ArrayList<>();
    List<Skip> skipped = new ArrayList<>();
    for (SftExample ex : examples) {
      TokenizedExample t = TokenizedExample.of(ex, tokenizer::encode, bos, eos, LossOn.COMPLETION,
          Integer.MAX_VALUE);
      String id = "line " + ex.line();
      if (t.length() > context) {
        skipped.add(new Skip(id, longerThanContext(context)));
        continue;
      }
      if (t.counted() == 0) {
        skipped.add(new Skip(id, "no completion token to count"));
        continue;
      }
      // the counted targets are the tokens from position `first` on: the scorer's continuation
      int first = 0;
      while (t.targets()[first] == TokenizedExample.IGNORE) {
        first++;
      }
      first++;
      int[] tokens = t.tokens();
      requests.add(new ContinuationScorer.Request(Arrays.copyOf(tokens, first),
          List.of(Arrays.copyOfRange(tokens, first, tokens.length))));
    }
    double[] nll = new double[requests.size()];
    int[] counted = new int[requests.size()];
    if (requests.isEmpty()) {
      return new LossRun(name, nll, counted, skipped, 0, 0, backend.description());
    }
    ContinuationScorer scorer = scorer(requests);
    long warm = warmUp(scorer, requests.get(0));
    long t0 = System.nanoTime();
    int chunk = 64;
    for (int i = 0; i < requests.size(); i += chunk) {
      List<double[][]> lps = scorer.score(requests.subList(i, Math.min(requests.size(), i + chunk)));
      for (int j = 0; j < lps.size(); j++) {
        double[] lp = lps.get(j)[0];
        nll[i + j] = -Arrays.stream(lp).sum();
        counted[i + j] = lp.length;
      }
      progress.accept(i + lps.size());
    }
    double seconds = (System.nanoTime() - t0) / 1e9;
    return new LossRun(name, nll, counted, skipped, scorer.forwardTokens() - warm, seconds,
        backend.description());
  }

  @Override
  public void close() {
    tokenizer.close();
    base.close();
  }
}
