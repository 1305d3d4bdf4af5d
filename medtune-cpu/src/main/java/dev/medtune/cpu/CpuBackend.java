package dev.medtune.cpu;

import static dev.medtune.cpu.Matmul.F;
import static dev.medtune.cpu.Matmul.L;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.TensorInfo;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * The reference backend: float32 compute on all cores with the Vector API. Activations are heap
 * float arrays; weights are read from the memory-mapped checkpoint in their own dtype and
 * converted inside the kernels. Every op's math is stated on {@link Backend}.
 */
final class CpuBackend implements Backend {

  /** Elementwise ops split work into chunks of at least this many elements. */
  private static final int ELEMENTWISE_GRAIN = 1 << 15;

  private final Parallel parallel;
  private final Matmul matmul;
  /** Holds resident copies of the weights (same dtype as the file), or null when they are read from the mapping. */
  private final Arena resident;

  /**
   * @param residentWeights copy each matrix, in its file dtype, into anonymous memory instead of
   *     reading it from the file mapping: measured 4 to 8 times faster weight streaming on the
   *     2-core VM medtune is benchmarked on (bench/RESULTS.md), at the cost of the weights' size
   *     in process memory and a copy at load; like llama.cpp's {@code --no-mmap}
   */
  CpuBackend(int threads, boolean residentWeights) {
    this.parallel = new Parallel(threads);
    this.matmul = new Matmul(parallel);
    this.resident = residentWeights ? Arena.ofShared() : null;
  }

  @Override
  public String name() {
    return "cpu";
  }

  @Override
  public String description() {
    return "cpu (" + parallel.threads + " threads, float32 x" + L + " vectors, weights "
        + (resident != null ? "resident" : "mapped") + ")";
  }

  // ---------------------------------------------------------------- memory

  @Override
  public Tensor allocate(long... shape) {
    long n = 1;
    for (long d : shape) {
      if (d <= 0) {
        throw new IllegalArgumentException("allocate: bad shape " + Arrays.toString(shape));
      }
      n *= d;
    }
    if (n > Integer.MAX_VALUE - 16) {
      throw new IllegalArgumentException("allocate: " + Arrays.toString(shape)
          + " has more than 2^31 elements; the CPU backend keeps one buffer in one Java array");
    }
    return new CpuTensor(DType.F32, shape, new float[(int) n], null, 0);
  }

  @Override
  public Tensor weight(TensorInfo info) {
    long expected = info.elementCount() * info.dtype().byteSize();
    if (info.data().byteSize() != expected) {
      throw new IllegalArgumentException("tensor " + info.name() + ": " + info.data().byteSize()
          + " bytes for shape " + Arrays.toString(info.shape()) + " " + info.dtype()
          + ", expected " + expected);
    }
    CpuTensor mapped = new CpuTensor(info.dtype(), info.shape(), null, info.data(), 0);
    if (resident != null && info.shape().length > 1) {
      MemorySegment copy = resident.allocate(expected, 64);
      copy.copyFrom(info.data());
      return new CpuTensor(info.dtype(), info.shape(), null, copy, 0);
    }
    if (info.shape().length == 1) {
      // vectors (norm weights) are tiny: one float32 copy keeps the elementwise kernels simple
      float[] f = new float[(int) info.elementCount()];
      Matmul.toFloat(mapped, 0, f.length, f);
      return new CpuTensor(DType.F32, info.shape(), f, null, 0);
    }
    return mapped;
  }

  @Override
  public void copyFromHost(float[] src, Tensor dst, long offset) {
    CpuTensor d = (CpuTensor) dst;
    checkRange(d, offset, src.length);
    System.arraycopy(src, 0, d.floats(), (int) (d.offset + offset), src.length);
  }

  @Override
  public void copyToHost(Tensor src, long offset, float[] dst, int count) {
    CpuTensor s = (CpuTensor) src;
    checkRange(s, offset, count);
    Matmul.toFloat(s, offset, count, dst);
  }

  private static void checkRange(CpuTensor t, long offset, long count) {
    if (offset < 0 || offset + count > t.size()) {
      throw new IllegalArgumentException("copy of " + count + " elements at " + offset
          + " is outside " + t);
    }
  }

  // ---------------------------------------------------------------- ops

  @Override
  public void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB,
      int m, int n, int k, float alpha, float beta) {
    matmul.matmul((CpuTensor) c, (CpuTensor) a, transA, (CpuTensor) b, transB, m, n, k, alpha, beta);
  }

  @Override
  public void embeddingForward(Tensor out, Tensor table, int[] tokens, int rows, int dim) {
    CpuTensor o = (CpuTensor) out;
    CpuTensor tab = (CpuTensor) table;
    float[] of = o.floats();
    long entries = tab.size() / dim;
    for (int t = 0; t < rows; t++) {
      if (tokens[t] < 0 || tokens[t] >= entries) {
        throw new IllegalArgumentException("token id " + tokens[t] + " at " + t
            + " is outside the embedding table of " + entries + " rows");
      }
    }
    parallel.forRange(rows, Math.max(1, ELEMENTWISE_GRAIN / dim), (from, to) -> {
      for (int t = from; t < to; t++) {
        Matmul.toFloat(tab, (long) tokens[t] * dim, dim, of, (int) o.offset + t * dim);
      }
    });
  }

  @Override
  public void rmsnormForward(Tensor out, Tensor x, Tensor weight, Tensor rstd, float eps,
      int rows, int dim) {
    float[] o = ((CpuTensor) out).floats();
    int oOff = (int) ((CpuTensor) out).offset;
    float[] xs = ((CpuTensor) x).floats();
    int xOff = (int) ((CpuTensor) x).offset;
    float[] w = ((CpuTensor) weight).floats();
    int wOff = (int) ((CpuTensor) weight).offset;
    float[] r = rstd == null ? null : ((CpuTensor) rstd).floats();
    int rOff = rstd == null ? 0 : (int) ((CpuTensor) rstd).offset;
    parallel.forRange(rows, Math.max(1, ELEMENTWISE_GRAIN / dim), (from, to) -> {
      for (int t = from; t < to; t++) {
        int xi = xOff + t * dim;
        float ss = Matmul.dot(xs, xi, xs, xi, dim);
        float inv = (float) (1.0 / Math.sqrt(ss / dim + eps));
        if (r != null) {
          r[rOff + t] = inv;
        }
        int oi = oOff + t * dim;
        FloatVector vInv = FloatVector.broadcast(F, inv);
        int bound = F.loopBound(dim);
        int i = 0;
        for (; i < bound; i += L) {
          FloatVector.fromArray(F, xs, xi + i).mul(vInv).mul(FloatVector.fromArray(F, w, wOff + i))
              .intoArray(o, oi + i);
        }
        for (; i < dim; i++) {
          o[oi + i] = xs[xi + i] * inv * w[wOff + i];
        }
      }
    });
  }

  @Override
  public void rmsnormBackward(Tensor dx, Tensor dout, Tensor x, Tensor weight, Tensor rstd,
      int rows, int dim) {
    float[] d = ((CpuTensor) dx).floats();
    int dOff = (int) ((CpuTensor) dx).offset;
    float[] g = ((CpuTensor) dout).floats();
    int gOff = (int) ((CpuTensor) dout).offset;
    float[] xs = ((CpuTensor) x).floats();
    int xOff = (int) ((CpuTensor) x).offset;
    float[] w = ((CpuTensor) weight).floats();
    int wOff = (int) ((CpuTensor) weight).offset;
    float[] r = ((CpuTensor) rstd).floats();
    int rOff = (int) ((CpuTensor) rstd).offset;
    parallel.forRange(rows, Math.max(1, ELEMENTWISE_GRAIN / dim), (from, to) -> {
      for (int t = from; t < to; t++) {
        int xi = xOff + t * dim;
        int gi = gOff + t * dim;
        int di = dOff + t * dim;
        float inv = r[rOff + t];
        // mean(x * w * dout), in double: it is a difference of similar terms in the end
        double dot = 0;
        for (int i = 0; i < dim; i++) {
          dot += (double) xs[xi + i] * (w[wOff + i] * g[gi + i]);
        }
        float c = (float) (dot / dim) * inv * inv;
        for (int i = 0; i < dim; i++) {
          d[di + i] += inv * (w[wOff + i] * g[gi + i] - xs[xi + i] * c);
        }
      }
    });
  }

  @Override
  public void ropeForward(Tensor x, Tensor table, int[] positions, int rows, int heads, int headDim) {
    CpuTensor xt = (CpuTensor) x;
    float[] xs = xt.floats();
    int xOff = (int) xt.offset;
    CpuTensor tab = (CpuTensor) table;
    float[] cs = tab.floats();
    int tOff = (int) tab.offset;
    long maxPositions = tab.size() / headDim;
    for (int t = 0; t < rows; t++) {
      if (positions[t] < 0 || positions[t] >= maxPositions) {
        throw new IllegalArgumentException("position " + positions[t] + " of row " + t
            + " is outside the rope table of " + maxPositions + " positions");
      }
    }
    rotate(xs, xOff, cs, tOff, positions, rows, heads, headDim, 1f);
  }

  @Override
  public void ropeBackward(Tensor dx, Tensor table, int[] positions, int rows, int heads, int headDim) {
    // the transpose of a rotation is the rotation by the negative angle
    CpuTensor xt = (CpuTensor) dx;
    CpuTensor tab = (CpuTensor) table;
    rotate(xt.floats(), (int) xt.offset, tab.floats(), (int) tab.offset, positions, rows, heads,
        headDim, -1f);
  }

  /** Rotates each pair (i, i + headDim/2) of every head by {@code sign} times its rope angle, in place. */
  private void rotate(float[] xs, int xOff, float[] cs, int tOff, int[] positions, int rows,
      int heads, int headDim, float sign) {
    int half = headDim / 2;
    int width = heads * headDim;
    parallel.forRange(rows, Math.max(1, ELEMENTWISE_GRAIN / width), (from, to) -> {
      for (int t = from; t < to; t++) {
        int c0 = tOff + positions[t] * headDim;
        for (int h = 0; h < heads; h++) {
          int b = xOff + t * width + h * headDim;
          for (int i = 0; i < half; i++) {
            float cos = cs[c0 + i];
            float sin = sign * cs[c0 + half + i];
            float x1 = xs[b + i];
            float x2 = xs[b + half + i];
            xs[b + i] = x1 * cos - x2 * sin;
            xs[b + half + i] = x2 * cos + x1 * sin;
          }
        }
      }
    });
  }

  @Override
  public void kvStoreForward(Tensor kCache, Tensor vCache, Tensor k, Tensor v, int[] slots,
      int[] positions, int rows, int kvDim, int maxLength) {
    CpuTensor kc = (CpuTensor) kCache;
    CpuTensor vc = (CpuTensor) vCache;
    CpuTensor kt = (CpuTensor) k;
    CpuTensor vt = (CpuTensor) v;
    long slotCount = kc.size() / ((long) maxLength * kvDim);
    for (int t = 0; t < rows; t++) {
      if (slots[t] < 0 || slots[t] >= slotCount || positions[t] < 0 || positions[t] >= maxLength) {
        throw new IllegalArgumentException("KV cache: row " + t + " wants slot " + slots[t]
            + " position " + positions[t] + ", the cache has " + slotCount + " slots of "
            + maxLength + " positions");
      }
      int dst = (int) ((slots[t] * (long) maxLength + positions[t]) * kvDim);
      System.arraycopy(kt.floats(), (int) kt.offset + t * kvDim, kc.floats(), (int) kc.offset + dst, kvDim);
      System.arraycopy(vt.floats(), (int) vt.offset + t * kvDim, vc.floats(), (int) vc.offset + dst, kvDim);
    }
  }

  @Override
  public void kvStoreBackward(Tensor dk, Tensor dv, Tensor dkCache, Tensor dvCache, int[] slots,
      int[] positions, int rows, int kvDim, int maxLength) {
    CpuTensor kc = (CpuTensor) dkCache;
    CpuTensor vc = (CpuTensor) dvCache;
    CpuTensor kt = (CpuTensor) dk;
    CpuTensor vt = (CpuTensor) dv;
    for (int t = 0; t < rows; t++) {
      int src = (int) ((slots[t] * (long) maxLength + positions[t]) * kvDim);
      System.arraycopy(kc.floats(), (int) kc.offset + src, kt.floats(), (int) kt.offset + t * kvDim, kvDim);
      System.arraycopy(vc.floats(), (int) vc.offset + src, vt.floats(), (int) vt.offset + t * kvDim, kvDim);
    }
  }

  @Override
  public void attentionForward(Tensor out, Tensor att, Tensor q, Tensor kCache, Tensor vCache,
      int[] slots, int[] positions, int rows, int heads, int kvHeads, int headDim, int maxLength) {
    if (heads % kvHeads != 0) {
      throw new IllegalArgumentException("attention: " + heads + " query heads are not a multiple of "
          + kvHeads + " KV heads");
    }
    float[] o = ((CpuTensor) out).floats();
    int oOff = (int) ((CpuTensor) out).offset;
    float[] p = ((CpuTensor) att).floats();
    int pOff = (int) ((CpuTensor) att).offset;
    float[] qs = ((CpuTensor) q).floats();
    int qOff = (int) ((CpuTensor) q).offset;
    float[] ks = ((CpuTensor) kCache).floats();
    int kOff = (int) ((CpuTensor) kCache).offset;
    float[] vs = ((CpuTensor) vCache).floats();
    int vOff = (int) ((CpuTensor) vCache).offset;
    long slotCount = ((CpuTensor) kCache).size() / ((long) maxLength * kvHeads * headDim);
    for (int t = 0; t < rows; t++) {
      if (slots[t] < 0 || slots[t] >= slotCount || positions[t] < 0 || positions[t] >= maxLength) {
        throw new IllegalArgumentException("attention: row " + t + " wants slot " + slots[t]
            + " position " + positions[t] + ", the cache has " + slotCount + " slots of "
            + maxLength + " positions");
      }
    }
    int group = heads / kvHeads;
    int kvDim = kvHeads * headDim;
    float scale = (float) (1.0 / Math.sqrt(headDim));
    parallel.forRange(rows * heads, 1, (from, to) -> {
      for (int th = from; th < to; th++) {
        int t = th / heads;
        int h = th % heads;
        int g = h / group;
        int last = positions[t];
        int qi = qOff + t * heads * headDim + h * headDim;
        int pi = pOff + th * maxLength;
        int base = (int) ((long) slots[t] * maxLength * kvDim) + g * headDim;
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j <= last; j++) {
          float s = Matmul.dot(qs, qi, ks, kOff + base + j * kvDim, headDim) * scale;
          p[pi + j] = s;
          max = Math.max(max, s);
        }
        float sum = 0f;
        for (int j = 0; j <= last; j++) {
          float e = (float) Math.exp(p[pi + j] - max);
          p[pi + j] = e;
          sum += e;
        }
        float inv = 1f / sum;
        int oi = oOff + t * heads * headDim + h * headDim;
        Arrays.fill(o, oi, oi + headDim, 0f);
        for (int j = 0; j <= last; j++) {
          float pj = p[pi + j] * inv;
          p[pi + j] = pj;
          axpy(pj, vs, vOff + base + j * kvDim, o, oi, headDim);
        }
      }
    });
  }

  @Override
  public void attentionBackward(Tensor dq, Tensor dkCache, Tensor dvCache, Tensor dout, Tensor out,
      Tensor q, Tensor kCache, Tensor vCache, Tensor att, int[] slots, int[] positions,
      int rows, int heads, int kvHeads, int headDim, int maxLength) {
    float[] dqs = ((CpuTensor) dq).floats();
    int dqOff = (int) ((CpuTensor) dq).offset;
    float[] dks = ((CpuTensor) dkCache).floats();
    int dkOff = (int) ((CpuTensor) dkCache).offset;
    float[] dvs = ((CpuTensor) dvCache).floats();
    int dvOff = (int) ((CpuTensor) dvCache).offset;
    float[] dos = ((CpuTensor) dout).floats();
    int doOff = (int) ((CpuTensor) dout).offset;
    float[] qs = ((CpuTensor) q).floats();
    int qOff = (int) ((CpuTensor) q).offset;
    float[] ks = ((CpuTensor) kCache).floats();
    int kOff = (int) ((CpuTensor) kCache).offset;
    float[] vs = ((CpuTensor) vCache).floats();
    int vOff = (int) ((CpuTensor) vCache).offset;
    float[] p = ((CpuTensor) att).floats();
    int pOff = (int) ((CpuTensor) att).offset;
    int group = heads / kvHeads;
    int kvDim = kvHeads * headDim;
    float scale = (float) (1.0 / Math.sqrt(headDim));
    int slotCount = 0;
    for (int t = 0; t < rows; t++) {
      slotCount = Math.max(slotCount, slots[t] + 1);
    }
    // one task per (slot, KV head): the only writers of that slot's dK/dV rows for that head, so
    // no two threads add into the same element and the sums run in one fixed order
    int tasks = slotCount * kvHeads;
    parallel.forRange(tasks, 1, (from, to) -> {
      float[] dp = scratch(maxLength);
      for (int task = from; task < to; task++) {
        int s = task / kvHeads;
        int g = task % kvHeads;
        int base = (int) ((long) s * maxLength * kvDim) + g * headDim;
        for (int t = 0; t < rows; t++) {
          if (slots[t] != s) {
            continue;
          }
          int last = positions[t];
          for (int h = g * group; h < (g + 1) * group; h++) {
            int th = t * heads + h;
            int pi = pOff + th * maxLength;
            int oi = doOff + t * heads * headDim + h * headDim;
            int qi = qOff + t * heads * headDim + h * headDim;
            int dqi = dqOff + t * heads * headDim + h * headDim;
            float sum = 0f;
            for (int j = 0; j <= last; j++) {
              float d = Matmul.dot(dos, oi, vs, vOff + base + j * kvDim, headDim);
              dp[j] = d;
              sum += p[pi + j] * d;
            }
            Arrays.fill(dqs, dqi, dqi + headDim, 0f);
            for (int j = 0; j <= last; j++) {
              float pj = p[pi + j];
              float ds = pj * (dp[j] - sum) * scale;
              axpy(ds, ks, kOff + base + j * kvDim, dqs, dqi, headDim);
              axpy(ds, qs, qi, dks, dkOff + base + j * kvDim, headDim);
              axpy(pj, dos, oi, dvs, dvOff + base + j * kvDim, headDim);
            }
          }
        }
      }
    });
  }

  private final ThreadLocal<float[]> scratch = ThreadLocal.withInitial(() -> new float[0]);

  private float[] scratch(int n) {
    float[] s = scratch.get();
    if (s.length < n) {
      s = new float[n];
      scratch.set(s);
    }
    return s;
  }

  /** y[yOff, yOff+n) += alpha * x[xOff, xOff+n). */
  private static void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
    FloatVector va = FloatVector.broadcast(F, alpha);
    int bound = F.loopBound(n);
    int i = 0;
    for (; i < bound; i += L) {
      FloatVector.fromArray(F, x, xOff + i).fma(va, FloatVector.fromArray(F, y, yOff + i)).intoArray(y, yOff + i);
    }
    for (; i < n; i++) {
      y[yOff + i] += alpha * x[xOff + i];
    }
  }

  @Override
  public void swigluForward(Tensor out, Tensor gate, Tensor up, int rows, int dim) {
    float[] o = ((CpuTensor) out).floats();
    int oOff = (int) ((CpuTensor) out).offset;
    float[] g = ((CpuTensor) gate).floats();
    int gOff = (int) ((CpuTensor) gate).offset;
    float[] u = ((CpuTensor) up).floats();
    int uOff = (int) ((CpuTensor) up).offset;
    int n = rows * dim;
    parallel.forRange(n, ELEMENTWISE_GRAIN, (from, to) -> {
      // scalar Math.exp: the Vector API's lanewise EXP differs between JIT tiers (see Matmul.sum)
      for (int i = from; i < to; i++) {
        float x = g[gOff + i];
        o[oOff + i] = x / (1f + (float) Math.exp(-x)) * u[uOff + i];
      }
    });
  }

  @Override
  public void swigluBackward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up,
      int rows, int dim) {
    float[] dg = ((CpuTensor) dgate).floats();
    int dgOff = (int) ((CpuTensor) dgate).offset;
    float[] du = ((CpuTensor) dup).floats();
    int duOff = (int) ((CpuTensor) dup).offset;
    float[] d = ((CpuTensor) dout).floats();
    int dOff = (int) ((CpuTensor) dout).offset;
    float[] g = ((CpuTensor) gate).floats();
    int gOff = (int) ((CpuTensor) gate).offset;
    float[] u = ((CpuTensor) up).floats();
    int uOff = (int) ((CpuTensor) up).offset;
    int n = rows * dim;
    parallel.forRange(n, ELEMENTWISE_GRAIN, (from, to) -> {
      for (int i = from; i < to; i++) { // scalar Math.exp, as in the forward
        float x = g[gOff + i];
        float s = 1f / (1f + (float) Math.exp(-x));
        float dy = d[dOff + i];
        du[duOff + i] = dy * (x * s);
        dg[dgOff + i] = dy * u[uOff + i] * (s * (1f + x * (1f - s)));
      }
    });
  }

  @Override
  public void addForward(Tensor out, Tensor a, Tensor b, int rows, int dim) {
    float[] o = ((CpuTensor) out).floats();
    int oOff = (int) ((CpuTensor) out).offset;
    float[] x = ((CpuTensor) a).floats();
    int xOff = (int) ((CpuTensor) a).offset;
    float[] y = ((CpuTensor) b).floats();
    int yOff = (int) ((CpuTensor) b).offset;
    int n = rows * dim;
    parallel.forRange(n, ELEMENTWISE_GRAIN, (from, to) -> {
      int i = from;
      int bound = from + F.loopBound(to - from);
      for (; i < bound; i += L) {
        FloatVector.fromArray(F, x, xOff + i).add(FloatVector.fromArray(F, y, yOff + i)).intoArray(o, oOff + i);
      }
      for (; i < to; i++) {
        o[oOff + i] = x[xOff + i] + y[yOff + i];
      }
    });
  }

  @Override
  public void softmaxForward(Tensor out, Tensor x, int rows, int dim) {
    float[] o = ((CpuTensor) out).floats();
    int oOff = (int) ((CpuTensor) out).offset;
    float[] xs = ((CpuTensor) x).floats();
    int xOff = (int) ((CpuTensor) x).offset;
    parallel.forRange(rows, Math.max(1, ELEMENTWISE_GRAIN / dim), (from, to) -> {
      for (int t = from; t < to; t++) {
        int xi = xOff + t * dim;
        int oi = oOff + t * dim;
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < dim; i++) {
          max = Math.max(max, xs[xi + i]);
        }
        double sum = 0;
        for (int i = 0; i < dim; i++) {
          float e = (float) Math.exp(xs[xi + i] - max);
          o[oi + i] = e;
          sum += e;
        }
        float inv = (float) (1.0 / sum);
        for (int i = 0; i < dim; i++) {
          o[oi + i] *= inv;
        }
      }
    });
  }

  /** {@link Backend#argmaxOf} on each row, in place (no copy); the reference meaning of argmax. */
  @Override
  public void argmax(Tensor x, int rows, int dim, int[] out) {
    CpuTensor xs = (CpuTensor) x;
    if (xs.dtype != DType.F32) {
      Backend.super.argmax(x, rows, dim, out);
      return;
    }
    checkRange(xs, 0, (long) rows * dim);
    if (out.length < rows) {
      throw new IllegalArgumentException("argmax: " + rows + " rows but the output holds " + out.length);
    }
    float[] f = xs.floats();
    for (int t = 0; t < rows; t++) {
      out[t] = Backend.argmaxOf(f, (int) xs.offset + t * dim, dim);
    }
  }

  /** {@link Backend#sampleOf} on each row, in place (no copy). */
  @Override
  public void sample(Tensor x, int rows, int dim, float invTemperature, double[] uniforms, int[] out) {
    CpuTensor xs = (CpuTensor) x;
    if (xs.dtype != DType.F32) {
      Backend.super.sample(x, rows, dim, invTemperature, uniforms, out);
      return;
    }
    checkRange(xs, 0, (long) rows * dim);
    if (out.length < rows || uniforms.length < rows) {
      throw new IllegalArgumentException("sample: " + rows + " rows but " + uniforms.length
          + " uniforms and room for " + out.length + " tokens");
    }
    float[] f = xs.floats();
    for (int t = 0; t < rows; t++) {
      out[t] = Backend.sampleOf(f, (int) xs.offset + t * dim, dim, invTemperature, uniforms[t]);
    }
  }

  // ---------------------------------------------------------------- training

  @Override
  public void crossEntropyForward(Tensor losses, Tensor logits, int[] targets, int ignoreIndex,
      int rows, int vocab, float gradScale) {
    float[] ls = ((CpuTensor) losses).floats();
    int lOff = (int) ((CpuTensor) losses).offset;
    float[] z = ((CpuTensor) logits).floats();
    int zOff = (int) ((CpuTensor) logits).offset;
    for (int t = 0; t < rows; t++) {
      if (targets[t] != ignoreIndex && (targets[t] < 0 || targets[t] >= vocab)) {
        throw new IllegalArgumentException("cross-entropy: target " + targets[t] + " of row " + t
            + " is outside the vocabulary of " + vocab);
      }
    }
    parallel.forRange(rows, 1, (from, to) -> {
      for (int t = from; t < to; t++) {
        int zi = zOff + t * vocab;
        if (targets[t] == ignoreIndex) {
          ls[lOff + t] = 0f;
          Arrays.fill(z, zi, zi + vocab, 0f);
          continue;
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
          max = Math.max(max, z[zi + i]);
        }
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
          float e = (float) Math.exp(z[zi + i] - max);
          z[zi + i] = e;
          sum += e;
        }
        float target = z[zi + targets[t]];
        // loss = log(sum) - (logit_target - max) = -log(e_target / sum)
        ls[lOff + t] = (float) (Math.log(sum) - Math.log(target));
        float inv = (float) (gradScale / sum);
        for (int i = 0; i < vocab; i++) {
          z[zi + i] *= inv;
        }
        z[zi + targets[t]] -= gradScale;
      }
    });
  }

  @Override
  public void dropoutForward(Tensor out, Tensor x, float p, long seed, long count) {
    float[] o = ((CpuTensor) out).floats();
    int oOff = (int) ((CpuTensor) out).offset;
    float[] xs = ((CpuTensor) x).floats();
    int xOff = (int) ((CpuTensor) x).offset;
    float keepScale = 1f / (1f - p);
    parallel.forRange((int) count, ELEMENTWISE_GRAIN, (from, to) -> {
      for (int i = from; i < to; i++) {
        o[oOff + i] = dropoutUniform(seed, i) >= p ? xs[xOff + i] * keepScale : 0f;
      }
    });
  }

  /** A uniform in [0, 1) from (seed, i): SplitMix64's finaliser (Steele et al. 2014) on a counter. */
  static float dropoutUniform(long seed, long i) {
    long z = seed + (i + 1) * 0x9E3779B97F4A7C15L;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    z = z ^ (z >>> 31);
    return (z >>> 40) * 0x1.0p-24f;
  }

  @Override
  public void zero(Tensor t, long count) {
    CpuTensor c = (CpuTensor) t;
    checkRange(c, 0, count);
    Arrays.fill(c.floats(), (int) c.offset, (int) (c.offset + count), 0f);
  }

  @Override
  public void scale(Tensor t, long count, float s) {
    CpuTensor c = (CpuTensor) t;
    checkRange(c, 0, count);
    float[] a = c.floats();
    int off = (int) c.offset;
    for (int i = 0; i < count; i++) {
      a[off + i] *= s;
    }
  }

  // ---- trainspeed: the loss head's chunk; squaredNorm(List) is the SPI's loop (no waits here) ----

  private long lossChunkFloats = Backend.super.preferredLossChunkFloats();

  @Override
  public long preferredLossChunkFloats() {
    return lossChunkFloats;
  }

  /** Sets {@link #preferredLossChunkFloats} (tests: the loss must not depend on the chunk). */
  void lossChunkFloats(long floats) {
    lossChunkFloats = floats;
  }

  // ---- end trainspeed ----

  @Override
  public double squaredNorm(Tensor t, long count) {
    CpuTensor c = (CpuTensor) t;
    checkRange(c, 0, count);
    float[] a = c.floats();
    int off = (int) c.offset;
    double s = 0;
    for (int i = 0; i < count; i++) {
      s += (double) a[off + i] * a[off + i];
    }
    return s;
  }

  @Override
  public void adamwStep(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, long count,
      float decay, float oneMinusBeta1, float beta2, float oneMinusBeta2, float stepSize,
      float bc2Sqrt, float eps) {
    float[] p = ((CpuTensor) param).floats();
    int pOff = (int) ((CpuTensor) param).offset;
    float[] g = ((CpuTensor) grad).floats();
    int gOff = (int) ((CpuTensor) grad).offset;
    float[] m = ((CpuTensor) expAvg).floats();
    int mOff = (int) ((CpuTensor) expAvg).offset;
    float[] v = ((CpuTensor) expAvgSq).floats();
    int vOff = (int) ((CpuTensor) expAvgSq).offset;
    for (CpuTensor c : new CpuTensor[] {(CpuTensor) param, (CpuTensor) grad, (CpuTensor) expAvg, (CpuTensor) expAvgSq}) {
      checkRange(c, 0, count);
    }
    parallel.forRange((int) count, ELEMENTWISE_GRAIN, (from, to) -> {
      for (int j = from; j < to; j++) {
        float gj = g[gOff + j];
        float pj = p[pOff + j] * decay;
        float mj = m[mOff + j] + oneMinusBeta1 * (gj - m[mOff + j]);
        float vj = beta2 * v[vOff + j] + oneMinusBeta2 * gj * gj;
        m[mOff + j] = mj;
        v[vOff + j] = vj;
        float denom = (float) Math.sqrt(vj) / bc2Sqrt + eps;
        p[pOff + j] = pj - stepSize * (mj / denom);
      }
    });
  }

  @Override
  public void close() {
    parallel.close();
    if (resident != null) {
      resident.close();
    }
  }
}
