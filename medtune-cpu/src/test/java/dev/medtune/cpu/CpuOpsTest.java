package dev.medtune.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.TensorInfo;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Each CPU op against its plain math: a scalar loop here, accumulating in double, on random
 * inputs, with sizes that are not multiples of the vector length (16 floats with AVX-512).
 * Tolerance: float32 rounding, {@code |got - exact| <= 1e-5 * (sum of |terms|) + 1e-6}, unless
 * stated; the weights in bf16/f16 are exact in both (the reference reads the same bits).
 */
class CpuOpsTest {

  private static final Backend cpu = CpuBackendProvider.create(2);
  private static final Arena arena = Arena.ofShared();
  private final Random random = new Random(42);

  @AfterAll
  static void close() {
    cpu.close();
  }

  // ---------------------------------------------------------------- helpers

  private float[] randoms(int n) {
    float[] f = new float[n];
    for (int i = 0; i < n; i++) {
      f[i] = (float) random.nextGaussian();
    }
    return f;
  }

  private Tensor buffer(float[] values, long... shape) {
    Tensor t = cpu.allocate(shape);
    cpu.copyFromHost(values, t, 0);
    return t;
  }

  private float[] read(Tensor t) {
    float[] f = new float[(int) t.size()];
    cpu.copyToHost(t, 0, f, f.length);
    return f;
  }

  /** A weight in the mapped-file form, stored as {@code dtype}; returns the exact stored values in {@code exact}. */
  private Tensor weight(DType dtype, float[] values, float[] exact, long... shape) {
    MemorySegment seg = arena.allocate((long) values.length * dtype.byteSize(), 8);
    for (int i = 0; i < values.length; i++) {
      switch (dtype) {
        case F32 -> {
          seg.set(CpuTensor.FLOAT_LE, i * 4L, values[i]);
          exact[i] = values[i];
        }
        case BF16 -> {
          short bits = (short) (Float.floatToRawIntBits(values[i]) >>> 16);
          seg.set(CpuTensor.SHORT_LE, i * 2L, bits);
          exact[i] = Float.intBitsToFloat((bits & 0xffff) << 16);
        }
        case F16 -> {
          short bits = Float.floatToFloat16(values[i]);
          seg.set(CpuTensor.SHORT_LE, i * 2L, bits);
          exact[i] = Float.float16ToFloat(bits);
        }
      }
    }
    return cpu.weight(new TensorInfo("test.weight", dtype, shape, seg));
  }

  private static void close(double exact, double sumAbs, float got, String what) {
    double tol = 1e-5 * sumAbs + 1e-6;
    assertTrue(Math.abs(got - exact) <= tol,
        what + ": got " + got + ", exact " + exact + ", tolerance " + tol);
  }

  // ---------------------------------------------------------------- matmul

  @Test
  void linearLayerMatchesPlainMathForEveryWeightDtypeAndOddSizes() {
    int[][] sizes = {{1, 1, 1}, {1, 7, 33}, {3, 13, 17}, {5, 4, 100}, {70, 9, 67}, {4, 16, 64}, {131, 21, 48}};
    for (int[] s : sizes) {
      int m = s[0], n = s[1], k = s[2];
      for (DType dtype : DType.values()) {
        for (float[] ab : new float[][] {{1f, 0f}, {0.5f, -2f}}) {
          float alpha = ab[0], beta = ab[1];
          float[] x = randoms(m * k);
          float[] w = randoms(n * k);
          float[] wExact = new float[w.length];
          Tensor wt = weight(dtype, w, wExact, n, k);
          float[] c0 = randoms(m * n);
          Tensor c = buffer(c0, m, n);
          cpu.matmul(c, buffer(x, m, k), false, wt, true, m, n, k, alpha, beta);
          float[] got = read(c);
          for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
              double sum = 0, abs = 0;
              for (int x2 = 0; x2 < k; x2++) {
                sum += (double) x[i * k + x2] * wExact[j * k + x2];
                abs += Math.abs((double) x[i * k + x2] * wExact[j * k + x2]);
              }
              double exact = alpha * sum + beta * c0[i * n + j];
              close(exact, Math.abs(alpha) * abs + Math.abs(beta * c0[i * n + j]), got[i * n + j],
                  dtype + " m=" + m + " n=" + n + " k=" + k + " [" + i + "," + j + "]");
            }
          }
        }
      }
    }
  }

  @Test
  void residentWeightsGiveTheSameBitsAsMappedWeights() {
    int m = 5, n = 9, k = 40;
    float[] x = randoms(m * k);
    try (Backend resident = CpuBackendProvider.create(2, true)) {
      for (DType dtype : DType.values()) {
        float[] w = randoms(n * k);
        Tensor mapped = weight(dtype, w, new float[w.length], n, k);
        MemorySegment seg = ((CpuTensor) mapped).segment;
        Tensor copy = resident.weight(new TensorInfo("test.weight", dtype, new long[] {n, k}, seg));
        Tensor c1 = cpu.allocate(m, n);
        Tensor c2 = resident.allocate(m, n);
        cpu.matmul(c1, buffer(x, m, k), false, mapped, true, m, n, k, 1f, 0f);
        Tensor x2 = resident.allocate(m, k);
        resident.copyFromHost(x, x2, 0);
        resident.matmul(c2, x2, false, copy, true, m, n, k, 1f, 0f);
        float[] r2 = new float[m * n];
        resident.copyToHost(c2, 0, r2, r2.length);
        assertEquals(java.util.Arrays.toString(read(c1)), java.util.Arrays.toString(r2), dtype.toString());
      }
    }
  }

  @Test
  void heapFloat32WeightsTakeTheSamePath() {
    int m = 6, n = 10, k = 37;
    float[] x = randoms(m * k);
    float[] w = randoms(n * k);
    Tensor c = cpu.allocate(m, n);
    cpu.matmul(c, buffer(x, m, k), false, buffer(w, n, k), true, m, n, k, 1f, 0f);
    float[] got = read(c);
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        double sum = 0, abs = 0;
        for (int x2 = 0; x2 < k; x2++) {
          sum += (double) x[i * k + x2] * w[j * k + x2];
          abs += Math.abs((double) x[i * k + x2] * w[j * k + x2]);
        }
        close(sum, abs, got[i * n + j], "[" + i + "," + j + "]");
      }
    }
  }

  @Test
  void everyTransposeCombinationMatchesPlainMath() {
    int m = 5, n = 19, k = 23;
    for (boolean transA : new boolean[] {false, true}) {
      for (boolean transB : new boolean[] {false, true}) {
        for (DType bType : new DType[] {DType.F32, DType.BF16}) {
          float[] a = randoms(m * k);
          float[] b = randoms(k * n);
          float[] bExact = new float[b.length];
          Tensor bt = weight(bType, b, bExact, transB ? new long[] {n, k} : new long[] {k, n});
          float[] c0 = randoms(m * n);
          Tensor c = buffer(c0, m, n);
          cpu.matmul(c, buffer(a, transA ? new long[] {k, m} : new long[] {m, k}), transA, bt, transB,
              m, n, k, 0.75f, 1f);
          float[] got = read(c);
          for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
              double sum = 0, abs = 0;
              for (int x = 0; x < k; x++) {
                double av = transA ? a[x * m + i] : a[i * k + x];
                double bv = transB ? bExact[j * k + x] : bExact[x * n + j];
                sum += av * bv;
                abs += Math.abs(av * bv);
              }
              close(0.75 * sum + c0[i * n + j], abs + Math.abs(c0[i * n + j]), got[i * n + j],
                  "transA=" + transA + " transB=" + transB + " " + bType + " [" + i + "," + j + "]");
            }
          }
        }
      }
    }
  }

  @Test
  void batchedMatmulIsIndependentProducts() {
    int batch = 3, m = 4, n = 5, k = 6;
    float[] a = randoms(batch * m * k);
    float[] b = randoms(batch * n * k);
    Tensor c = cpu.allocate(batch, m, n);
    cpu.matmulBatched(c, buffer(a, batch, m, k), false, buffer(b, batch, n, k), true, m, n, k, 1f, 0f,
        batch, (long) m * k, (long) n * k, (long) m * n);
    float[] got = read(c);
    for (int z = 0; z < batch; z++) {
      for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
          double sum = 0, abs = 0;
          for (int x = 0; x < k; x++) {
            double p = (double) a[z * m * k + i * k + x] * b[z * n * k + j * k + x];
            sum += p;
            abs += Math.abs(p);
          }
          close(sum, abs, got[z * m * n + i * n + j], "batch " + z + " [" + i + "," + j + "]");
        }
      }
    }
  }

  // ---------------------------------------------------------------- elementwise ops

  @Test
  void embeddingGathersAndConvertsRows() {
    int vocab = 11, dim = 21;
    for (DType dtype : DType.values()) {
      float[] table = randoms(vocab * dim);
      float[] exact = new float[table.length];
      Tensor t = weight(dtype, table, exact, vocab, dim);
      int[] tokens = {3, 0, 10, 3};
      Tensor out = cpu.allocate(tokens.length, dim);
      cpu.embeddingForward(out, t, tokens, tokens.length, dim);
      float[] got = read(out);
      for (int r = 0; r < tokens.length; r++) {
        for (int i = 0; i < dim; i++) {
          assertEquals(exact[tokens[r] * dim + i], got[r * dim + i], 0f, dtype + " row " + r);
        }
      }
    }
    Tensor t = weight(DType.F32, randoms(vocab * dim), new float[vocab * dim], vocab, dim);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> cpu.embeddingForward(cpu.allocate(1, dim), t, new int[] {11}, 1, dim));
    assertTrue(e.getMessage().contains("token id 11"), e.getMessage());
  }

  @Test
  void rmsnormMatchesPlainMath() {
    int rows = 3, dim = 37;
    float eps = 1e-5f;
    float[] x = randoms(rows * dim);
    float[] w = randoms(dim);
    float[] wExact = new float[dim];
    Tensor wt = weight(DType.BF16, w, wExact, dim);
    Tensor out = cpu.allocate(rows, dim);
    Tensor rstd = cpu.allocate(rows);
    cpu.rmsnormForward(out, buffer(x, rows, dim), wt, rstd, eps, rows, dim);
    float[] got = read(out);
    float[] gotRstd = read(rstd);
    for (int t = 0; t < rows; t++) {
      double ss = 0;
      for (int i = 0; i < dim; i++) {
        ss += (double) x[t * dim + i] * x[t * dim + i];
      }
      double r = 1 / Math.sqrt(ss / dim + eps);
      assertEquals(r, gotRstd[t], 1e-5 * r, "rstd " + t);
      for (int i = 0; i < dim; i++) {
        double exact = x[t * dim + i] * r * wExact[i];
        assertEquals(exact, got[t * dim + i], 1e-5 * Math.abs(exact) + 1e-6, "[" + t + "," + i + "]");
      }
    }
  }

  @Test
  void ropeRotatesHalvesByPositionTimesFrequency() {
    int rows = 3, heads = 3, headDim = 10, maxPos = 50;
    int half = headDim / 2;
    double[] invFreq = new double[half];
    for (int i = 0; i < half; i++) {
      invFreq[i] = Math.pow(10000, -2.0 * i / headDim);
    }
    float[] table = new float[maxPos * headDim];
    for (int p = 0; p < maxPos; p++) {
      for (int i = 0; i < half; i++) {
        table[p * headDim + i] = (float) Math.cos(p * invFreq[i]);
        table[p * headDim + half + i] = (float) Math.sin(p * invFreq[i]);
      }
    }
    float[] x = randoms(rows * heads * headDim);
    int[] pos = {0, 17, 49};
    Tensor xt = buffer(x, rows, heads * headDim);
    cpu.ropeForward(xt, buffer(table, maxPos, headDim), pos, rows, heads, headDim);
    float[] got = read(xt);
    for (int t = 0; t < rows; t++) {
      for (int h = 0; h < heads; h++) {
        int b = t * heads * headDim + h * headDim;
        for (int i = 0; i < half; i++) {
          double a = pos[t] * invFreq[i];
          double x1 = x[b + i], x2 = x[b + half + i];
          assertEquals(x1 * Math.cos(a) - x2 * Math.sin(a), got[b + i], 1e-5);
          assertEquals(x2 * Math.cos(a) + x1 * Math.sin(a), got[b + half + i], 1e-5);
        }
      }
    }
  }

  @Test
  void attentionIsCausalGroupedQueryAttentionOverTheCache() {
    int heads = 6, kvHeads = 2, headDim = 19, maxLen = 13, slotsCount = 3;
    int kvDim = kvHeads * headDim;
    float[] kc = randoms(slotsCount * maxLen * kvDim);
    float[] vc = randoms(slotsCount * maxLen * kvDim);
    // rows from two sequences at different positions, as a batch of prompts in decode
    int[] slots = {2, 0, 2, 1};
    int[] pos = {4, 0, 5, 12};
    int rows = slots.length;
    float[] q = randoms(rows * heads * headDim);
    Tensor out = cpu.allocate(rows, heads * headDim);
    Tensor att = cpu.allocate(rows, heads, maxLen);
    cpu.attentionForward(out, att, buffer(q, rows, heads * headDim), buffer(kc, slotsCount, maxLen, kvDim),
        buffer(vc, slotsCount, maxLen, kvDim), slots, pos, rows, heads, kvHeads, headDim, maxLen);
    float[] got = read(out);
    float[] gotAtt = read(att);
    for (int t = 0; t < rows; t++) {
      for (int h = 0; h < heads; h++) {
        int g = h / (heads / kvHeads);
        double[] s = new double[pos[t] + 1];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j <= pos[t]; j++) {
          for (int d = 0; d < headDim; d++) {
            s[j] += (double) q[(t * heads + h) * headDim + d]
                * kc[((slots[t] * maxLen + j) * kvHeads + g) * headDim + d];
          }
          s[j] /= Math.sqrt(headDim);
          max = Math.max(max, s[j]);
        }
        double sum = 0;
        for (int j = 0; j <= pos[t]; j++) {
          s[j] = Math.exp(s[j] - max);
          sum += s[j];
        }
        for (int j = 0; j <= pos[t]; j++) {
          assertEquals(s[j] / sum, gotAtt[(t * heads + h) * maxLen + j], 1e-6, "p " + t + "," + h + "," + j);
        }
        for (int d = 0; d < headDim; d++) {
          double o = 0;
          for (int j = 0; j <= pos[t]; j++) {
            o += s[j] / sum * vc[((slots[t] * maxLen + j) * kvHeads + g) * headDim + d];
          }
          assertEquals(o, got[(t * heads + h) * headDim + d], 1e-5, "out " + t + "," + h + "," + d);
        }
      }
    }
  }

  @Test
  void kvStoreWritesEachRowAtItsSlotAndPosition() {
    int kvDim = 7, maxLen = 5, slotsCount = 2;
    float[] k = randoms(3 * kvDim);
    float[] v = randoms(3 * kvDim);
    Tensor kc = cpu.allocate(slotsCount, maxLen, kvDim);
    Tensor vc = cpu.allocate(slotsCount, maxLen, kvDim);
    int[] slots = {1, 0, 1};
    int[] pos = {0, 4, 3};
    cpu.kvStoreForward(kc, vc, buffer(k, 3, kvDim), buffer(v, 3, kvDim), slots, pos, 3, kvDim, maxLen);
    float[] gk = read(kc);
    float[] gv = read(vc);
    for (int t = 0; t < 3; t++) {
      for (int i = 0; i < kvDim; i++) {
        assertEquals(k[t * kvDim + i], gk[(slots[t] * maxLen + pos[t]) * kvDim + i], 0f);
        assertEquals(v[t * kvDim + i], gv[(slots[t] * maxLen + pos[t]) * kvDim + i], 0f);
      }
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> cpu.kvStoreForward(kc, vc, buffer(k, 3, kvDim), buffer(v, 3, kvDim), new int[] {0},
            new int[] {5}, 1, kvDim, maxLen));
    assertTrue(e.getMessage().contains("position 5"), e.getMessage());
  }

  @Test
  void swigluAddAndSoftmaxMatchPlainMath() {
    int rows = 3, dim = 41;
    float[] g = randoms(rows * dim);
    float[] u = randoms(rows * dim);
    Tensor out = cpu.allocate(rows, dim);
    cpu.swigluForward(out, buffer(g, rows, dim), buffer(u, rows, dim), rows, dim);
    float[] got = read(out);
    for (int i = 0; i < rows * dim; i++) {
      double exact = g[i] / (1 + Math.exp(-g[i])) * u[i];
      assertEquals(exact, got[i], 1e-5 * Math.abs(exact) + 1e-6, "swiglu " + i);
    }
    Tensor a = buffer(g, rows, dim);
    cpu.addForward(a, a, buffer(u, rows, dim), rows, dim);
    got = read(a);
    for (int i = 0; i < rows * dim; i++) {
      assertEquals(g[i] + u[i], got[i], 0f, "add " + i);
    }
    Tensor s = buffer(g, rows, dim);
    cpu.softmaxForward(s, s, rows, dim);
    got = read(s);
    for (int t = 0; t < rows; t++) {
      double max = Double.NEGATIVE_INFINITY, sum = 0;
      for (int i = 0; i < dim; i++) {
        max = Math.max(max, g[t * dim + i]);
      }
      for (int i = 0; i < dim; i++) {
        sum += Math.exp(g[t * dim + i] - max);
      }
      for (int i = 0; i < dim; i++) {
        double exact = Math.exp(g[t * dim + i] - max) / sum;
        assertEquals(exact, got[t * dim + i], 1e-6, "softmax " + t + "," + i);
      }
    }
  }

  @Test
  void viewsShareMemory() {
    Tensor t = cpu.allocate(4, 3);
    cpu.copyFromHost(new float[] {1, 2, 3}, t.rows(2, 1), 0);
    float[] all = read(t);
    assertEquals(1f, all[6]);
    assertEquals(3f, all[8]);
  }
}
