package dev.medtune.model;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The Llama 3.x decoder (Touvron et al. 2023; Grattafiori et al. 2024, arXiv:2407.21783) written
 * once against the {@link Backend} ops: token embedding, {@code numLayers} pre-norm blocks of
 * grouped-query self-attention with rotary positions and a SwiGLU MLP, each added to the residual
 * stream, a final RMSNorm and the {@code lm_head}. Names follow the Hugging Face checkpoint.
 *
 * <p>A forward pass takes a batch of {@code rows} tokens that may belong to several sequences:
 * token {@code t} is {@code tokens[t]} at {@code positions[t]} of the sequence in KV-cache slot
 * {@code slots[t]}. Prefill passes a whole prompt (or several) at once; decode passes one token
 * per sequence. The activation buffers are planned once ({@link #Llama}) for {@code maxRows}
 * tokens per call and reused, so generating allocates nothing per token.
 *
 * <p>A pass of up to {@link #STEP_MAX_ROWS} rows (decode) is one backend step
 * ({@link Backend#beginStep}): its ops and arguments are fixed by the model, the cache, the row
 * count and the logit row count (the step's key), only the host int arrays change from token to
 * token, so a GPU backend replays it as one graph. Copies to the host come after the step.
 */
public final class Llama {

  /** Passes of up to this many rows run as steps (decode of a batch); longer ones (prefill) op by op. */
  public static final int STEP_MAX_ROWS = 16;

  private static final AtomicLong IDS = new AtomicLong();

  /** What fixes a step's ops: this model's buffers, the cache's, the row counts, the tail op. */
  private record StepKey(long model, long cache, int rows, int logitCount, boolean logprobs) {}

  /** One decoder block's weights, named as in the checkpoint ({@code model.layers.N.*}). */
  private record Layer(
      Tensor inputLayernorm, Tensor qProj, Tensor kProj, Tensor vProj, Tensor oProj,
      Tensor postAttentionLayernorm, Tensor gateProj, Tensor upProj, Tensor downProj) {}

  private final LlamaConfig config;
  private final Backend backend;
  private final Tensor embedTokens;
  private final Layer[] layers;
  private final Tensor norm;
  private final Tensor lmHead;
  private final int maxRows;
  private final int maxLogitRows;
  private final int maxLength;

  // activations, planned once: [maxRows, width]
  private final Tensor x;       // the residual stream
  private final Tensor xn;      // normalised input of a sub-block
  private final Tensor q;
  private final Tensor k;
  private final Tensor v;
  private final Tensor attnOut; // attention output before o_proj
  private final Tensor att;     // the attention's saved state (Backend.attentionStateFloats)
  private final Tensor[][] qkvWeights; // per layer {q_proj, k_proj, v_proj}: Backend.linearShared
  private final Tensor[] qkvOut;       // {q, k, v}: its outputs
  private final int[] qkvDims;
  private final Tensor gate;
  private final Tensor up;
  private final Tensor hidden;  // silu(gate) * up
  private final Tensor lastRows; // final-norm rows that need logits [maxLogitRows, hidden]
  private final Tensor logits;   // [maxLogitRows, vocab]
  private final Tensor losses;   // [maxLogitRows]: -log p(target) of forwardLogprobs
  private final Tensor ropeTable;
  private final long id = IDS.incrementAndGet();

  /**
   * Wraps the checkpoint's weights for {@code backend} (no copy on the CPU) and plans the
   * buffers for up to {@code maxRows} tokens per forward call, {@code maxLogitRows} rows of
   * logits per call, and sequences of up to {@code maxLength} positions.
   */
  public Llama(Checkpoint checkpoint, Backend backend, int maxRows, int maxLogitRows, int maxLength) {
    this.config = checkpoint.config();
    this.backend = backend;
    this.maxRows = maxRows;
    this.maxLogitRows = maxLogitRows;
    this.maxLength = maxLength;
    LlamaConfig c = config;
    if (maxLength > c.maxPositionEmbeddings()) {
      throw new IllegalArgumentException(maxLength + " positions exceed the model's context of "
          + c.maxPositionEmbeddings() + " (max_position_embeddings)");
    }
    if (c.headDim() % 2 != 0) {
      throw new ModelFormatException(checkpoint.dir() + ": head_dim " + c.headDim()
          + " is odd; rotary embeddings need an even head_dim");
    }
    if (c.numHeads() % c.numKvHeads() != 0) {
      throw new ModelFormatException(checkpoint.dir() + ": num_attention_heads " + c.numHeads()
          + " is not a multiple of num_key_value_heads " + c.numKvHeads());
    }
    int h = c.hiddenSize();
    int qDim = c.numHeads() * c.headDim();
    embedTokens = weight(checkpoint, "model.embed_tokens.weight", c.vocabSize(), h);
    layers = new Layer[c.numLayers()];
    for (int l = 0; l < c.numLayers(); l++) {
      String p = "model.layers." + l + ".";
      layers[l] = new Layer(
          weight(checkpoint, p + "input_layernorm.weight", h),
          weight(checkpoint, p + "self_attn.q_proj.weight", qDim, h),
          weight(checkpoint, p + "self_attn.k_proj.weight", c.kvDim(), h),
          weight(checkpoint, p + "self_attn.v_proj.weight", c.kvDim(), h),
          weight(checkpoint, p + "self_attn.o_proj.weight", h, qDim),
          weight(checkpoint, p + "post_attention_layernorm.weight", h),
          weight(checkpoint, p + "mlp.gate_proj.weight", c.intermediateSize(), h),
          weight(checkpoint, p + "mlp.up_proj.weight", c.intermediateSize(), h),
          weight(checkpoint, p + "mlp.down_proj.weight", h, c.intermediateSize()));
    }
    norm = weight(checkpoint, "model.norm.weight", h);
    lmHead = c.tieWordEmbeddings() && !checkpoint.has("lm_head.weight")
        ? embedTokens
        : weight(checkpoint, "lm_head.weight", c.vocabSize(), h);

    x = backend.allocate(maxRows, h);
    xn = backend.allocate(maxRows, h);
    q = backend.allocate(maxRows, qDim);
    k = backend.allocate(maxRows, c.kvDim());
    v = backend.allocate(maxRows, c.kvDim());
    attnOut = backend.allocate(maxRows, qDim);
    att = backend.allocate(backend.attentionStateFloats(maxRows, c.numHeads(), c.headDim(), maxLength));
    qkvWeights = new Tensor[layers.length][];
    for (int l = 0; l < layers.length; l++) {
      qkvWeights[l] = new Tensor[] {layers[l].qProj(), layers[l].kProj(), layers[l].vProj()};
    }
    qkvOut = new Tensor[] {q, k, v};
    qkvDims = new int[] {qDim, c.kvDim(), c.kvDim()};
    gate = backend.allocate(maxRows, c.intermediateSize());
    up = backend.allocate(maxRows, c.intermediateSize());
    hidden = backend.allocate(maxRows, c.intermediateSize());
    lastRows = backend.allocate(maxLogitRows, h);
    logits = backend.allocate(maxLogitRows, c.vocabSize());
    losses = backend.allocate(maxLogitRows);
    ropeTable = backend.allocate(maxLength, c.headDim());
    backend.copyFromHost(Rope.table(c, maxLength), ropeTable, 0);
  }

  private Tensor weight(Checkpoint checkpoint, String name, long... shape) {
    return backend.weight(checkpoint.tensor(name, shape));
  }

  public LlamaConfig config() {
    return config;
  }

  public int maxRows() {
    return maxRows;
  }

  public int maxLogitRows() {
    return maxLogitRows;
  }

  public int maxLength() {
    return maxLength;
  }

  /** A KV cache for {@code slots} sequences of this model's {@link #maxLength}. */
  public KvCache newCache(int slots) {
    return new KvCache(backend, config, slots, maxLength);
  }

  /**
   * Runs {@code rows} tokens through the model, storing their keys and values in {@code cache},
   * and writes the logits of the rows listed in {@code logitRows[0..logitCount)} to
   * {@code logitsOut} ({@code logitCount * vocab} floats, row after row).
   */
  public void forward(int[] tokens, int[] slots, int[] positions, int rows, KvCache cache,
      int[] logitRows, int logitCount, float[] logitsOut) {
    if (!run(tokens, slots, positions, rows, cache, logitRows, logitCount, null)) {
      return;
    }
    long need = (long) logitCount * config.vocabSize();
    if (logitsOut.length < need) {
      throw new IllegalArgumentException("logitsOut holds " + logitsOut.length + " floats, "
          + logitCount + " rows of " + config.vocabSize() + " logits need " + need);
    }
    backend.copyToHost(logits, 0, logitsOut, (int) need);
  }

  /**
   * As {@link #forward}, but instead of the logits of each listed row, its log-probability of
   * {@code targets[i]}: {@code logprobsOut[i] = logits[i, targets[i]] - logsumexp(logits[i, :])},
   * computed where the logits are (the fused cross-entropy op), so only one float a row comes
   * back to the host. This is what scoring continuations needs.
   */
  public void forwardLogprobs(int[] tokens, int[] slots, int[] positions, int rows, KvCache cache,
      int[] logitRows, int logitCount, int[] targets, float[] logprobsOut) {
    if (!run(tokens, slots, positions, rows, cache, logitRows, logitCount, targets)) {
      return;
    }
    backend.copyToHost(losses, 0, logprobsOut, logitCount);
    for (int i = 0; i < logitCount; i++) {
      logprobsOut[i] = -logprobsOut[i];
    }
  }

  /**
   * As {@link #forward}, but only the greedy pick of each listed row comes back:
   * {@code argmaxOut[i]} is the index of the largest logit of row {@code logitRows[i]}, the lowest
   * among equals ({@link Backend#argmax}, where the logits are; 4 bytes a row to the host instead
   * of a row of logits).
   */
  public void forwardArgmax(int[] tokens, int[] slots, int[] positions, int rows, KvCache cache,
      int[] logitRows, int logitCount, int[] argmaxOut) {
    if (argmaxOut.length < logitCount) {
      throw new IllegalArgumentException("argmaxOut holds " + argmaxOut.length + " ints, "
          + logitCount + " rows need as many");
    }
    if (!run(tokens, slots, positions, rows, cache, logitRows, logitCount, null)) {
      return;
    }
    backend.argmax(logits, logitCount, config.vocabSize(), argmaxOut);
  }

  /**
   * As {@link #forwardArgmax}, but each listed row's token drawn from {@code softmax(logits *
   * invTemperature)} with the caller's uniform {@code uniforms[i]} ({@link Backend#sample}, where
   * the logits are): temperature sampling without top-k / top-p.
   */
  public void forwardSample(int[] tokens, int[] slots, int[] positions, int rows, KvCache cache,
      int[] logitRows, int logitCount, float invTemperature, double[] uniforms, int[] tokensOut) {
    if (tokensOut.length < logitCount || uniforms.length < logitCount) {
      throw new IllegalArgumentException(logitCount + " rows need as many uniforms (" + uniforms.length
          + ") and tokens (" + tokensOut.length + ")");
    }
    if (!run(tokens, slots, positions, rows, cache, logitRows, logitCount, null)) {
      return;
    }
    backend.sample(logits, logitCount, config.vocabSize(), invTemperature, uniforms, tokensOut);
  }

  /**
   * The forward pass up to the logits of the listed rows (left on the device), then, with
   * {@code targets}, their losses; false when no row has logits. Decode-sized passes are one step.
   */
  private boolean run(int[] tokens, int[] slots, int[] positions, int rows, KvCache cache,
      int[] logitRows, int logitCount, int[] targets) {
    if (rows < 1 || rows > maxRows) {
      throw new IllegalArgumentException("a forward pass takes 1 to " + maxRows + " tokens, got " + rows);
    }
    if (logitCount > maxLogitRows) {
      throw new IllegalArgumentException(logitCount + " rows of logits, planned for " + maxLogitRows);
    }
    if (cache.maxLength() != maxLength) {
      throw new IllegalArgumentException("the KV cache holds " + cache.maxLength()
          + " positions, the model was planned for " + maxLength);
    }
    boolean step = rows <= STEP_MAX_ROWS;
    if (step) {
      backend.beginStep(new StepKey(id, cache.id(), rows, logitCount, targets != null));
    }
    boolean completed = false;
    try {
      boolean any = layers(tokens, slots, positions, rows, cache, logitRows, logitCount);
      if (any && targets != null) {
        // gradScale 0: the logits buffer is overwritten with zeros, which inference never reads
        backend.crossEntropyForward(losses, logits, targets, -1, logitCount, config.vocabSize(), 0f);
      }
      completed = true;
      return any;
    } finally {
      if (step) {
        backend.endStep(completed);
      }
    }
  }

  private boolean layers(int[] tokens, int[] slots, int[] positions, int rows, KvCache cache,
      int[] logitRows, int logitCount) {
    LlamaConfig c = config;
    int h = c.hiddenSize();
    int heads = c.numHeads();
    int kvHeads = c.numKvHeads();
    int hd = c.headDim();
    int qDim = heads * hd;
    int kvDim = c.kvDim();
    int ffn = c.intermediateSize();
    float eps = (float) c.rmsNormEps();

    backend.embeddingForward(x, embedTokens, tokens, rows, h);
    for (int l = 0; l < layers.length; l++) {
      Layer w = layers[l];

      // attention: x = x + o_proj(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = rmsnorm(x)
      backend.rmsnormForward(xn, x, w.inputLayernorm(), null, eps, rows, h);
      backend.linearShared(xn, rows, h, qkvWeights[l], qkvOut, qkvDims);
      backend.ropeForward(q, ropeTable, positions, rows, heads, hd);
      backend.ropeForward(k, ropeTable, positions, rows, kvHeads, hd);
      backend.kvStoreForward(cache.keys(l), cache.values(l), k, v, slots, positions, rows, kvDim, maxLength);
      backend.attentionForward(attnOut, att, q, cache.keys(l), cache.values(l), slots, positions,
          rows, heads, kvHeads, hd, maxLength);
      // the residual add as the product's beta = 1: x = x + attnOut W_o^T (one launch fewer, same float32 sums)
      backend.matmul(x, attnOut, false, w.oProj(), true, rows, h, qDim, 1f, 1f);

      // ffn: x = x + down_proj(silu(gate_proj(n)) * up_proj(n)), n = rmsnorm(x)
      backend.rmsnormForward(xn, x, w.postAttentionLayernorm(), null, eps, rows, h);
      backend.matmul(gate, xn, false, w.gateProj(), true, rows, ffn, h, 1f, 0f);
      backend.matmul(up, xn, false, w.upProj(), true, rows, ffn, h, 1f, 0f);
      backend.swigluForward(hidden, gate, up, rows, ffn);
      backend.matmul(x, hidden, false, w.downProj(), true, rows, h, ffn, 1f, 1f);
    }

    // final norm, then lm_head only on the rows whose next token is wanted
    if (logitCount == 0) {
      return false;
    }
    backend.rmsnormForward(xn, x, norm, null, eps, rows, h);
    backend.embeddingForward(lastRows, xn, logitRows, logitCount, h); // a row gather
    backend.matmul(logits, lastRows, false, lmHead, true, logitCount, c.vocabSize(), h, 1f, 0f);
    return true;
  }
}
