package dev.medtune.model;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.LoraConfig;
import dev.medtune.model.lora.LoraTarget;
import dev.medtune.model.train.MicroBatch;
import dev.medtune.model.train.TokenizedExample;

/**
 * Llama with LoRA adapters, forward and backward, for supervised fine-tuning (llm.c's shape: one
 * forward, one backward, every buffer planned in the constructor). The base weights stay frozen
 * and memory-mapped; gradients flow to the activations and to the LoRA weights only. An adapted
 * projection computes (Hu et al. 2021, arXiv:2106.09685; PEFT's {@code lora.Linear})
 *
 * <pre>
 *   y = x W^T + s * (drop(x) A^T) B^T          s = alpha / r (alpha / sqrt(r) with rsLoRA)
 *   dx = dy W + drop'(s * (dy B) A)            dA += (s dy B)^T drop(x),  dB += s dy^T (drop(x) A^T)
 * </pre>
 *
 * B is kept on the device transposed ({@code [r, out]}) so that every product is a fast one.
 *
 * <p>A micro-batch's padding is dropped before the model runs; each remaining sequence (a row,
 * or an example inside a packed row) gets its own attention slot with positions from 0, so packed
 * examples never see each other. With gradient checkpointing only each layer's input is kept and
 * the layer is run again during the backward (Chen et al. 2016, arXiv:1604.06174); without it,
 * every layer keeps its activations. The loss head runs in chunks of rows so the logits of a
 * whole batch (tokens x vocabulary) never exist at once; the backend says how many logits a chunk
 * holds ({@link Backend#preferredLossChunkFloats}: 128 MB on the CPU, 261 rows of Llama 3's
 * 128,256 tokens; more on a GPU, where fewer, larger lm_head products run faster).
 */
public final class LoraLlama {

  private record Layer(
      Tensor inputLayernorm, Tensor qProj, Tensor kProj, Tensor vProj, Tensor oProj,
      Tensor postAttentionLayernorm, Tensor gateProj, Tensor upProj, Tensor downProj) {

    Tensor weight(LoraTarget t) {
      return switch (t) {
        case Q_PROJ -> qProj;
        case K_PROJ -> kProj;
        case V_PROJ -> vProj;
        case O_PROJ -> oProj;
        case GATE_PROJ -> gateProj;
        case UP_PROJ -> upProj;
        case DOWN_PROJ -> downProj;
      };
    }
  }

  /** One adapted projection's trainable state: A [r, in], B^T [r, out], their gradients and AdamW moments. */
  private static final class Lora {
    final int in;
    final int out;
    final Tensor a;
    final Tensor bt;
    final Tensor da;
    final Tensor dbt;
    final Tensor ma;
    final Tensor va;
    final Tensor mb;
    final Tensor vb;

    Lora(Backend b, int r, int in, int out) {
      this.in = in;
      this.out = out;
      a = b.allocate(r, in);
      bt = b.allocate(r, out);
      da = b.allocate(r, in);
      dbt = b.allocate(r, out);
      ma = b.allocate(r, in);
      va = b.allocate(r, in);
      mb = b.allocate(r, out);
      vb = b.allocate(r, out);
    }
  }

  /** The activations of one layer's forward that its backward reads. */
  private static final class Activations {
    final Tensor xn1;
    final Tensor rstd1;
    final Tensor q;
    Tensor kCache;
    Tensor vCache;
    final Tensor att;
    final Tensor attnOut;
    final Tensor xMid;
    final Tensor xn2;
    final Tensor rstd2;
    final Tensor gate;
    final Tensor up;
    final Tensor hidden;
    /** LoRA's rank-r products x A^T, one per target (null where not adapted). */
    final Tensor[] h = new Tensor[LoraTarget.values().length];

    Activations(Backend b, LlamaConfig c, LoraConfig lora, int tokens, int maxLength, long cacheCapacity) {
      int hs = c.hiddenSize();
      int qDim = c.numHeads() * c.headDim();
      xn1 = b.allocate(tokens, hs);
      rstd1 = b.allocate(tokens);
      q = b.allocate(tokens, qDim);
      kCache = b.allocate(cacheCapacity);
      vCache = b.allocate(cacheCapacity);
      att = b.allocate(b.attentionStateFloats(tokens, c.numHeads(), c.headDim(), maxLength));
      attnOut = b.allocate(tokens, qDim);
      xMid = b.allocate(tokens, hs);
      xn2 = b.allocate(tokens, hs);
      rstd2 = b.allocate(tokens);
      gate = b.allocate(tokens, c.intermediateSize());
      up = b.allocate(tokens, c.intermediateSize());
      hidden = b.allocate(tokens, c.intermediateSize());
      for (LoraTarget t : lora.targets()) {
        h[t.ordinal()] = b.allocate(tokens, lora.r());
      }
    }
  }

  private final LlamaConfig config;
  private final LoraConfig lora;
  private final Backend backend;
  private final boolean checkpointing;
  private final int maxTokens;
  private final int maxLength;
  private final float scale;
  private final Tensor embedTokens;
  private final Layer[] layers;
  private final Tensor norm;
  private final Tensor lmHead;
  private final Lora[][] adapters; // [layer][target ordinal]
  private final java.util.List<Tensor> gradients; // dA, dB^T of each adapter, in adapters' order
  private final Tensor ropeTable;

  // planned buffers
  private final Tensor[] residual;    // input of each layer, and the final hidden state: [layers + 1][tokens, h]
  private final Activations[] acts;   // one per layer, or one shared with checkpointing
  private long cacheCapacity;
  private final Tensor xnFinal;
  private final Tensor rstdFinal;
  private final Tensor dxnFinal;
  private final Tensor logits;        // [lossChunk, vocab], then dlogits
  private final Tensor losses;        // [lossChunk]
  private final Tensor dx;            // gradient of the residual stream
  private final Tensor dxn;
  private final Tensor dq;
  private final Tensor dk;
  private final Tensor dv;
  private Tensor dkCache;
  private Tensor dvCache;
  private final Tensor dAttnOut;
  private final Tensor dHidden;
  private final Tensor dGate;
  private final Tensor dUp;
  private final Tensor proj;          // a projection's output before the residual add
  private final Tensor dh;            // LoRA: d(x A^T), [tokens, r]
  private final Tensor dropped;       // LoRA input after dropout, [tokens, widest in]
  private final Tensor droppedGrad;   // LoRA: d(drop(x)) before the dropout's backward

  // the current micro-batch, compacted (no padding)
  private final int[] tokens;
  private final int[] slots;
  private final int[] positions;
  private final int[] targets;
  private final int lossChunk;
  private final int[] chunkTargets;
  private final float[] chunkLosses;
  private int rows;
  private int segments;
  private int length;
  private long dropoutSeed;
  private final float[] hostRow;

  /**
   * Plans a model for micro-batches of up to {@code maxTokens} real tokens, sequences of up to
   * {@code maxLength} tokens, with the adapters of {@code lora} (zero until {@link #loadAdapter}).
   */
  public LoraLlama(Checkpoint checkpoint, Backend backend, LoraConfig lora, int maxTokens, int maxLength,
      boolean gradientCheckpointing) {
    this.config = checkpoint.config();
    this.lora = lora;
    this.backend = backend;
    this.checkpointing = gradientCheckpointing;
    this.maxTokens = maxTokens;
    this.maxLength = maxLength;
    this.scale = (float) lora.scale();
    LlamaConfig c = config;
    if (maxLength > c.maxPositionEmbeddings()) {
      throw new IllegalArgumentException(maxLength + " positions exceed the model's context of "
          + c.maxPositionEmbeddings() + " (max_position_embeddings)");
    }
    if (c.numHeads() % c.numKvHeads() != 0 || c.headDim() % 2 != 0) {
      throw new ModelFormatException(checkpoint.dir() + ": needs an even head_dim and query heads a"
          + " multiple of KV heads, found head_dim " + c.headDim() + ", " + c.numHeads() + "/" + c.numKvHeads());
    }
    int h = c.hiddenSize();
    int qDim = c.numHeads() * c.headDim();
    int ffn = c.intermediateSize();
    embedTokens = weight(checkpoint, "model.embed_tokens.weight", c.vocabSize(), h);
    layers = new Layer[c.numLayers()];
    adapters = new Lora[c.numLayers()][LoraTarget.values().length];
    for (int l = 0; l < c.numLayers(); l++) {
      String p = "model.layers." + l + ".";
      layers[l] = new Layer(
          weight(checkpoint, p + "input_layernorm.weight", h),
          weight(checkpoint, p + "self_attn.q_proj.weight", qDim, h),
          weight(checkpoint, p + "self_attn.k_proj.weight", c.kvDim(), h),
          weight(checkpoint, p + "self_attn.v_proj.weight", c.kvDim(), h),
          weight(checkpoint, p + "self_attn.o_proj.weight", h, qDim),
          weight(checkpoint, p + "post_attention_layernorm.weight", h),
          weight(checkpoint, p + "mlp.gate_proj.weight", ffn, h),
          weight(checkpoint, p + "mlp.up_proj.weight", ffn, h),
          weight(checkpoint, p + "mlp.down_proj.weight", h, ffn));
      for (LoraTarget t : lora.targets()) {
        adapters[l][t.ordinal()] = new Lora(backend, lora.r(), t.inFeatures(c), t.outFeatures(c));
      }
    }
    norm = weight(checkpoint, "model.norm.weight", h);
    lmHead = c.tieWordEmbeddings() && !checkpoint.has("lm_head.weight")
        ? embedTokens
        : weight(checkpoint, "lm_head.weight", c.vocabSize(), h);
    ropeTable = backend.allocate(maxLength, c.headDim());
    backend.copyFromHost(Rope.table(c, maxLength), ropeTable, 0);

    // one slot per sequence: without packing a micro-batch of maxTokens tokens fills at most
    // maxTokens positions of cache; packed rows may need more (grown in ensureCache)
    cacheCapacity = (long) maxTokens * c.kvDim();
    residual = new Tensor[c.numLayers() + 1];
    for (int l = 0; l <= c.numLayers(); l++) {
      residual[l] = backend.allocate(maxTokens, h);
    }
    acts = new Activations[checkpointing ? 1 : c.numLayers()];
    for (int i = 0; i < acts.length; i++) {
      acts[i] = new Activations(backend, c, lora, maxTokens, maxLength, cacheCapacity);
    }
    xnFinal = backend.allocate(maxTokens, h);
    rstdFinal = backend.allocate(maxTokens);
    dxnFinal = backend.allocate(maxTokens, h);
    lossChunk = lossChunkRows(backend.preferredLossChunkFloats(), c.vocabSize(), maxTokens);
    chunkTargets = new int[lossChunk];
    chunkLosses = new float[lossChunk];
    logits = backend.allocate(lossChunk, c.vocabSize());
    losses = backend.allocate(lossChunk);
    dx = backend.allocate(maxTokens, h);
    dxn = backend.allocate(maxTokens, h);
    dq = backend.allocate(maxTokens, qDim);
    dk = backend.allocate(maxTokens, c.kvDim());
    dv = backend.allocate(maxTokens, c.kvDim());
    dkCache = backend.allocate(cacheCapacity);
    dvCache = backend.allocate(cacheCapacity);
    dAttnOut = backend.allocate(maxTokens, qDim);
    dHidden = backend.allocate(maxTokens, ffn);
    dGate = backend.allocate(maxTokens, ffn);
    dUp = backend.allocate(maxTokens, ffn);
    proj = backend.allocate(maxTokens, Math.max(h, Math.max(qDim, ffn)));
    dh = backend.allocate(maxTokens, lora.r());
    int widest = Math.max(h, Math.max(qDim, ffn));
    dropped = lora.dropout() > 0 ? backend.allocate(maxTokens, widest) : null;
    droppedGrad = lora.dropout() > 0 ? backend.allocate(maxTokens, widest) : null;
    tokens = new int[maxTokens];
    slots = new int[maxTokens];
    positions = new int[maxTokens];
    targets = new int[maxTokens];
    hostRow = new float[Math.max(lora.r(), 1) * widest];
    java.util.List<Tensor> g = new java.util.ArrayList<>();
    for (Lora[] layer : adapters) {
      for (Lora w : layer) {
        if (w != null) {
          g.add(w.da);
          g.add(w.dbt);
        }
      }
    }
    gradients = java.util.List.copyOf(g);
  }

  /** Rows of the loss head's chunk: {@code floats / vocab}, at least 1, at most {@code maxTokens}. */
  static int lossChunkRows(long floats, int vocab, int maxTokens) {
    return (int) Math.max(1, Math.min(maxTokens, floats / vocab));
  }

  /** Rows of the loss head's lm_head product at a time (the backend's preference over the vocabulary). */
  public int lossChunkRows() {
    return lossChunk;
  }

  private Tensor weight(Checkpoint checkpoint, String name, long... shape) {
    return backend.weight(checkpoint.tensor(name, shape));
  }

  public LlamaConfig config() {
    return config;
  }

  public LoraConfig lora() {
    return lora;
  }

  /** Tokens of the micro-batch last run (padding dropped). */
  public int rows() {
    return rows;
  }

  // ---------------------------------------------------------------- adapter in and out

  /** Copies the adapter's A and B to the device (B transposed). */
  public void loadAdapter(LoraAdapter adapter) {
    checkSame(adapter);
    for (int l = 0; l < layers.length; l++) {
      for (LoraTarget t : lora.targets()) {
        Lora w = adapters[l][t.ordinal()];
        backend.copyFromHost(adapter.a(l, t), w.a, 0);
        backend.copyFromHost(transpose(adapter.b(l, t), w.out, lora.r()), w.bt, 0);
      }
    }
  }

  /** Copies the device's A and B into the adapter's arrays. */
  public void storeAdapter(LoraAdapter adapter) {
    checkSame(adapter);
    for (int l = 0; l < layers.length; l++) {
      for (LoraTarget t : lora.targets()) {
        Lora w = adapters[l][t.ordinal()];
        float[] a = adapter.a(l, t);
        backend.copyToHost(w.a, 0, a, a.length);
        float[] b = adapter.b(l, t);
        float[] bt = new float[b.length];
        backend.copyToHost(w.bt, 0, bt, bt.length);
        System.arraycopy(transpose(bt, lora.r(), w.out), 0, b, 0, b.length);
      }
    }
  }

  /**
   * Copies AdamW's moments between the device and host arrays ordered as
   * {@link LoraAdapter#tensors()} (A then B, B as [out, r]); {@code toDevice} picks the direction.
   */
  public void transferMoments(java.util.List<float[]> expAvg, java.util.List<float[]> expAvgSq, boolean toDevice) {
    int i = 0;
    for (int l = 0; l < layers.length; l++) {
      for (LoraTarget t : lora.targets()) {
        Lora w = adapters[l][t.ordinal()];
        moment(w.ma, expAvg.get(i), w.in, false, toDevice, w);
        moment(w.va, expAvgSq.get(i), w.in, false, toDevice, w);
        moment(w.mb, expAvg.get(i + 1), w.out, true, toDevice, w);
        moment(w.vb, expAvgSq.get(i + 1), w.out, true, toDevice, w);
        i += 2;
      }
    }
  }

  private void moment(Tensor device, float[] host, int cols, boolean transposed, boolean toDevice, Lora w) {
    if (toDevice) {
      backend.copyFromHost(transposed ? transpose(host, w.out, lora.r()) : host, device, 0);
    } else {
      float[] tmp = new float[host.length];
      backend.copyToHost(device, 0, tmp, tmp.length);
      System.arraycopy(transposed ? transpose(tmp, lora.r(), w.out) : tmp, 0, host, 0, host.length);
    }
  }

  private void checkSame(LoraAdapter adapter) {
    if (!adapter.config().equals(lora) || adapter.model().numLayers() != layers.length) {
      throw new IllegalArgumentException("adapter " + adapter.config() + " does not fit this model's LoRA " + lora);
    }
  }

  private static float[] transpose(float[] m, int rows, int cols) {
    float[] t = new float[m.length];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        t[j * rows + i] = m[i * cols + j];
      }
    }
    return t;
  }

  // ---------------------------------------------------------------- optimizer on the device

  /** Zeroes every LoRA gradient (before an optimizer step's first micro-batch). */
  public void zeroGradients() {
    for (Lora[] layer : adapters) {
      for (Lora w : layer) {
        if (w != null) {
          backend.zero(w.da, w.da.size());
          backend.zero(w.dbt, w.dbt.size());
        }
      }
    }
  }

  /**
   * The global L2 norm of the LoRA gradients, summed in a fixed order, with one wait for the
   * device ({@link Backend#squaredNorm(java.util.List)}).
   */
  public double gradientNorm() {
    return Math.sqrt(backend.squaredNorm(gradients));
  }

  /** Multiplies every gradient by {@code f} (clipping). */
  public void scaleGradients(float f) {
    for (Lora[] layer : adapters) {
      for (Lora w : layer) {
        if (w != null) {
          backend.scale(w.da, w.da.size(), f);
          backend.scale(w.dbt, w.dbt.size(), f);
        }
      }
    }
  }

  /** One AdamW update of every LoRA weight with the scalars {@link Backend#adamwStep} takes. */
  public void adamwStep(float decay, float oneMinusBeta1, float beta2, float oneMinusBeta2,
      float stepSize, float bc2Sqrt, float eps) {
    for (Lora[] layer : adapters) {
      for (Lora w : layer) {
        if (w != null) {
          backend.adamwStep(w.a, w.da, w.ma, w.va, w.a.size(), decay, oneMinusBeta1, beta2,
              oneMinusBeta2, stepSize, bc2Sqrt, eps);
          backend.adamwStep(w.bt, w.dbt, w.mb, w.vb, w.bt.size(), decay, oneMinusBeta1, beta2,
              oneMinusBeta2, stepSize, bc2Sqrt, eps);
        }
      }
    }
  }

  // ---------------------------------------------------------------- the step

  /**
   * Forward and backward of one micro-batch: adds the gradient of
   * {@code gradScale * sum(token losses)} to the LoRA gradients, and returns the sum of the
   * token losses (in double). {@code dropoutSeed} picks the dropout masks (unused at dropout 0).
   */
  public double forwardBackward(MicroBatch batch, float gradScale, long dropoutSeed) {
    prepare(batch, dropoutSeed);
    forwardLayers(true);
    double loss = lossHead(gradScale, true, null);
    backwardLayers();
    return loss;
  }

  /** The summed loss of a micro-batch without gradients (evaluation; no dropout). */
  public double loss(MicroBatch batch) {
    prepare(batch, 0);
    forwardLayers(false);
    return lossHead(0f, false, null);
  }

  /**
   * The logits of every real token of {@code batch} (padding dropped, in row order), for parity
   * tests: {@code rows() x vocab} floats.
   */
  public float[] logits(MicroBatch batch) {
    prepare(batch, 0);
    forwardLayers(false);
    float[] out = new float[rows * config.vocabSize()];
    lossHead(0f, false, out);
    return out;
  }

  private boolean training;

  private void prepare(MicroBatch b, long seed) {
    int n = 0;
    int seg = -1;
    int lastRow = -1;
    int lastSeq = Integer.MIN_VALUE;
    int longest = 0;
    for (int r = 0; r < b.rows(); r++) {
      for (int i = 0; i < b.length(); i++) {
        int at = r * b.length() + i;
        if (b.sequenceIds()[at] < 0) {
          continue;
        }
        if (n == maxTokens) {
          throw new IllegalArgumentException("a micro-batch of " + b.realTokens()
              + " tokens, the model was planned for " + maxTokens);
        }
        if (r != lastRow || b.sequenceIds()[at] != lastSeq) {
          seg++;
          lastRow = r;
          lastSeq = b.sequenceIds()[at];
        }
        tokens[n] = b.inputIds()[at];
        positions[n] = b.positions()[at];
        slots[n] = seg;
        targets[n] = b.targets()[at];
        if (positions[n] >= maxLength) {
          throw new IllegalArgumentException("position " + positions[n] + " exceeds the planned "
              + maxLength + " positions");
        }
        longest = Math.max(longest, positions[n] + 1);
        n++;
      }
    }
    if (n == 0) {
      throw new IllegalArgumentException("a micro-batch without tokens");
    }
    rows = n;
    segments = seg + 1;
    length = longest;
    dropoutSeed = seed;
    ensureCache((long) segments * length * config.kvDim());
  }

  /** Packed rows can hold more sequences than planned: the caches grow (rarely, once). */
  private void ensureCache(long need) {
    if (need <= cacheCapacity) {
      return;
    }
    cacheCapacity = need;
    for (Activations a : acts) {
      a.kCache = backend.allocate(need);
      a.vCache = backend.allocate(need);
    }
    dkCache = backend.allocate(need);
    dvCache = backend.allocate(need);
  }

  private Activations acts(int layer) {
    return acts[checkpointing ? 0 : layer];
  }

  private void forwardLayers(boolean training) {
    this.training = training;
    backend.embeddingForward(residual[0], embedTokens, tokens, rows, config.hiddenSize());
    for (int l = 0; l < layers.length; l++) {
      layerForward(l);
    }
  }

  /** Layer {@code l}: reads {@code residual[l]}, writes {@code residual[l + 1]}. */
  private void layerForward(int l) {
    LlamaConfig c = config;
    Layer w = layers[l];
    Activations a = acts(l);
    int h = c.hiddenSize();
    int heads = c.numHeads();
    int kvHeads = c.numKvHeads();
    int hd = c.headDim();
    int qDim = heads * hd;
    int kvDim = c.kvDim();
    int ffn = c.intermediateSize();
    float eps = (float) c.rmsNormEps();
    Tensor in = residual[l];
    Tensor out = residual[l + 1];
    Tensor kc = a.kCache.view(0, segments, length, kvDim);
    Tensor vc = a.vCache.view(0, segments, length, kvDim);

    // attention: x = x + o_proj(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))), n = rmsnorm(x)
    backend.rmsnormForward(a.xn1, in, w.inputLayernorm(), a.rstd1, eps, rows, h);
    linear(l, LoraTarget.Q_PROJ, a.q, a.xn1, a);
    linear(l, LoraTarget.K_PROJ, dk, a.xn1, a); // dk/dv double as the new keys and values
    linear(l, LoraTarget.V_PROJ, dv, a.xn1, a);
    backend.ropeForward(a.q, ropeTable, positions, rows, heads, hd);
    backend.ropeForward(dk, ropeTable, positions, rows, kvHeads, hd);
    backend.kvStoreForward(kc, vc, dk, dv, slots, positions, rows, kvDim, length);
    backend.attentionForward(a.attnOut, a.att, a.q, kc, vc, slots, positions, rows, heads, kvHeads, hd, length);
    linear(l, LoraTarget.O_PROJ, proj, a.attnOut, a);
    backend.addForward(a.xMid, in, proj, rows, h);

    // ffn: x = x + down_proj(silu(gate_proj(n)) * up_proj(n)), n = rmsnorm(x)
    backend.rmsnormForward(a.xn2, a.xMid, w.postAttentionLayernorm(), a.rstd2, eps, rows, h);
    linear(l, LoraTarget.GATE_PROJ, a.gate, a.xn2, a);
    linear(l, LoraTarget.UP_PROJ, a.up, a.xn2, a);
    backend.swigluForward(a.hidden, a.gate, a.up, rows, ffn);
    linear(l, LoraTarget.DOWN_PROJ, proj, a.hidden, a);
    backend.addForward(out, a.xMid, proj, rows, h);
  }

  /**
   * {@code y = x W^T + s (drop(x) A^T) B^T}; keeps {@code x A^T} for the backward. The LoRA term
   * is written first and the base product adds onto it ({@code beta = 1}): a large product reads
   * its C while it computes, nearly free, where a rank-r product accumulating onto {@code y}
   * afterwards is a pass of its own over {@code y} (read and write).
   */
  private void linear(int l, LoraTarget t, Tensor y, Tensor x, Activations a) {
    int in = t.inFeatures(config);
    int out = t.outFeatures(config);
    Lora w = adapters[l][t.ordinal()];
    if (w == null) {
      backend.matmul(y, x, false, layers[l].weight(t), true, rows, out, in, 1f, 0f);
      return;
    }
    Tensor hA = a.h[t.ordinal()];
    backend.matmul(hA, loraInput(l, t, x, in), false, w.a, true, rows, lora.r(), in, 1f, 0f);
    backend.matmul(y, hA, false, w.bt, false, rows, out, lora.r(), scale, 0f);
    backend.matmul(y, x, false, layers[l].weight(t), true, rows, out, in, 1f, 1f);
  }

  /** The LoRA branch's input: {@code x}, or {@code x} after this projection's dropout mask. */
  private Tensor loraInput(int l, LoraTarget t, Tensor x, int in) {
    if (dropped == null || !training) {
      return x;
    }
    backend.dropoutForward(dropped, x, (float) lora.dropout(), maskSeed(l, t), (long) rows * in);
    return dropped;
  }

  private long maskSeed(int l, LoraTarget t) {
    return dropoutSeed * 0x9E3779B97F4A7C15L + (long) l * 8 + t.ordinal() + 1;
  }

  /**
   * The loss head over the final hidden state, {@link #lossChunkRows()} rows at a time: logits, fused
   * cross-entropy (its gradient scaled by {@code gradScale}) and, with {@code backward}, the
   * gradient of the final norm's output. Returns the summed loss of the counted tokens.
   */
  private double lossHead(float gradScale, boolean backward, float[] logitsOut) {
    LlamaConfig c = config;
    int h = c.hiddenSize();
    int vocab = c.vocabSize();
    backend.rmsnormForward(xnFinal, residual[layers.length], norm, rstdFinal, (float) c.rmsNormEps(), rows, h);
    double sum = 0;
    for (int r0 = 0; r0 < rows; r0 += lossChunk) {
      int n = Math.min(lossChunk, rows - r0);
      Tensor xs = xnFinal.rows(r0, n);
      backend.matmul(logits, xs, false, lmHead, true, n, vocab, h, 1f, 0f);
      if (logitsOut != null) {
        float[] chunk = new float[n * vocab];
        backend.copyToHost(logits, 0, chunk, n * vocab);
        System.arraycopy(chunk, 0, logitsOut, r0 * vocab, n * vocab);
        continue;
      }
      System.arraycopy(targets, r0, chunkTargets, 0, n);
      backend.crossEntropyForward(losses, logits, chunkTargets, TokenizedExample.IGNORE, n, vocab, gradScale);
      backend.copyToHost(losses, 0, chunkLosses, n);
      for (int i = 0; i < n; i++) {
        sum += chunkLosses[i];
      }
      if (backward) {
        backend.matmul(dxnFinal.rows(r0, n), logits, false, lmHead, false, n, h, vocab, 1f, 0f);
      }
    }
    if (backward) {
      backend.zero(dx, (long) rows * h);
      backend.rmsnormBackward(dx, dxnFinal, residual[layers.length], norm, rstdFinal, rows, h);
    }
    return sum;
  }

  private void backwardLayers() {
    for (int l = layers.length - 1; l >= 0; l--) {
      if (checkpointing) {
        layerForward(l); // recompute this layer's activations from its saved input
      }
      layerBackward(l);
    }
  }

  /** dx holds d(residual[l + 1]) on entry and d(residual[l]) on exit. */
  private void layerBackward(int l) {
    LlamaConfig c = config;
    Layer w = layers[l];
    Activations a = acts(l);
    int h = c.hiddenSize();
    int heads = c.numHeads();
    int kvHeads = c.numKvHeads();
    int hd = c.headDim();
    int kvDim = c.kvDim();
    int ffn = c.intermediateSize();
    Tensor kc = a.kCache.view(0, segments, length, kvDim);
    Tensor vc = a.vCache.view(0, segments, length, kvDim);
    Tensor dkc = dkCache.view(0, segments, length, kvDim);
    Tensor dvc = dvCache.view(0, segments, length, kvDim);

    // ffn: out = xMid + down(swiglu(gate(xn2), up(xn2))); dx flows to xMid unchanged
    linearBackward(l, LoraTarget.DOWN_PROJ, dHidden, 0f, dx, a.hidden, a);
    backend.swigluBackward(dGate, dUp, dHidden, a.gate, a.up, rows, ffn);
    linearBackward(l, LoraTarget.GATE_PROJ, dxn, 0f, dGate, a.xn2, a);
    linearBackward(l, LoraTarget.UP_PROJ, dxn, 1f, dUp, a.xn2, a);
    backend.rmsnormBackward(dx, dxn, a.xMid, w.postAttentionLayernorm(), a.rstd2, rows, h);

    // attention: xMid = in + o(attention(...)); dx flows to in unchanged
    linearBackward(l, LoraTarget.O_PROJ, dAttnOut, 0f, dx, a.attnOut, a);
    backend.zero(dkc, dkc.size());
    backend.zero(dvc, dvc.size());
    // a.attnOut still holds this layer's attention output: written by layerForward(l) (run again
    // just before with checkpointing), read since only as the o_proj input
    backend.attentionBackward(dq, dkc, dvc, dAttnOut, a.attnOut, a.q, kc, vc, a.att, slots, positions, rows,
        heads, kvHeads, hd, length);
    backend.kvStoreBackward(dk, dv, dkc, dvc, slots, positions, rows, kvDim, length);
    backend.ropeBackward(dq, ropeTable, positions, rows, heads, hd);
    backend.ropeBackward(dk, ropeTable, positions, rows, kvHeads, hd);
    linearBackward(l, LoraTarget.Q_PROJ, dxn, 0f, dq, a.xn1, a);
    linearBackward(l, LoraTarget.K_PROJ, dxn, 1f, dk, a.xn1, a);
    linearBackward(l, LoraTarget.V_PROJ, dxn, 1f, dv, a.xn1, a);
    backend.rmsnormBackward(dx, dxn, residual[l], w.inputLayernorm(), a.rstd1, rows, h);
  }

  /**
   * The backward of {@link #linear}: {@code dX = beta dX + dY W (+ LoRA's path)}, and the LoRA
   * gradients accumulated.
   */
  private void linearBackward(int l, LoraTarget t, Tensor dX, float beta, Tensor dY, Tensor x, Activations a) {
    int in = t.inFeatures(config);
    int out = t.outFeatures(config);
    int r = lora.r();
    Lora w = adapters[l][t.ordinal()];
    if (w == null) {
      backend.matmul(dX, dY, false, layers[l].weight(t), false, rows, in, out, 1f, beta);
      return;
    }
    Tensor hA = a.h[t.ordinal()];
    Tensor xd = loraInput(l, t, x, in); // recomputes the same dropout mask
    // dB^T += s (x A^T)^T dY ;  dh = s dY B ;  dA += dh^T drop(x)
    backend.matmul(w.dbt, hA, true, dY, false, r, out, rows, scale, 1f);
    backend.matmul(dh, dY, false, w.bt, true, rows, r, out, scale, 0f);
    backend.matmul(w.da, dh, true, xd, false, r, in, rows, 1f, 1f);
    if (dropped == null) {
      // dX (+)= dh A, then the base product adds dY W onto it (as in linear: the big product reads C)
      backend.matmul(dX, dh, false, w.a, false, rows, in, r, 1f, beta);
      backend.matmul(dX, dY, false, layers[l].weight(t), false, rows, in, out, 1f, 1f);
    } else {
      backend.matmul(dX, dY, false, layers[l].weight(t), false, rows, in, out, 1f, beta);
      backend.matmul(droppedGrad, dh, false, w.a, false, rows, in, r, 1f, 0f);
      backend.dropoutForward(droppedGrad, droppedGrad, (float) lora.dropout(), maskSeed(l, t), (long) rows * in);
      backend.addForward(dX, dX, droppedGrad, rows, in);
    }
  }
}
