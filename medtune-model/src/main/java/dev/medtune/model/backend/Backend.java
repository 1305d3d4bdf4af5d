package dev.medtune.model.backend;

import dev.medtune.model.safetensors.TensorInfo;

/**
 * The ops the Llama engine is written against, llm.c style: every op is an explicit function of
 * planned buffers, named {@code xxxForward} now, each with a {@code xxxBackward} twin planned for
 * LoRA training (the signature is given in each op's javadoc). The CPU backend is the reference
 * meaning of every op (float32 compute); other backends are tested against it.
 *
 * <p>Conventions. Activations are float32 tensors, row-major, one row per token; a batch of
 * {@code rows} tokens may come from several sequences, each token carrying its KV-cache slot
 * ({@code slots[t]}) and its position within its sequence ({@code positions[t]}), which is how
 * batches of prompts and, later, packed training examples work. Buffers are allocated once
 * ({@link #allocate}) at their largest size and ops use their first {@code rows} rows, so decoding
 * allocates nothing. Token ids, slots and positions are host {@code int[]} (a few per token; a
 * device backend copies them through a planned staging buffer). Weights stay in their file's
 * dtype (BF16, F16 or F32) and are converted inside the kernels.
 *
 * <p>Ops run in order on one stream; {@link #copyToHost} waits for the ops before it.
 */
public interface Backend extends AutoCloseable {

  /** The device name, as {@code --device} takes it. */
  String name();

  /** A human description for logs, e.g. "cpu (2 threads, AVX-512 float32 x16)". */
  String description();

  // ---------------------------------------------------------------- memory

  /** A zeroed float32 buffer of this shape; allocate before the first step, never per token. */
  Tensor allocate(long... shape);

  /**
   * A weight as the backend reads it. The CPU backend wraps the mapped file bytes without a copy;
   * a device backend uploads once. The tensor keeps the checkpoint's dtype.
   */
  Tensor weight(TensorInfo info);

  /** Copies {@code src.length} floats from the host into {@code dst} starting at element {@code offset}. */
  void copyFromHost(float[] src, Tensor dst, long offset);

  /** Copies {@code count} floats of {@code src}, from its element {@code offset}, to {@code dst[0..count)}. */
  void copyToHost(Tensor src, long offset, float[] dst, int count);

  // ---------------------------------------------------------------- ops

  /**
   * General matrix product, as BLAS {@code sgemm} but row-major:
   * {@code C[m,n] = alpha * op(A)[m,k] . op(B)[k,n] + beta * C[m,n]}, where {@code op(A)} is
   * {@code A} stored {@code [m,k]} or, with {@code transA}, {@code A} stored {@code [k,m]}; same
   * for {@code B} ({@code [k,n]}, or {@code [n,k]} with {@code transB}). {@code C} and {@code A}
   * are float32; {@code B} may be a BF16/F16/F32 weight. When {@code beta == 0}, {@code C} is
   * not read.
   *
   * <p>The uses: a linear layer {@code y = x W^T} is {@code (y, x, false, W, true, rows, out, in,
   * 1, 0)}; its backward {@code dx = dy W} is {@code (dx, dy, false, W, false, rows, in, out, 1,
   * 0)} and a weight gradient {@code dW += dy^T x} is {@code (dW, dy, true, x, false, out, in,
   * rows, 1, 1)}; LoRA {@code y += s (x A^T) B^T} is two products with {@code alpha = s, beta = 1}
   * on the second (Hu et al. 2021, arXiv:2106.09685).
   */
  void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB,
      int m, int n, int k, float alpha, float beta);

  /**
   * Linear layers that read the same input: {@code outs[i] = x W_i^T} ({@code rows x ns[i]},
   * overwritten) for each weight {@code W_i} ({@code ns[i] x in}), {@code x} being
   * {@code rows x in}: Llama's q/k/v projections. The default is one {@link #matmul} each; a
   * backend may run them as one kernel (the CUDA backend does at decode, where each of k and v
   * alone is too small to keep the GPU's memory busy).
   */
  default void linearShared(Tensor x, int rows, int in, Tensor[] weights, Tensor[] outs, int[] ns) {
    for (int i = 0; i < weights.length; i++) {
      matmul(outs[i], x, false, weights[i], true, rows, ns[i], in, 1f, 0f);
    }
  }

  /**
   * {@link #matmul} over {@code batch} independent products whose operands start {@code strideA},
   * {@code strideB}, {@code strideC} elements apart.
   */
  default void matmulBatched(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB,
      int m, int n, int k, float alpha, float beta,
      int batch, long strideA, long strideB, long strideC) {
    for (int i = 0; i < batch; i++) {
      matmul(c.view(i * strideC, (long) m * n), a.view(i * strideA, (long) m * k), transA,
          b.view(i * strideB, (long) k * n), transB, m, n, k, alpha, beta);
    }
  }

  /**
   * {@code out[t,:] = table[tokens[t],:]} for {@code t < rows}, converting the table's dtype.
   * Backward (frozen table): none; with a trained table {@code dTable[tokens[t],:] += dout[t,:]}.
   */
  void embeddingForward(Tensor out, Tensor table, int[] tokens, int rows, int dim);

  /**
   * RMSNorm (Zhang and Sennrich 2019, arXiv:1910.07467) as Llama computes it in float32:
   * {@code rstd[t] = 1 / sqrt(mean(x[t,:]^2) + eps)}, {@code out[t,:] = weight * x[t,:] * rstd[t]}.
   * {@code rstd} (float32, at least {@code rows}) is saved for the backward; it may be null.
   * Planned backward: {@code rmsnormBackward(dx, dout, x, weight, rstd, rows, dim)} with
   * {@code dx = rstd * (w*dout - x * rstd^2 * mean(x * w*dout))} ({@code dx} accumulated).
   */
  void rmsnormForward(Tensor out, Tensor x, Tensor weight, Tensor rstd, float eps, int rows, int dim);

  /**
   * The backward of {@link #rmsnormForward} with a frozen weight, accumulated into {@code dx}:
   * {@code g = weight * dout}, {@code dx[t,:] += rstd[t] * (g - x[t,:] * rstd[t]^2 * mean(x[t,:] * g))},
   * with {@code rstd} as the forward saved it.
   */
  void rmsnormBackward(Tensor dx, Tensor dout, Tensor x, Tensor weight, Tensor rstd, int rows, int dim);

  /**
   * Rotary position embedding (Su et al. 2021, arXiv:2104.09864) in place, in the Hugging Face
   * layout (rotate_half: element {@code i} pairs with {@code i + headDim/2}) on
   * {@code x[t, h*headDim ...]} for {@code h < heads}:
   * {@code x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin}, angle {@code positions[t] * invFreq[i]}.
   * {@code table} is {@code [maxPositions, headDim]} float32: {@code cos} of the angles in the
   * first half of each row, {@code sin} in the second, made by the model from the config (so Llama
   * 3.1's frequency scaling lives in one place, {@code Rope}). Planned backward:
   * {@code ropeBackward(dx, table, positions, rows, heads, headDim)}, the same rotation by the
   * negative angle.
   */
  void ropeForward(Tensor x, Tensor table, int[] positions, int rows, int heads, int headDim);

  /**
   * The backward of {@link #ropeForward}, in place on the gradient: the rotation is orthogonal, so
   * {@code dx} is rotated by the negative angle, {@code dx1' = dx1 cos + dx2 sin},
   * {@code dx2' = dx2 cos - dx1 sin}.
   */
  void ropeBackward(Tensor dx, Tensor table, int[] positions, int rows, int heads, int headDim);

  /**
   * Stores the keys and values of {@code rows} tokens in the KV cache:
   * {@code kCache[slots[t], positions[t], :] = k[t, :]}, same for {@code v}. The caches are
   * {@code [slotCount, maxLength, kvHeads*headDim]} float32 (one layer). For training the
   * "cache" is the batch's own keys and values laid out per example.
   * Backward: {@code dk[t,:] = dkCache[slots[t], positions[t], :]}, same for {@code dv}.
   */
  void kvStoreForward(Tensor kCache, Tensor vCache, Tensor k, Tensor v,
      int[] slots, int[] positions, int rows, int kvDim, int maxLength);

  /**
   * The backward of {@link #kvStoreForward}, a gather: {@code dk[t,:] = dkCache[slots[t], positions[t], :]},
   * same for {@code dv} (overwritten).
   */
  void kvStoreBackward(Tensor dk, Tensor dv, Tensor dkCache, Tensor dvCache,
      int[] slots, int[] positions, int rows, int kvDim, int maxLength);

  /**
   * The number of floats of the state {@link #attentionForward} saves in {@code att} for
   * {@link #attentionBackward}, for {@code rows} query rows of {@code heads} heads of
   * {@code headDim} against caches of {@code maxLength} positions; callers allocate {@code att}
   * with this many floats (once, at the largest sizes they will use). The CPU backend saves the
   * probabilities ({@code rows * heads * maxLength}); the CUDA backend's flash-attention kernels
   * save one log-sum-exp per (row, head) ({@code rows * heads}), its fallback kernels the
   * probabilities. {@code headDim} is a parameter because a backend may pick its kernels by it.
   */
  default long attentionStateFloats(int rows, int heads, int headDim, int maxLength) {
    return (long) rows * heads * maxLength;
  }

  /**
   * Causal grouped-query attention (Vaswani et al. 2017; GQA: Ainslie et al. 2023,
   * arXiv:2305.13245) of {@code rows} query tokens against the KV cache: for query head
   * {@code h} of token {@code t}, with KV head {@code g = h / (heads / kvHeads)},
   * {@code p_j = softmax_j(q[t,h,:] . kCache[s,j,g,:] / sqrt(headDim))} for
   * {@code j <= positions[t]}, {@code s = slots[t]}, and
   * {@code out[t,h,:] = sum_j p_j vCache[s,j,g,:]}. {@code att} receives the backend-defined
   * state the backward needs ({@link #attentionStateFloats} floats: the CPU backend's
   * probabilities {@code [rows, heads, maxLength]}, entries past {@code positions[t]} left as they
   * were; the CUDA backend's per-(row, head) log-sum-exp of the scaled scores).
   * Backward: {@link #attentionBackward}.
   */
  void attentionForward(Tensor out, Tensor att, Tensor q, Tensor kCache, Tensor vCache,
      int[] slots, int[] positions, int rows, int heads, int kvHeads, int headDim, int maxLength);

  /**
   * The backward of {@link #attentionForward}, from its output {@code out} and the state it
   * saved in {@code att}: with {@code dp_j = dout[t,h,:] . v_j} and
   * {@code ds_j = p_j (dp_j - sum_i p_i dp_i)} (where {@code sum_i p_i dp_i = dout[t,h,:] . out[t,h,:]},
   * which is how FlashAttention-2, Dao 2023, arXiv:2307.08691, avoids the probabilities),
   * {@code dq[t,h,:] = sum_j ds_j k_j / sqrt(headDim)} (overwritten), and accumulated into the
   * caches' gradients {@code dkCache[s,j,g,:] += ds_j q[t,h,:] / sqrt(headDim)},
   * {@code dvCache[s,j,g,:] += p_j dout[t,h,:]} (the caller zeroes them first). Several sequences
   * (slots) in one batch, packed examples among them, never mix: each has its own slot.
   * {@code out} and {@code att} must be those of the forward with the same inputs.
   */
  void attentionBackward(Tensor dq, Tensor dkCache, Tensor dvCache, Tensor dout, Tensor out, Tensor q,
      Tensor kCache, Tensor vCache, Tensor att, int[] slots, int[] positions,
      int rows, int heads, int kvHeads, int headDim, int maxLength);

  /**
   * SwiGLU (Shazeer 2020, arXiv:2002.05202) as Llama's MLP uses it:
   * {@code out = silu(gate) * up}, {@code silu(x) = x / (1 + e^-x)}, on {@code rows x dim}.
   * Planned backward: {@code swigluBackward(dgate, dup, dout, gate, up, rows, dim)} with
   * {@code dgate = dout * up * s (1 + x (1 - s))}, {@code s = sigmoid(gate)}, {@code dup = dout * silu(gate)}.
   */
  void swigluForward(Tensor out, Tensor gate, Tensor up, int rows, int dim);

  /**
   * The backward of {@link #swigluForward}: {@code s = sigmoid(gate)},
   * {@code dgate = dout * up * s * (1 + gate * (1 - s))}, {@code dup = dout * gate * s} (both
   * overwritten).
   */
  void swigluBackward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up, int rows, int dim);

  /**
   * {@code out = a + b} on {@code rows x dim} (the residual connections; {@code out} may be
   * {@code a}). Backward: the gradient flows unchanged to both inputs.
   */
  void addForward(Tensor out, Tensor a, Tensor b, int rows, int dim);

  /**
   * Row-wise softmax, {@code out[t,:] = exp(x[t,:] - max) / sum}, in place allowed (sampling's
   * probabilities). The training loss will be {@code crossEntropyForward} (forward and dlogits
   * in one pass, ignore-index aware), added with the backward.
   */
  void softmaxForward(Tensor out, Tensor x, int rows, int dim);

  // ---------------------------------------------------------------- training

  /**
   * Cross-entropy with its gradient in one pass (llm.c's fused classifier): for each row
   * {@code t} with {@code targets[t] != ignoreIndex}, {@code losses[t] = logsumexp(logits[t,:]) -
   * logits[t, targets[t]]} and the row of {@code logits} is replaced by
   * {@code gradScale * (softmax(logits[t,:]) - onehot(targets[t]))}; ignored rows get loss 0 and a
   * zero gradient. {@code gradScale} is 1 / (counted tokens of the whole optimizer step), so
   * micro-batches accumulate exactly the gradient of one large batch. {@code losses} is float32
   * {@code [rows]}; the caller sums it in double.
   */
  void crossEntropyForward(Tensor losses, Tensor logits, int[] targets, int ignoreIndex,
      int rows, int vocab, float gradScale);

  /**
   * Inverted dropout (Srivastava et al. 2014) with a mask that is a pure function of
   * {@code (seed, i)}: element {@code i} of {@code x[0..count)} is kept when
   * {@code hash(seed, i) >= p} (a uniform in [0, 1)) and scaled by {@code 1 / (1 - p)}, else
   * zeroed. The backward is the same call on the gradient with the same seed (the mask is
   * recomputed, never stored).
   */
  void dropoutForward(Tensor out, Tensor x, float p, long seed, long count);

  /** Sets the first {@code count} elements of {@code t} to zero. */
  void zero(Tensor t, long count);

  /** {@code t[0..count) *= s} (gradient clipping). */
  void scale(Tensor t, long count, float s);

  /**
   * {@code sum t[i]^2} over {@code [0, count)}, accumulated in double in a fixed order (so the
   * same on every run); waits for the queued ops. The global gradient norm is the square root of
   * the sum over all gradients (as {@code torch.nn.utils.clip_grad_norm_}).
   */
  double squaredNorm(Tensor t, long count);

  // ---- trainspeed: squared norm of many tensors, the loss head's chunk (issue 5) ----

  /**
   * {@code sum over tensors, in list order, of sum t[i]^2} over each whole tensor, each tensor's
   * sum accumulated in double as {@link #squaredNorm(Tensor, long)} does; waits for the queued
   * ops once (the global gradient norm of every LoRA gradient with one wait, where calling
   * {@link #squaredNorm(Tensor, long)} per tensor would wait per tensor). The default is that loop.
   */
  default double squaredNorm(java.util.List<Tensor> tensors) {
    double s = 0;
    for (Tensor t : tensors) {
      s += squaredNorm(t, t.size());
    }
    return s;
  }

  /**
   * How many logits (floats) the training loss head should hold at once: rows of the lm_head
   * product per chunk are this divided by the vocabulary. Fewer, larger products suit a GPU; a
   * CPU keeps memory low. The loss and gradients do not depend on it beyond float rounding
   * (the head is a sum over rows).
   */
  default long preferredLossChunkFloats() {
    return 1L << 25;
  }

  // ---- end trainspeed ----

  /**
   * One AdamW update (Loshchilov and Hutter, ICLR 2019) of {@code param[0..count)} in place, as
   * {@code torch.optim.AdamW} computes it in float32 ({@code amsgrad=False}), the scalars made
   * by the caller in double: {@code p *= decay}; {@code m += (1 - beta1) (g - m)};
   * {@code v = beta2 v + (1 - beta2) g^2}; {@code p -= stepSize * m / (sqrt(v) / bc2Sqrt + eps)},
   * where {@code decay = 1 - lr wd}, {@code stepSize = lr / (1 - beta1^t)},
   * {@code bc2Sqrt = sqrt(1 - beta2^t)}. {@code dev.medtune.model.train.AdamW} is its host twin.
   */
  void adamwStep(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, long count,
      float decay, float oneMinusBeta1, float beta2, float oneMinusBeta2, float stepSize,
      float bc2Sqrt, float eps);

  // ---------------------------------------------------------------- steps and sampling

  /**
   * Starts a step: the ops until {@link #endStep} form a unit that repeats with the same ops and
   * the same arguments (tensors, sizes, scalars), only the contents of the host {@code int[]}
   * arguments (tokens, slots, positions) changing, as a decode step does. {@code key} (compared
   * with {@code equals}) names the step: equal keys promise equal ops. A backend may record the
   * step and replay it (CUDA: a graph, one launch instead of hundreds); it must give the results
   * of running the ops one by one, and checks that a replayed step really is the same (falling
   * back to running the ops otherwise). Between the two calls: only ops, no copies to or from the
   * host, no allocation, no {@link #synchronize}. Steps do not nest. The CPU backend ignores them.
   */
  default void beginStep(Object key) {}

  /**
   * Ends the step begun by {@link #beginStep}; {@code completed} is false when an op of the step
   * threw (the ops before it have then run, as without a step). Call it in a {@code finally}.
   */
  default void endStep(boolean completed) {}

  /**
   * Greedy decoding where the logits are: {@code out[t] = argmaxOf(x[t, 0..dim))} for
   * {@code t < rows}, so only an int per row comes back to the host. Waits for the queued ops.
   * This default copies each row to the host.
   */
  default void argmax(Tensor x, int rows, int dim, int[] out) {
    if (out.length < rows) {
      throw new IllegalArgumentException("argmax: " + rows + " rows but the output holds " + out.length);
    }
    float[] row = new float[dim];
    for (int t = 0; t < rows; t++) {
      copyToHost(x, (long) t * dim, row, dim);
      out[t] = argmaxOf(row, 0, dim);
    }
  }

  /**
   * The index (from {@code offset}) of the largest of {@code v[offset, offset + length)}, the
   * lowest index among equal values (as {@code torch.argmax}; {@code -0.0} equals {@code 0.0});
   * NaN entries are passed over, and a row of only NaN (or an empty one) gives 0. Every
   * backend's {@link #argmax} and the host sampler's greedy pick mean this.
   */
  static int argmaxOf(float[] v, int offset, int length) {
    int best = -1;
    float bestValue = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < length; i++) {
      float x = v[offset + i];
      if (x == x && (best < 0 || x > bestValue)) {
        best = i;
        bestValue = x;
      }
    }
    return Math.max(best, 0);
  }

  /**
   * Temperature sampling where the logits are: {@code out[t] = sampleOf(x[t, 0..dim),
   * invTemperature, uniforms[t])} for {@code t < rows}, the uniforms drawn by the caller (so its
   * seed decides, as on the host). Waits for the queued ops. This default copies each row.
   */
  default void sample(Tensor x, int rows, int dim, float invTemperature, double[] uniforms, int[] out) {
    if (out.length < rows || uniforms.length < rows) {
      throw new IllegalArgumentException("sample: " + rows + " rows but " + uniforms.length
          + " uniforms and room for " + out.length + " tokens");
    }
    float[] row = new float[dim];
    for (int t = 0; t < rows; t++) {
      copyToHost(x, (long) t * dim, row, dim);
      out[t] = sampleOf(row, 0, dim, invTemperature, uniforms[t]);
    }
  }

  /**
   * A draw from {@code softmax(v * invTemperature)} over {@code v[offset, offset + length)} by
   * inversion with the uniform {@code u} in [0, 1): with {@code s_i = v_i * invTemperature}
   * (float), {@code m = max s_i}, {@code e_i = exp(s_i - m)} (double) and {@code r = u * sum e_i}
   * (summed in index order), the first {@code i} with {@code r - (e_0 + ... + e_i) < 0}; when
   * rounding leaves none (or a NaN or infinity makes the sum NaN), {@code argmaxOf} the scaled
   * row. This is the host {@code Sampler}'s temperature sampling without top-k / top-p, which
   * calls it; a backend's {@link #sample} may sum in another order, so that it may differ only
   * where {@code r} is within rounding of a boundary of the cumulative sum.
   */
  static int sampleOf(float[] v, int offset, int length, float invTemperature, double u) {
    float max = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < length; i++) {
      max = Math.max(max, v[offset + i] * invTemperature);
    }
    double sum = 0;
    for (int i = 0; i < length; i++) {
      sum += Math.exp(v[offset + i] * invTemperature - max);
    }
    double r = u * sum;
    for (int i = 0; i < length; i++) {
      r -= Math.exp(v[offset + i] * invTemperature - max);
      if (r < 0) {
        return i;
      }
    }
    float[] scaled = new float[length];
    for (int i = 0; i < length; i++) {
      scaled[i] = v[offset + i] * invTemperature;
    }
    return argmaxOf(scaled, 0, length);
  }

  /** Waits for the queued ops (a no-op on the CPU). */
  default void synchronize() {}

  @Override
  void close();
}
