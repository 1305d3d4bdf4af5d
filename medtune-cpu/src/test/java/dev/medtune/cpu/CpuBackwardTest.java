package dev.medtune.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.TensorInfo;
import dev.medtune.model.train.AdamW;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * Each backward op against central finite differences of its forward's math, written here in
 * float64: for a random upstream gradient {@code R}, the scalar {@code L(x) = sum(f(x) * R)} is
 * differentiated numerically ({@code h = 1e-5}, truncation error ~h^2, rounding ~1e-16/h) and
 * compared with what the float32 backward computes. Tolerance: {@code |got - fd| <= 2e-4 *
 * max(1, |fd|)} unless stated (float32 rounding of sums of tens of terms). Sizes are odd and not
 * multiples of the vector length.
 */
class CpuBackwardTest {

  private static final Backend cpu = CpuBackendProvider.create(2);
  private static final Arena arena = Arena.ofShared();
  private final Random random = new Random(7);

  @AfterAll
  static void close() {
    cpu.close();
  }

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

  private static float[] read(Tensor t) {
    float[] f = new float[(int) t.size()];
    cpu.copyToHost(t, 0, f, f.length);
    return f;
  }

  private static double[] toDouble(float[] f) {
    double[] d = new double[f.length];
    for (int i = 0; i < f.length; i++) {
      d[i] = f[i];
    }
    return d;
  }

  /** Central differences of {@code loss} at {@code x}, element by element. */
  private static double[] finiteDifferences(double[] x, Function<double[], Double> loss) {
    double h = 1e-5;
    double[] g = new double[x.length];
    for (int i = 0; i < x.length; i++) {
      double keep = x[i];
      x[i] = keep + h;
      double up = loss.apply(x);
      x[i] = keep - h;
      double down = loss.apply(x);
      x[i] = keep;
      g[i] = (up - down) / (2 * h);
    }
    return g;
  }

  private static void assertClose(double[] fd, float[] got, double tol, String what) {
    assertEquals(fd.length, got.length, what + " length");
    for (int i = 0; i < fd.length; i++) {
      double allowed = tol * Math.max(1, Math.abs(fd[i]));
      assertTrue(Math.abs(got[i] - fd[i]) <= allowed,
          what + "[" + i + "]: backward " + got[i] + ", finite differences " + fd[i] + ", tolerance " + allowed);
    }
  }

  private static double dot(double[] a, float[] r) {
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += a[i] * r[i];
    }
    return s;
  }

  // ---------------------------------------------------------------- rmsnorm

  private static double[] rmsnorm(double[] x, float[] w, double eps, int rows, int dim) {
    double[] out = new double[rows * dim];
    for (int t = 0; t < rows; t++) {
      double ss = 0;
      for (int i = 0; i < dim; i++) {
        ss += x[t * dim + i] * x[t * dim + i];
      }
      double inv = 1 / Math.sqrt(ss / dim + eps);
      for (int i = 0; i < dim; i++) {
        out[t * dim + i] = w[i] * x[t * dim + i] * inv;
      }
    }
    return out;
  }

  @Test
  void rmsnormBackwardMatchesFiniteDifferencesAndAccumulates() {
    int rows = 5, dim = 37;
    float eps = 1e-5f;
    float[] x = randoms(rows * dim);
    float[] w = randoms(dim);
    float[] r = randoms(rows * dim);
    float[] dx0 = randoms(rows * dim);
    Tensor xt = buffer(x, rows, dim);
    Tensor wt = buffer(w, dim);
    Tensor rstd = cpu.allocate(rows);
    cpu.rmsnormForward(cpu.allocate(rows, dim), xt, wt, rstd, eps, rows, dim);
    Tensor dx = buffer(dx0, rows, dim);
    cpu.rmsnormBackward(dx, buffer(r, rows, dim), xt, wt, rstd, rows, dim);
    double[] fd = finiteDifferences(toDouble(x), xs -> dot(rmsnorm(xs, w, eps, rows, dim), r));
    float[] got = read(dx);
    for (int i = 0; i < got.length; i++) {
      got[i] -= dx0[i]; // the op adds into dx
    }
    assertClose(fd, got, 2e-4, "rmsnorm dx");
  }

  // ---------------------------------------------------------------- rope

  private static float[] ropeTable(int maxPos, int headDim) {
    float[] t = new float[maxPos * headDim];
    int half = headDim / 2;
    for (int p = 0; p < maxPos; p++) {
      for (int i = 0; i < half; i++) {
        double a = p * Math.pow(10000, -2.0 * i / headDim);
        t[p * headDim + i] = (float) Math.cos(a);
        t[p * headDim + half + i] = (float) Math.sin(a);
      }
    }
    return t;
  }

  private static double[] rope(double[] x, float[] table, int[] pos, int rows, int heads, int hd) {
    double[] out = x.clone();
    int half = hd / 2;
    for (int t = 0; t < rows; t++) {
      for (int h = 0; h < heads; h++) {
        int b = t * heads * hd + h * hd;
        for (int i = 0; i < half; i++) {
          double c = table[pos[t] * hd + i];
          double s = table[pos[t] * hd + half + i];
          out[b + i] = x[b + i] * c - x[b + half + i] * s;
          out[b + half + i] = x[b + half + i] * c + x[b + i] * s;
        }
      }
    }
    return out;
  }

  @Test
  void ropeBackwardMatchesFiniteDifferences() {
    int rows = 6, heads = 3, hd = 10;
    int[] pos = {0, 1, 2, 0, 1, 9};
    float[] table = ropeTable(12, hd);
    float[] r = randoms(rows * heads * hd);
    Tensor g = buffer(r, rows, heads * hd);
    cpu.ropeBackward(g, buffer(table, 12, hd), pos, rows, heads, hd);
    double[] fd = finiteDifferences(toDouble(randoms(rows * heads * hd)),
        xs -> dot(rope(xs, table, pos, rows, heads, hd), r));
    assertClose(fd, read(g), 1e-5, "rope dx");
  }

  // ---------------------------------------------------------------- attention

  /**
   * Reference attention in float64 over the KV-cache layout: three sequences in three slots
   * (one of them two packed examples would have: positions restart in a new slot), GQA with 6
   * query heads over 2 KV heads.
   */
  private static double[] attention(double[] q, double[] k, double[] v, int[] slots, int[] pos,
      int rows, int heads, int kvHeads, int hd, int maxLen) {
    double[] out = new double[rows * heads * hd];
    int group = heads / kvHeads;
    int kvDim = kvHeads * hd;
    for (int t = 0; t < rows; t++) {
      for (int h = 0; h < heads; h++) {
        int g = h / group;
        int qi = t * heads * hd + h * hd;
        int base = slots[t] * maxLen * kvDim + g * hd;
        double[] s = new double[pos[t] + 1];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j <= pos[t]; j++) {
          double d = 0;
          for (int i = 0; i < hd; i++) {
            d += q[qi + i] * k[base + j * kvDim + i];
          }
          s[j] = d / Math.sqrt(hd);
          max = Math.max(max, s[j]);
        }
        double sum = 0;
        for (int j = 0; j <= pos[t]; j++) {
          s[j] = Math.exp(s[j] - max);
          sum += s[j];
        }
        for (int j = 0; j <= pos[t]; j++) {
          for (int i = 0; i < hd; i++) {
            out[qi + i] += s[j] / sum * v[base + j * kvDim + i];
          }
        }
      }
    }
    return out;
  }

  @Test
  void attentionBackwardMatchesFiniteDifferencesAcrossSlotsAndGroups() {
    int heads = 6, kvHeads = 2, hd = 5, maxLen = 7, slotCount = 3;
    int[] slots = {0, 0, 0, 0, 1, 1, 2, 2, 2};
    int[] pos = {0, 1, 2, 3, 0, 1, 0, 1, 2};
    int rows = slots.length;
    int kvDim = kvHeads * hd;
    float[] q = randoms(rows * heads * hd);
    float[] kc = new float[slotCount * maxLen * kvDim];
    float[] vc = new float[slotCount * maxLen * kvDim];
    float[] kr = randoms(rows * kvDim);
    float[] vr = randoms(rows * kvDim);
    Tensor kCache = cpu.allocate(slotCount, maxLen, kvDim);
    Tensor vCache = cpu.allocate(slotCount, maxLen, kvDim);
    cpu.kvStoreForward(kCache, vCache, buffer(kr, rows, kvDim), buffer(vr, rows, kvDim), slots, pos,
        rows, kvDim, maxLen);
    cpu.copyToHost(kCache, 0, kc, kc.length);
    cpu.copyToHost(vCache, 0, vc, vc.length);
    Tensor qt = buffer(q, rows, heads * hd);
    Tensor att = cpu.allocate(cpu.attentionStateFloats(rows, heads, hd, maxLen));
    Tensor out = cpu.allocate(rows, heads * hd);
    cpu.attentionForward(out, att, qt, kCache, vCache, slots, pos, rows, heads, kvHeads, hd, maxLen);
    float[] r = randoms(rows * heads * hd);
    Tensor dq = cpu.allocate(rows, heads * hd);
    Tensor dk = cpu.allocate(slotCount, maxLen, kvDim);
    Tensor dv = cpu.allocate(slotCount, maxLen, kvDim);
    cpu.attentionBackward(dq, dk, dv, buffer(r, rows, heads * hd), out, qt, kCache, vCache, att, slots, pos,
        rows, heads, kvHeads, hd, maxLen);
    double[] qd = toDouble(q), kd = toDouble(kc), vd = toDouble(vc);
    assertClose(finiteDifferences(qd, x -> dot(attention(x, kd, vd, slots, pos, rows, heads, kvHeads, hd, maxLen), r)),
        read(dq), 2e-4, "attention dq");
    assertClose(finiteDifferences(kd, x -> dot(attention(qd, x, vd, slots, pos, rows, heads, kvHeads, hd, maxLen), r)),
        read(dk), 2e-4, "attention dK");
    assertClose(finiteDifferences(vd, x -> dot(attention(qd, kd, x, slots, pos, rows, heads, kvHeads, hd, maxLen), r)),
        read(dv), 2e-4, "attention dV");

    // the store's backward gathers the rows the forward scattered
    Tensor dkRows = cpu.allocate(rows, kvDim);
    Tensor dvRows = cpu.allocate(rows, kvDim);
    cpu.kvStoreBackward(dkRows, dvRows, dk, dv, slots, pos, rows, kvDim, maxLen);
    float[] dkc = read(dk), gk = read(dkRows), gv = read(dvRows), dvc = read(dv);
    for (int t = 0; t < rows; t++) {
      for (int i = 0; i < kvDim; i++) {
        int at = (slots[t] * maxLen + pos[t]) * kvDim + i;
        assertEquals(dkc[at], gk[t * kvDim + i], 0f);
        assertEquals(dvc[at], gv[t * kvDim + i], 0f);
      }
    }
  }

  // ---------------------------------------------------------------- swiglu

  @Test
  void swigluBackwardMatchesFiniteDifferences() {
    int rows = 3, dim = 45; // 135 elements: vector lanes and a tail
    float[] gate = randoms(rows * dim);
    float[] up = randoms(rows * dim);
    float[] r = randoms(rows * dim);
    Tensor dg = cpu.allocate(rows, dim);
    Tensor du = cpu.allocate(rows, dim);
    cpu.swigluBackward(dg, du, buffer(r, rows, dim), buffer(gate, rows, dim), buffer(up, rows, dim), rows, dim);
    double[] gd = toDouble(gate), ud = toDouble(up);
    Function<double[][], Double> loss = gu -> {
      double s = 0;
      for (int i = 0; i < r.length; i++) {
        double x = gu[0][i];
        s += x / (1 + Math.exp(-x)) * gu[1][i] * r[i];
      }
      return s;
    };
    assertClose(finiteDifferences(gd, x -> loss.apply(new double[][] {x, ud})), read(dg), 2e-5, "swiglu dgate");
    assertClose(finiteDifferences(ud, x -> loss.apply(new double[][] {gd, x})), read(du), 2e-5, "swiglu dup");
  }

  // ---------------------------------------------------------------- cross-entropy

  @Test
  void crossEntropyGivesLossAndScaledGradientInOnePassIgnoringMaskedRows() {
    int rows = 4, vocab = 51;
    int[] targets = {3, -100, 50, 0};
    float scale = 1f / 7; // e.g. 7 counted tokens in the whole optimizer step
    float[] z = randoms(rows * vocab);
    for (int i = 0; i < z.length; i++) {
      z[i] *= 4; // peaked rows
    }
    Tensor logits = buffer(z, rows, vocab);
    Tensor losses = cpu.allocate(rows);
    cpu.crossEntropyForward(losses, logits, targets, -100, rows, vocab, scale);
    Function<double[], Double> total = zs -> {
      double s = 0;
      for (int t = 0; t < rows; t++) {
        if (targets[t] == -100) {
          continue;
        }
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
          max = Math.max(max, zs[t * vocab + i]);
        }
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
          sum += Math.exp(zs[t * vocab + i] - max);
        }
        s += Math.log(sum) + max - zs[t * vocab + targets[t]];
      }
      return s * scale;
    };
    float[] l = read(losses);
    double sum = 0;
    for (float v : l) {
      sum += v;
    }
    assertEquals(0f, l[1], 0f, "an ignored row has loss 0");
    assertEquals(total.apply(toDouble(z)) / scale, sum, 1e-5 * Math.abs(sum));
    assertClose(finiteDifferences(toDouble(z), total), read(logits), 1e-5, "dlogits");
  }

  // ---------------------------------------------------------------- dropout

  @Test
  void dropoutMaskIsAFunctionOfSeedAndIndexAndItsBackwardIsTheSameCall() {
    int n = 10_001;
    float p = 0.3f;
    float[] x = randoms(n);
    Tensor out1 = cpu.allocate(n);
    Tensor out2 = cpu.allocate(n);
    cpu.dropoutForward(out1, buffer(x, n), p, 1234, n);
    cpu.dropoutForward(out2, buffer(x, n), p, 1234, n);
    float[] a = read(out1);
    assertArrayEquals(a, read(out2), "same seed, same mask");
    int dropped = 0;
    for (int i = 0; i < n; i++) {
      if (a[i] == 0f) {
        dropped++;
      } else {
        assertEquals(x[i] / (1 - p), a[i], 1e-6f * Math.abs(a[i]));
      }
    }
    assertEquals(p, dropped / (double) n, 0.02, "fraction dropped");
    cpu.dropoutForward(out2, buffer(x, n), p, 1235, n);
    float[] b = read(out2);
    int differ = 0;
    for (int i = 0; i < n; i++) {
      if ((a[i] == 0f) != (b[i] == 0f)) {
        differ++;
      }
    }
    assertTrue(differ > n / 5, "another seed gives another mask (" + differ + " of " + n + " differ)");
    // backward: d/dx sum(dropout(x) * r) = dropout(r) with the same mask
    float[] r = randoms(n);
    Tensor g = cpu.allocate(n);
    cpu.dropoutForward(g, buffer(r, n), p, 1234, n);
    float[] gr = read(g);
    for (int i = 0; i < n; i++) {
      assertEquals(a[i] == 0f ? 0f : r[i] / (1 - p), gr[i], 1e-6f * Math.abs(gr[i]));
    }
  }

  // ---------------------------------------------------------------- optimizer

  @Test
  void adamwStepIsBitIdenticalToTheHostAdamWAndNormIsTheSumOfSquares() {
    int n = 1003;
    float[] p = randoms(n);
    float[] hostP = p.clone();
    AdamW.Hyperparameters h = AdamW.Hyperparameters.recipe();
    AdamW host = new AdamW(h, new int[] {n});
    Tensor pt = buffer(p, n);
    Tensor gt = cpu.allocate(n);
    Tensor m = cpu.allocate(n);
    Tensor v = cpu.allocate(n);
    for (int step = 1; step <= 5; step++) {
      float[] g = randoms(n);
      double lr = 2e-4 * step;
      host.step(List.of(hostP), List.of(g), lr);
      cpu.copyFromHost(g, gt, 0);
      double bc1 = 1 - Math.pow(h.beta1(), step);
      double bc2 = 1 - Math.pow(h.beta2(), step);
      cpu.adamwStep(pt, gt, m, v, n, (float) (1 - lr * h.weightDecay()), (float) (1 - h.beta1()),
          (float) h.beta2(), (float) (1 - h.beta2()), (float) (lr / bc1), (float) Math.sqrt(bc2), (float) h.eps());
      assertArrayEquals(hostP, read(pt), "step " + step);
    }
    assertArrayEquals(host.expAvg(0), read(m));
    assertArrayEquals(host.expAvgSq(0), read(v));
    float[] g = read(gt);
    double ss = 0;
    for (float f : g) {
      ss += (double) f * f;
    }
    assertEquals(ss, cpu.squaredNorm(gt, n), 1e-12 * ss);
    cpu.scale(gt, n, 0.5f);
    assertEquals(g[17] * 0.5f, read(gt)[17], 0f);
  }

  /**
   * The squared norm of many tensors (the SPI's default, one loop over the single-tensor op):
   * each whole tensor counted once, in double, against the sum of squares computed here; a view
   * counts only its own elements.
   */
  @Test
  void squaredNormOfManyTensorsIsTheSumOfTheirSquares() {
    int[] sizes = {1, 4096 * 16, 17, 3 * 1000};
    List<Tensor> ts = new java.util.ArrayList<>();
    double want = 0;
    double singles = 0;
    for (int size : sizes) {
      float[] v = randoms(size);
      Tensor t = cpu.allocate(size);
      cpu.copyFromHost(v, t, 0);
      ts.add(t);
      for (float f : v) {
        want += (double) f * f;
      }
      singles += cpu.squaredNorm(t, size);
    }
    Tensor big = cpu.allocate(100);
    float[] hundred = randoms(100);
    cpu.copyFromHost(hundred, big, 0);
    ts.add(big.view(10, 5, 2)); // elements 10..19 only
    for (int i = 10; i < 20; i++) {
      want += (double) hundred[i] * hundred[i];
    }
    singles += cpu.squaredNorm(big.view(10, 10), 10);
    assertEquals(want, cpu.squaredNorm(ts), 1e-12 * want);
    assertEquals(singles, cpu.squaredNorm(ts), 1e-12 * want);
    assertEquals(0.0, cpu.squaredNorm(List.of()), 0.0);
  }

  // ---------------------------------------------------------------- matmul, the backward's transposes

  @Test
  void inputGradientProductMatchesPlainMathForMappedWeights() {
    int[][] sizes = {{1, 1, 1}, {5, 33, 7}, {9, 17, 40}, {4, 16, 16}, {13, 70, 3}, {6, 19, 600}, {7, 300, 130}};
    for (int[] s : sizes) {
      int m = s[0], n = s[1], k = s[2];
      for (DType dtype : DType.values()) {
        float[] a = randoms(m * k);
        float[] w = randoms(k * n);
        MemorySegment seg = arena.allocate((long) w.length * dtype.byteSize(), 8);
        float[] exact = new float[w.length];
        for (int i = 0; i < w.length; i++) {
          switch (dtype) {
            case F32 -> {
              seg.set(CpuTensor.FLOAT_LE, i * 4L, w[i]);
              exact[i] = w[i];
            }
            case BF16 -> {
              short bits = (short) (Float.floatToRawIntBits(w[i]) >>> 16);
              seg.set(CpuTensor.SHORT_LE, i * 2L, bits);
              exact[i] = Float.intBitsToFloat((bits & 0xffff) << 16);
            }
            case F16 -> {
              short bits = Float.floatToFloat16(w[i]);
              seg.set(CpuTensor.SHORT_LE, i * 2L, bits);
              exact[i] = Float.float16ToFloat(bits);
            }
          }
        }
        Tensor wt = cpu.weight(new TensorInfo("w", dtype, new long[] {k, n}, seg));
        float[] c0 = randoms(m * n);
        Tensor c = buffer(c0, m, n);
        cpu.matmul(c, buffer(a, m, k), false, wt, false, m, n, k, 0.5f, 1f);
        float[] got = read(c);
        for (int i = 0; i < m; i++) {
          for (int j = 0; j < n; j++) {
            double sum = 0, abs = 0;
            for (int x = 0; x < k; x++) {
              sum += (double) a[i * k + x] * exact[x * n + j];
              abs += Math.abs((double) a[i * k + x] * exact[x * n + j]);
            }
            double want = 0.5 * sum + c0[i * n + j];
            assertEquals(want, got[i * n + j], 1e-5 * (abs + Math.abs(c0[i * n + j])) + 1e-6,
                dtype + " " + m + "x" + n + "x" + k + " at " + i + "," + j);
          }
        }
      }
    }
  }
}
