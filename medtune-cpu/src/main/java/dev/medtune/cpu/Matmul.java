package dev.medtune.cpu;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The CPU matrix products. The hot one is the linear layer {@code C = alpha A B^T + beta C} with
 * {@code A} float32 activations {@code [m,k]} and {@code B} a weight {@code [n,k]} in its file
 * dtype. Each thread takes a range of weight rows; for each block of {@link #ROWS} weight rows it
 * converts them once to float32 in a small per-thread scratch (bf16: the 16 bits shifted into the
 * high half of a float32, lane-wise; f16: {@link Float#float16ToFloat}), then multiplies them with
 * the activations {@link #TOKENS} at a time (a 4 x 4 register tile: 16 accumulators, 8 loads per
 * 16 FMAs). So in decode (one token) every weight byte is streamed from memory exactly once, and in
 * prefill each weight row block is read once per {@link #TOKEN_BLOCK} tokens, which keeps the FMA
 * units busy rather than the memory bus. The other transposes (training's backward) take a
 * simpler row-by-row path.
 */
final class Matmul {

  static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
  static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED.withShape(F.vectorShape());
  static final VectorSpecies<Short> S =
      ShortVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(F.vectorBitSize() / 2));
  static final int L = F.length();

  /** Weight rows converted and multiplied together. */
  static final int ROWS = 4;
  /** Tokens multiplied together with one block of weight rows (register tile). */
  static final int TOKENS = 4;
  /** Tokens per pass over a weight row block: their activations stay in L2 between rows. */
  static final int TOKEN_BLOCK = 64;

  private final Parallel parallel;
  private final ThreadLocal<float[]> scratch = ThreadLocal.withInitial(() -> new float[0]);

  Matmul(Parallel parallel) {
    this.parallel = parallel;
  }

  void matmul(CpuTensor c, CpuTensor a, boolean transA, CpuTensor b, boolean transB,
      int m, int n, int k, float alpha, float beta) {
    check(c, (long) m * n, "C");
    check(a, (long) m * k, "A");
    check(b, (long) k * n, "B");
    if (!transA && transB) {
      linear(c.floats(), (int) c.offset, a.floats(), (int) a.offset, b, m, n, k, alpha, beta);
    } else if (!transA && a.array != null) {
      inputGradient(c.floats(), (int) c.offset, a.floats(), (int) a.offset, b, m, n, k, alpha, beta);
    } else {
      general(c.floats(), (int) c.offset, a, transA, b, transB, m, n, k, alpha, beta);
    }
  }

  private static void check(CpuTensor t, long need, String what) {
    if (t.size() < need) {
      throw new IllegalArgumentException("matmul: " + what + " has " + t.size()
          + " elements, the product needs " + need);
    }
  }

  // ---------------------------------------------------------------- C = alpha A B^T + beta C

  private void linear(float[] c, int cOff, float[] a, int aOff, CpuTensor b,
      int m, int n, int k, float alpha, float beta) {
    int blocks = (n + ROWS - 1) / ROWS;
    int grain = Math.max(1, blocks / (parallel.threads * 8));
    parallel.forRange(blocks, grain, (from, to) -> {
      float[] w = scratchFor(ROWS * k);
      float[] acc = new float[TOKENS * ROWS];
      for (int t0 = 0; t0 < m; t0 += TOKEN_BLOCK) {
        int t1 = Math.min(m, t0 + TOKEN_BLOCK);
        for (int blk = from; blk < to; blk++) {
          int j0 = blk * ROWS;
          int rows = Math.min(ROWS, n - j0);
          float[] wRows;
          int wOff;
          if (b.array != null) {
            wRows = b.array;
            wOff = (int) (b.offset + (long) j0 * k);
          } else {
            toFloat(b, (long) j0 * k, (long) rows * k, w);
            wRows = w;
            wOff = 0;
          }
          int t = t0;
          if (rows == ROWS) {
            for (; t + TOKENS <= t1; t += TOKENS) {
              tile4x4(a, aOff + t * k, wRows, wOff, k, acc);
              for (int i = 0; i < TOKENS; i++) {
                for (int r = 0; r < ROWS; r++) {
                  store(c, cOff + (t + i) * n + j0 + r, acc[i * ROWS + r], alpha, beta);
                }
              }
            }
            for (; t < t1; t++) {
              tile1x4(a, aOff + t * k, wRows, wOff, k, acc);
              for (int r = 0; r < ROWS; r++) {
                store(c, cOff + t * n + j0 + r, acc[r], alpha, beta);
              }
            }
          } else {
            for (; t < t1; t++) {
              for (int r = 0; r < rows; r++) {
                store(c, cOff + t * n + j0 + r, dot(a, aOff + t * k, wRows, wOff + r * k, k), alpha, beta);
              }
            }
          }
        }
      }
    });
  }

  private static void store(float[] c, int i, float dot, float alpha, float beta) {
    c[i] = beta == 0f ? alpha * dot : alpha * dot + beta * c[i];
  }

  private float[] scratchFor(int size) {
    float[] s = scratch.get();
    if (s.length < size) {
      s = new float[size];
      scratch.set(s);
    }
    return s;
  }

  /** acc[i*4 + r] = A[i,:] . W[r,:] for 4 activation rows and 4 weight rows. */
  private static void tile4x4(float[] a, int aOff, float[] w, int wOff, int k, float[] acc) {
    FloatVector s00 = FloatVector.zero(F), s01 = s00, s02 = s00, s03 = s00;
    FloatVector s10 = s00, s11 = s00, s12 = s00, s13 = s00;
    FloatVector s20 = s00, s21 = s00, s22 = s00, s23 = s00;
    FloatVector s30 = s00, s31 = s00, s32 = s00, s33 = s00;
    int bound = F.loopBound(k);
    int a0 = aOff, a1 = aOff + k, a2 = aOff + 2 * k, a3 = aOff + 3 * k;
    int w0 = wOff, w1 = wOff + k, w2 = wOff + 2 * k, w3 = wOff + 3 * k;
    int x = 0;
    for (; x < bound; x += L) {
      FloatVector b0 = FloatVector.fromArray(F, w, w0 + x);
      FloatVector b1 = FloatVector.fromArray(F, w, w1 + x);
      FloatVector b2 = FloatVector.fromArray(F, w, w2 + x);
      FloatVector b3 = FloatVector.fromArray(F, w, w3 + x);
      FloatVector v = FloatVector.fromArray(F, a, a0 + x);
      s00 = v.fma(b0, s00); s01 = v.fma(b1, s01); s02 = v.fma(b2, s02); s03 = v.fma(b3, s03);
      v = FloatVector.fromArray(F, a, a1 + x);
      s10 = v.fma(b0, s10); s11 = v.fma(b1, s11); s12 = v.fma(b2, s12); s13 = v.fma(b3, s13);
      v = FloatVector.fromArray(F, a, a2 + x);
      s20 = v.fma(b0, s20); s21 = v.fma(b1, s21); s22 = v.fma(b2, s22); s23 = v.fma(b3, s23);
      v = FloatVector.fromArray(F, a, a3 + x);
      s30 = v.fma(b0, s30); s31 = v.fma(b1, s31); s32 = v.fma(b2, s32); s33 = v.fma(b3, s33);
    }
    acc[0] = sum(s00); acc[1] = sum(s01);
    acc[2] = sum(s02); acc[3] = sum(s03);
    acc[4] = sum(s10); acc[5] = sum(s11);
    acc[6] = sum(s12); acc[7] = sum(s13);
    acc[8] = sum(s20); acc[9] = sum(s21);
    acc[10] = sum(s22); acc[11] = sum(s23);
    acc[12] = sum(s30); acc[13] = sum(s31);
    acc[14] = sum(s32); acc[15] = sum(s33);
    for (; x < k; x++) {
      for (int i = 0; i < 4; i++) {
        float ai = a[aOff + i * k + x];
        for (int r = 0; r < 4; r++) {
          acc[i * 4 + r] += ai * w[wOff + r * k + x];
        }
      }
    }
  }

  /** acc[r] = A[0,:] . W[r,:] for one activation row and 4 weight rows (decode). */
  private static void tile1x4(float[] a, int aOff, float[] w, int wOff, int k, float[] acc) {
    FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
    int bound = F.loopBound(k);
    int x = 0;
    for (; x < bound; x += L) {
      FloatVector v = FloatVector.fromArray(F, a, aOff + x);
      s0 = v.fma(FloatVector.fromArray(F, w, wOff + x), s0);
      s1 = v.fma(FloatVector.fromArray(F, w, wOff + k + x), s1);
      s2 = v.fma(FloatVector.fromArray(F, w, wOff + 2 * k + x), s2);
      s3 = v.fma(FloatVector.fromArray(F, w, wOff + 3 * k + x), s3);
    }
    acc[0] = sum(s0);
    acc[1] = sum(s1);
    acc[2] = sum(s2);
    acc[3] = sum(s3);
    for (; x < k; x++) {
      float ax = a[aOff + x];
      for (int r = 0; r < 4; r++) {
        acc[r] += ax * w[wOff + r * k + x];
      }
    }
  }

  /** Shuffles that pair lane i with lane i + d (mod L), for d = L/2, L/4, ..., 1. */
  @SuppressWarnings("unchecked")
  private static final VectorShuffle<Float>[] FOLDS = folds();

  @SuppressWarnings("unchecked")
  private static VectorShuffle<Float>[] folds() {
    int steps = Integer.numberOfTrailingZeros(L);
    VectorShuffle<Float>[] f = new VectorShuffle[steps];
    for (int s = 0, d = L / 2; d >= 1; s++, d /= 2) {
      int dd = d;
      f[s] = VectorShuffle.fromOp(F, i -> (i + dd) % L);
    }
    return f;
  }

  /**
   * The sum of the lanes in one fixed tree order. {@code reduceLanes(ADD)} may add in any order,
   * and does: the interpreter adds lane by lane, C2 in a tree, so a result would depend on how
   * warm the JIT is. Training must repeat bit for bit (resume), so every reduction goes here.
   */
  static float sum(FloatVector v) {
    for (VectorShuffle<Float> f : FOLDS) {
      v = v.add(v.rearrange(f));
    }
    return v.lane(0);
  }

  static float dot(float[] a, int aOff, float[] b, int bOff, int k) {
    FloatVector s = FloatVector.zero(F);
    int bound = F.loopBound(k);
    int x = 0;
    for (; x < bound; x += L) {
      s = FloatVector.fromArray(F, a, aOff + x).fma(FloatVector.fromArray(F, b, bOff + x), s);
    }
    float r = sum(s);
    for (; x < k; x++) {
      r += a[aOff + x] * b[bOff + x];
    }
    return r;
  }

  /**
   * Converts {@code count} elements of {@code t} from element {@code from} (relative to its
   * offset) into {@code out[0..count)} as float32.
   */
  static void toFloat(CpuTensor t, long from, long count, float[] out) {
    toFloat(t, from, count, out, 0);
  }

  /** As {@link #toFloat(CpuTensor, long, long, float[])}, writing from {@code out[outOff]}. */
  static void toFloat(CpuTensor t, long from, long count, float[] out, int outOff) {
    long e = t.offset + from;
    int n = (int) count;
    if (t.array != null) {
      System.arraycopy(t.array, (int) e, out, outOff, n);
      return;
    }
    MemorySegment seg = t.segment;
    int bound = F.loopBound(n);
    int i = 0;
    switch (t.dtype) {
      case F32 -> {
        for (; i < bound; i += L) {
          FloatVector.fromMemorySegment(F, seg, (e + i) * 4, ByteOrder.LITTLE_ENDIAN).intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
          out[outOff + i] = seg.get(CpuTensor.FLOAT_LE, (e + i) * 4);
        }
      }
      case BF16 -> {
        for (; i < bound; i += L) {
          ShortVector s = ShortVector.fromMemorySegment(S, seg, (e + i) * 2, ByteOrder.LITTLE_ENDIAN);
          ((IntVector) s.convertShape(VectorOperators.S2I, I, 0))
              .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(out, outOff + i);
        }
        for (; i < n; i++) {
          out[outOff + i] = Float.intBitsToFloat((seg.get(CpuTensor.SHORT_LE, (e + i) * 2) & 0xffff) << 16);
        }
      }
      case F16 -> {
        for (; i < n; i++) {
          out[outOff + i] = Float.float16ToFloat(seg.get(CpuTensor.SHORT_LE, (e + i) * 2));
        }
      }
    }
  }

  // ---------------------------------------------------------------- the other transposes

  /** Rows of {@code B} per panel of {@link #inputGradient}: 128 x 8 vectors (64 KB with AVX-512) stay in L2. */
  static final int PANEL_ROWS = 128;
  /** Vectors of columns per panel: wide enough that converting a panel row is one long run. */
  static final int PANEL_VECTORS = 8;

  /**
   * {@code C = alpha A B + beta C} with {@code B [k,n]} not transposed: the backward of a linear
   * layer, {@code dx = dy W} with the weight as stored. Each thread takes strips of
   * {@link #PANEL_VECTORS} vectors of columns of {@code B}; for each block of
   * {@link #PANEL_ROWS} rows it converts that part of the strip to float32 once into a panel, then
   * runs a 4 x 2-vector register tile down all the tokens (8 FMAs per 2 panel loads and 4
   * broadcasts) for each pair of vectors of the panel, adding into {@code C}.
   */
  private void inputGradient(float[] c, int cOff, float[] a, int aOff, CpuTensor b,
      int m, int n, int k, float alpha, float beta) {
    int w = PANEL_VECTORS * L;
    int strips = (n + w - 1) / w;
    parallel.forRange(strips, 1, (from, to) -> {
      float[] panel = scratchFor(PANEL_ROWS * w);
      float[] acc = new float[4 * 2 * L];
      for (int s = from; s < to; s++) {
        int j0 = s * w;
        int cols = Math.min(w, n - j0);
        for (int x0 = 0; x0 < k; x0 += PANEL_ROWS) {
          int xs = Math.min(PANEL_ROWS, k - x0);
          float bt = x0 == 0 ? beta : 1f;
          for (int x = 0; x < xs; x++) {
            toFloat(b, (long) (x0 + x) * n + j0, cols, panel, x * w);
            for (int j = cols; j < w; j++) {
              panel[x * w + j] = 0f;
            }
          }
          for (int p0 = 0; p0 < cols; p0 += 2 * L) {
            int pc = Math.min(2 * L, cols - p0);
            int t = 0;
            for (; t + 4 <= m; t += 4) {
              FloatVector s00 = FloatVector.zero(F), s01 = s00, s10 = s00, s11 = s00;
              FloatVector s20 = s00, s21 = s00, s30 = s00, s31 = s00;
              int a0 = aOff + t * k + x0, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
              for (int x = 0; x < xs; x++) {
                FloatVector b0 = FloatVector.fromArray(F, panel, x * w + p0);
                FloatVector b1 = FloatVector.fromArray(F, panel, x * w + p0 + L);
                FloatVector v = FloatVector.broadcast(F, a[a0 + x]);
                s00 = v.fma(b0, s00); s01 = v.fma(b1, s01);
                v = FloatVector.broadcast(F, a[a1 + x]);
                s10 = v.fma(b0, s10); s11 = v.fma(b1, s11);
                v = FloatVector.broadcast(F, a[a2 + x]);
                s20 = v.fma(b0, s20); s21 = v.fma(b1, s21);
                v = FloatVector.broadcast(F, a[a3 + x]);
                s30 = v.fma(b0, s30); s31 = v.fma(b1, s31);
              }
              int c0 = cOff + t * n + j0 + p0;
              if (pc == 2 * L) {
                storeVector(c, c0, s00, alpha, bt); storeVector(c, c0 + L, s01, alpha, bt);
                storeVector(c, c0 + n, s10, alpha, bt); storeVector(c, c0 + n + L, s11, alpha, bt);
                storeVector(c, c0 + 2 * n, s20, alpha, bt); storeVector(c, c0 + 2 * n + L, s21, alpha, bt);
                storeVector(c, c0 + 3 * n, s30, alpha, bt); storeVector(c, c0 + 3 * n + L, s31, alpha, bt);
              } else {
                s00.intoArray(acc, 0); s01.intoArray(acc, L);
                s10.intoArray(acc, 2 * L); s11.intoArray(acc, 3 * L);
                s20.intoArray(acc, 4 * L); s21.intoArray(acc, 5 * L);
                s30.intoArray(acc, 6 * L); s31.intoArray(acc, 7 * L);
                for (int i = 0; i < 4; i++) {
                  for (int j = 0; j < pc; j++) {
                    store(c, c0 + i * n + j, acc[i * 2 * L + j], alpha, bt);
                  }
                }
              }
            }
            for (; t < m; t++) {
              FloatVector s0 = FloatVector.zero(F), s1 = s0;
              int a0 = aOff + t * k + x0;
              for (int x = 0; x < xs; x++) {
                FloatVector v = FloatVector.broadcast(F, a[a0 + x]);
                s0 = v.fma(FloatVector.fromArray(F, panel, x * w + p0), s0);
                s1 = v.fma(FloatVector.fromArray(F, panel, x * w + p0 + L), s1);
              }
              s0.intoArray(acc, 0);
              s1.intoArray(acc, L);
              for (int j = 0; j < pc; j++) {
                store(c, cOff + t * n + j0 + p0 + j, acc[j], alpha, bt);
              }
            }
          }
        }
      }
    });
  }

  /** c[i, i+L) = alpha * v + beta * c[i, i+L) (c not read when beta is 0), lane by lane as {@link #store}. */
  private static void storeVector(float[] c, int i, FloatVector v, float alpha, float beta) {
    FloatVector r = v.mul(alpha);
    if (beta != 0f) {
      r = r.add(FloatVector.fromArray(F, c, i).mul(beta));
    }
    r.intoArray(c, i);
  }

  /**
   * Row by row: {@code C[i,:] = beta C[i,:] + alpha sum_x op(A)[i,x] op(B)[x,:]}, an axpy over
   * rows of {@code B} when {@code B} is not transposed, a dot product per element when it is.
   */
  private void general(float[] c, int cOff, CpuTensor a, boolean transA, CpuTensor b,
      boolean transB, int m, int n, int k, float alpha, float beta) {
    parallel.forRange(m, parallel.grainFor(m, 1), (from, to) -> {
      float[] row = scratchFor(Math.max(n, k));
      for (int i = from; i < to; i++) {
        int ci = cOff + i * n;
        if (beta == 0f) {
          java.util.Arrays.fill(c, ci, ci + n, 0f);
        } else if (beta != 1f) {
          for (int j = 0; j < n; j++) {
            c[ci + j] *= beta;
          }
        }
        if (!transB) {
          for (int x = 0; x < k; x++) {
            float aix = alpha * (transA ? a.get((long) x * m + i) : a.get((long) i * k + x));
            if (aix == 0f) {
              continue;
            }
            if (b.array != null) {
              axpy(aix, b.array, (int) (b.offset + (long) x * n), c, ci, n); // no copy of a float32 row
            } else {
              toFloat(b, (long) x * n, n, row);
              axpy(aix, row, c, ci, n);
            }
          }
        } else {
          for (int j = 0; j < n; j++) {
            double s = 0;
            for (int x = 0; x < k; x++) {
              float aix = transA ? a.get((long) x * m + i) : a.get((long) i * k + x);
              s += aix * b.get((long) j * k + x);
            }
            c[ci + j] += alpha * (float) s;
          }
        }
      }
    });
  }

  /** y[yOff..] += alpha * x[xOff..xOff+n). */
  static void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
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

  /** y[yOff..] += alpha * x[0..n). */
  static void axpy(float alpha, float[] x, float[] y, int yOff, int n) {
    FloatVector va = FloatVector.broadcast(F, alpha);
    int bound = F.loopBound(n);
    int i = 0;
    for (; i < bound; i += L) {
      FloatVector.fromArray(F, x, i).fma(va, FloatVector.fromArray(F, y, yOff + i)).intoArray(y, yOff + i);
    }
    for (; i < n; i++) {
      y[yOff + i] += alpha * x[i];
    }
  }
}
