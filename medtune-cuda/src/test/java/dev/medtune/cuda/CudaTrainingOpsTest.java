package dev.medtune.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Every training op of the CUDA backend against the CPU backend (the reference meaning of each
 * op, itself checked against float64 finite differences in medtune-cpu) on fresh random inputs,
 * sizes that are not multiples of warps or blocks, outputs poisoned with NaN first (NaN never
 * passes). Tolerances, per element:
 * <ul>
 *   <li>gathers (KV-store backward), dropout (the same mask, bit for bit), zero: exact;
 *   <li>elementwise float32 (RoPE backward, SwiGLU backward, scale, AdamW): {@code 1e-6 + 1e-5 |ref|}
 *       (hardware exp, fused multiply-add);
 *   <li>reductions in float32 in another order than the CPU's (RMSNorm backward, attention
 *       backward, cross-entropy): {@code 1e-5 |ref| + 1e-4 max|ref|} - the second term is the
 *       rounding of sums whose terms cancel (attention's ds sums to zero per row, RMSNorm's
 *       projection removes the mean); an indexing or math error is of the order of {@code max|ref|};
 *   <li>squared norm (double, another order), of one tensor or of many with one wait: {@code 1e-9} relative.
 * </ul>
 * On a machine without an NVIDIA GPU (CI) every test is skipped, with the reason.
 */
class CudaTrainingOpsTest {

  private static CudaBackend cuda;
  private static Backend cpu;
  private final Random random = new Random(System.nanoTime());

  @BeforeAll
  static void open() {
    if (CudaBackendProvider.check() != null) {
      System.err.println("CUDA tests skipped: " + CudaBackendProvider.check());
      return;
    }
    cuda = CudaBackendProvider.open();
    cpu = CpuBackendProvider.create(4);
  }

  @BeforeEach
  void needsAGpu() {
    assumeTrue(cuda != null, () -> "CUDA tests skipped: " + CudaBackendProvider.check());
  }

  @AfterAll
  static void close() {
    if (cuda != null) {
      cuda.close();
      cpu.close();
    }
  }

  // ---------------------------------------------------------------- helpers

  private float[] randoms(int n, double scale) {
    float[] f = new float[n];
    for (int i = 0; i < n; i++) {
      f[i] = (float) (random.nextGaussian() * scale);
    }
    return f;
  }

  private record Pair(Tensor cpu, Tensor gpu) {}

  private static Pair pair(float[] values, long... shape) {
    Tensor c = cpu.allocate(shape);
    Tensor g = cuda.allocate(shape);
    cpu.copyFromHost(values, c, 0);
    cuda.copyFromHost(values, g, 0);
    return new Pair(c, g);
  }

  /** A buffer whose GPU copy is poisoned with NaN, so unwritten elements fail. */
  private static Pair output(long... shape) {
    long n = Arrays.stream(shape).reduce(1, (a, b) -> a * b);
    float[] nans = new float[(int) n];
    Arrays.fill(nans, Float.NaN);
    Tensor c = cpu.allocate(shape);
    Tensor g = cuda.allocate(shape);
    cuda.copyFromHost(nans, g, 0);
    return new Pair(c, g);
  }

  private static float[] read(Backend b, Tensor t) {
    float[] f = new float[(int) t.size()];
    b.copyToHost(t, 0, f, f.length);
    return f;
  }

  private static void compare(String op, String what, float[] want, float[] got, double abs, double rel,
      double relToMax) {
    assertEquals(want.length, got.length);
    double max = 0;
    for (float w : want) {
      max = Math.max(max, Math.abs(w));
    }
    double worst = 0;
    int bad = -1;
    double[] tol = new double[want.length];
    for (int i = 0; i < want.length; i++) {
      tol[i] = abs + rel * Math.abs(want[i]) + relToMax * max;
      double err = Math.abs((double) got[i] - want[i]);
      worst = Double.isNaN(err) || Double.isNaN(worst) ? Double.NaN : Math.max(worst, err);
      if (!(err <= tol[i]) && bad < 0) { // NaN fails
        bad = i;
      }
    }
    String text = abs == 0 && rel == 0 && relToMax == 0 ? "exact"
        : relToMax == 0 ? String.format("%.0e + %.0e |ref|", abs, rel)
        : String.format("%.0e |ref| + %.0e max|ref|", rel, relToMax);
    CheckTable.row(op, what, worst, text, bad < 0);
    int b = bad;
    assertTrue(bad < 0, () -> op + " " + what + ": element " + b + " expected " + want[b] + " got " + got[b]
        + " (tolerance " + tol[b] + ")");
  }

  // ---------------------------------------------------------------- ops

  @Test
  void rmsnormBackwardAccumulatesIntoDx() {
    for (int dim : new int[] {96, 2048, 4100}) {
      int rows = 7;
      Pair x = pair(randoms(rows * dim, 3), rows, dim);
      Pair w = pair(randoms(dim, 1), dim);
      Pair rstd = output(rows);
      Pair out = output(rows, dim);
      cpu.rmsnormForward(out.cpu, x.cpu, w.cpu, rstd.cpu, 1e-5f, rows, dim);
      cuda.copyFromHost(read(cpu, rstd.cpu), rstd.gpu, 0); // the backward's input, the same on both
      Pair dout = pair(randoms(rows * dim, 1), rows, dim);
      Pair dx = pair(randoms(rows * dim, 1), rows, dim); // accumulated into
      cpu.rmsnormBackward(dx.cpu, dout.cpu, x.cpu, w.cpu, rstd.cpu, rows, dim);
      cuda.rmsnormBackward(dx.gpu, dout.gpu, x.gpu, w.gpu, rstd.gpu, rows, dim);
      compare("rmsnormBackward", "7 rows x " + dim + " (dx +=)", read(cpu, dx.cpu), read(cuda, dx.gpu), 0, 1e-5, 1e-4);
    }
  }

  @Test
  void ropeBackwardTurnsByTheNegativeAngle() {
    int[][] shapes = {{9, 6, 16}, {5, 32, 64}, {3, 8, 128}};
    for (int[] s : shapes) {
      int rows = s[0], heads = s[1], headDim = s[2];
      int maxPos = 100;
      float[] table = new float[maxPos * headDim];
      for (int p = 0; p < maxPos; p++) {
        for (int i = 0; i < headDim / 2; i++) {
          double angle = p * Math.pow(10000, -2.0 * i / headDim);
          table[p * headDim + i] = (float) Math.cos(angle);
          table[p * headDim + headDim / 2 + i] = (float) Math.sin(angle);
        }
      }
      Pair t = pair(table, maxPos, headDim);
      Pair dx = pair(randoms(rows * heads * headDim, 1), rows, heads * headDim);
      int[] positions = new int[rows];
      for (int i = 0; i < rows; i++) {
        positions[i] = random.nextInt(maxPos);
      }
      cpu.ropeBackward(dx.cpu, t.cpu, positions, rows, heads, headDim);
      cuda.ropeBackward(dx.gpu, t.gpu, positions, rows, heads, headDim);
      compare("ropeBackward", rows + " rows, " + heads + " heads of " + headDim, read(cpu, dx.cpu),
          read(cuda, dx.gpu), 1e-6, 1e-5, 0);
    }
  }

  @Test
  void kvStoreAndAttentionBackward() {
    // the tiled and per-row kernels, from the probabilities (CudaFlashAttentionTest checks the
    // flash-attention kernels)
    boolean flash = cuda.flashAttention();
    cuda.flashAttention(false);
    try {
      kvStoreAndTiledAttentionBackward();
    } finally {
      cuda.flashAttention(flash);
    }
  }

  private void kvStoreAndTiledAttentionBackward() {
    // {rows, heads, kvHeads, headDim, slots, maxLength}
    int[][] shapes = {{10, 6, 2, 16, 3, 48}, {4, 32, 8, 64, 2, 300}, {6, 4, 4, 32, 1, 20}, {3, 8, 1, 128, 2, 130},
        {200, 8, 2, 64, 2, 100}, {40, 4, 2, 256, 2, 30}, {300, 8, 8, 128, 1, 300}};
    for (int[] s : shapes) {
      int rows = s[0], heads = s[1], kvHeads = s[2], headDim = s[3], slots = s[4], maxLength = s[5];
      int kvDim = kvHeads * headDim;
      int cache = slots * maxLength * kvDim;
      Pair kc = pair(randoms(cache, 1), slots, maxLength, kvDim);
      Pair vc = pair(randoms(cache, 1), slots, maxLength, kvDim);
      Pair q = pair(randoms(rows * heads * headDim, 1), rows, heads * headDim);
      int[] sl = new int[rows];
      int[] pos = new int[rows];
      boolean[][] used = new boolean[slots][maxLength];
      for (int t = 0; t < rows; t++) {
        do {
          sl[t] = random.nextInt(slots);
          pos[t] = t == 0 ? maxLength - 1 : random.nextInt(maxLength);
        } while (used[sl[t]][pos[t]]);
        used[sl[t]][pos[t]] = true;
      }
      String what = String.format("%d rows, %d/%d heads of %d, %d slots x %d", rows, heads, kvHeads, headDim, slots,
          maxLength);

      // the forward's probabilities, from the CPU, as the backward's input on both
      Pair out = output(rows, heads * headDim);
      Pair att = output(rows, heads, maxLength);
      cpu.attentionForward(out.cpu, att.cpu, q.cpu, kc.cpu, vc.cpu, sl, pos, rows, heads, kvHeads, headDim, maxLength);
      // the GPU's forward too (query tiles of 16 rows that mix slots; head dim 256: per-row kernel)
      Pair outG = output(rows, heads * headDim);
      Pair attG = output(rows, heads, maxLength);
      cuda.attentionForward(outG.gpu, attG.gpu, q.gpu, kc.gpu, vc.gpu, sl, pos, rows, heads, kvHeads, headDim, maxLength);
      compare("attentionForward", what, read(cpu, out.cpu), read(cuda, outG.gpu), 1e-6, 1e-5, 0);
      float[] attCpu = read(cpu, att.cpu);
      float[] attGpu = read(cuda, attG.gpu);
      for (int t = 0; t < rows; t++) { // past positions[t] the GPU leaves its NaN poison: compare up to it
        for (int h = 0; h < heads; h++) {
          for (int j = pos[t] + 1; j < maxLength; j++) {
            attGpu[(t * heads + h) * maxLength + j] = attCpu[(t * heads + h) * maxLength + j];
          }
        }
      }
      compare("attentionForward att", what, attCpu, attGpu, 1e-6, 1e-5, 0);
      cuda.copyFromHost(attCpu, att.gpu, 0);

      Pair dout = pair(randoms(rows * heads * headDim, 1), rows, heads * headDim);
      Pair dq = output(rows, heads * headDim);
      float[] dk0 = randoms(cache, 1); // accumulated into
      float[] dv0 = randoms(cache, 1);
      Pair dkc = pair(dk0, slots, maxLength, kvDim);
      Pair dvc = pair(dv0, slots, maxLength, kvDim);
      cpu.attentionBackward(dq.cpu, dkc.cpu, dvc.cpu, dout.cpu, out.cpu, q.cpu, kc.cpu, vc.cpu, att.cpu, sl, pos, rows, heads,
          kvHeads, headDim, maxLength);
      cuda.attentionBackward(dq.gpu, dkc.gpu, dvc.gpu, dout.gpu, outG.gpu, q.gpu, kc.gpu, vc.gpu, att.gpu, sl, pos, rows, heads,
          kvHeads, headDim, maxLength);
      compare("attentionBackward dq", what, read(cpu, dq.cpu), read(cuda, dq.gpu), 0, 1e-5, 1e-4);
      compare("attentionBackward dK", what + " (+=)", read(cpu, dkc.cpu), read(cuda, dkc.gpu), 0, 1e-5, 1e-4);
      compare("attentionBackward dV", what + " (+=)", read(cpu, dvc.cpu), read(cuda, dvc.gpu), 0, 1e-5, 1e-4);
      float[] dkGot = read(cuda, dkc.gpu);
      boolean changed = false;
      for (int i = 0; i < cache && !changed; i++) {
        changed = dkGot[i] != dk0[i];
      }
      assertTrue(changed, "attentionBackward left dK unchanged");

      Pair dk = output(rows, kvDim);
      Pair dv = output(rows, kvDim);
      cpu.kvStoreBackward(dk.cpu, dv.cpu, dkc.cpu, dvc.cpu, sl, pos, rows, kvDim, maxLength);
      cuda.kvStoreBackward(dk.gpu, dv.gpu, dkc.gpu, dvc.gpu, sl, pos, rows, kvDim, maxLength);
      // the gather itself is exact: compare with the GPU's own dK/dV at (slot, position)
      float[] dvGot = read(cuda, dvc.gpu);
      float[] wantK = new float[rows * kvDim];
      float[] wantV = new float[rows * kvDim];
      for (int t = 0; t < rows; t++) {
        int at = (sl[t] * maxLength + pos[t]) * kvDim;
        System.arraycopy(dkGot, at, wantK, t * kvDim, kvDim);
        System.arraycopy(dvGot, at, wantV, t * kvDim, kvDim);
      }
      compare("kvStoreBackward", what + " (dk)", wantK, read(cuda, dk.gpu), 0, 0, 0);
      compare("kvStoreBackward", what + " (dv)", wantV, read(cuda, dv.gpu), 0, 0, 0);
    }
  }

  @Test
  void swigluBackward() {
    int rows = 7;
    int dim = 1000;
    Pair g = pair(randoms(rows * dim, 3), rows, dim);
    Pair u = pair(randoms(rows * dim, 1), rows, dim);
    Pair d = pair(randoms(rows * dim, 1), rows, dim);
    Pair dg = output(rows, dim);
    Pair du = output(rows, dim);
    cpu.swigluBackward(dg.cpu, du.cpu, d.cpu, g.cpu, u.cpu, rows, dim);
    cuda.swigluBackward(dg.gpu, du.gpu, d.gpu, g.gpu, u.gpu, rows, dim);
    compare("swigluBackward", "7 x 1000 (dgate)", read(cpu, dg.cpu), read(cuda, dg.gpu), 1e-6, 1e-5, 0);
    compare("swigluBackward", "7 x 1000 (dup)", read(cpu, du.cpu), read(cuda, du.gpu), 1e-6, 1e-5, 0);
  }

  @Test
  void crossEntropyLossAndGradientInOnePass() {
    for (int[] s : new int[][] {{9, 300}, {5, 128256}, {64, 1000}}) {
      int rows = s[0], vocab = s[1];
      Pair z = pair(randoms(rows * vocab, 3), rows, vocab);
      int[] targets = new int[rows];
      for (int t = 0; t < rows; t++) {
        targets[t] = t % 3 == 1 ? -100 : random.nextInt(vocab);
      }
      Pair losses = output(rows);
      float scale = 1f / 37;
      cpu.crossEntropyForward(losses.cpu, z.cpu, targets, -100, rows, vocab, scale);
      cuda.crossEntropyForward(losses.gpu, z.gpu, targets, -100, rows, vocab, scale);
      String what = rows + " x " + vocab + ", every third row ignored";
      compare("crossEntropyForward", what + " (losses)", read(cpu, losses.cpu), read(cuda, losses.gpu), 1e-6, 1e-5, 0);
      compare("crossEntropyForward", what + " (dlogits)", read(cpu, z.cpu), read(cuda, z.gpu), 0, 1e-5, 1e-4);
    }
    Pair z = pair(randoms(300, 1), 1, 300);
    Pair l = output(1);
    var e = assertThrows(IllegalArgumentException.class,
        () -> cuda.crossEntropyForward(l.gpu, z.gpu, new int[] {300}, -100, 1, 300, 1f));
    assertTrue(e.getMessage().contains("target 300 of row 0"), e.getMessage());
  }

  @Test
  void dropoutKeepsTheCpusMaskBitForBit() {
    long count = 100_003;
    for (long seed : new long[] {0, 3407, -7_777_777_777L}) {
      for (float p : new float[] {0.1f, 0.5f}) {
        Pair x = pair(randoms((int) count, 1), count);
        Pair out = output(count);
        cpu.dropoutForward(out.cpu, x.cpu, p, seed, count);
        cuda.dropoutForward(out.gpu, x.gpu, p, seed, count);
        compare("dropoutForward", "100003, p=" + p + ", seed " + seed, read(cpu, out.cpu), read(cuda, out.gpu), 0, 0, 0);
      }
    }
  }

  @Test
  void zeroScaleSquaredNormAdamW() {
    int n = 70_001;
    Pair t = pair(randoms(n, 1), n);
    cpu.scale(t.cpu, n - 1, 0.37f);
    cuda.scale(t.gpu, n - 1, 0.37f);
    compare("scale", n - 1 + " of " + n, read(cpu, t.cpu), read(cuda, t.gpu), 1e-6, 1e-5, 0);
    double want = cpu.squaredNorm(t.cpu, n);
    double got = cuda.squaredNorm(t.gpu, n);
    double err = Math.abs(got - want);
    boolean ok = err <= 1e-9 * want;
    CheckTable.row("squaredNorm", n + " elements", err, "1e-9 relative", ok);
    assertTrue(ok, "squaredNorm " + got + ", CPU " + want);
    cpu.zero(t.cpu, 1000);
    cuda.zero(t.gpu, 1000);
    compare("zero", "1000 of " + n, read(cpu, t.cpu), read(cuda, t.gpu), 1e-6, 1e-5, 0);

    Pair p = pair(randoms(n, 0.1), n);
    Pair g = pair(randoms(n, 1e-3), n);
    Pair m = pair(randoms(n, 1e-3), n);
    float[] v0 = randoms(n, 1e-6);
    for (int i = 0; i < n; i++) {
      v0[i] = Math.abs(v0[i]);
    }
    Pair v = pair(v0, n);
    double lr = 2e-4;
    int step = 3;
    float decay = (float) (1 - lr * 0.01);
    float stepSize = (float) (lr / (1 - Math.pow(0.9, step)));
    float bc2 = (float) Math.sqrt(1 - Math.pow(0.999, step));
    cpu.adamwStep(p.cpu, g.cpu, m.cpu, v.cpu, n, decay, 0.1f, 0.999f, 0.001f, stepSize, bc2, 1e-8f);
    cuda.adamwStep(p.gpu, g.gpu, m.gpu, v.gpu, n, decay, 0.1f, 0.999f, 0.001f, stepSize, bc2, 1e-8f);
    compare("adamwStep", n + " (param)", read(cpu, p.cpu), read(cuda, p.gpu), 1e-7, 1e-5, 0);
    compare("adamwStep", n + " (exp_avg)", read(cpu, m.cpu), read(cuda, m.gpu), 1e-9, 1e-5, 0);
    compare("adamwStep", n + " (exp_avg_sq)", read(cpu, v.cpu), read(cuda, v.gpu), 1e-12, 1e-5, 0);
  }

  /**
   * The squared norm of many tensors with one wait (the gradient norm of a step): 448 tensors of
   * the 8B step's LoRA shapes scaled down (r x 4096-ish, r x 1024-ish, ragged sizes), views inside
   * a larger buffer, against the CPU backend; then a shorter list over the same tensors and a
   * longer one (the device's table of addresses re-uploaded and grown).
   */
  @Test
  void squaredNormOfManyTensors() {
    java.util.List<Tensor> onCpu = new java.util.ArrayList<>();
    java.util.List<Tensor> onGpu = new java.util.ArrayList<>();
    Pair big = pair(randoms(50_000, 1), 50_000);
    for (int i = 0; i < 448; i++) {
      if (i % 50 == 7) { // a view: elements [1000 i % 40000, + 333)
        long at = 1000L * i % 40_000;
        onCpu.add(big.cpu().view(at, 333));
        onGpu.add(big.gpu().view(at, 333));
        continue;
      }
      int n = i % 2 == 0 ? 16 * 410 + i : 4 * 1031 - i;
      Pair t = pair(randoms(n, 1e-3 * (1 + i % 7)), n);
      onCpu.add(t.cpu());
      onGpu.add(t.gpu());
    }
    for (int[] range : new int[][] {{0, 448}, {3, 100}, {0, 448}, {0, 1}}) {
      var c = onCpu.subList(range[0], range[1]);
      var g = onGpu.subList(range[0], range[1]);
      double want = cpu.squaredNorm(c);
      double single = 0;
      for (Tensor t : c) {
        single += cpu.squaredNorm(t, t.size());
      }
      double got = cuda.squaredNorm(g);
      double err = Math.abs(got - want);
      boolean ok = err <= 1e-9 * want && want > 0 && want == single;
      CheckTable.row("squaredNorm (many)", (range[1] - range[0]) + " tensors", err / want, "1e-9 relative", ok);
      assertTrue(ok, "squaredNorm of tensors " + range[0] + ".." + range[1] + ": " + got + ", CPU " + want);
    }
    assertEquals(0.0, cuda.squaredNorm(java.util.List.of()), 0.0);
    // a bf16 tensor (as a weight would be) is refused, naming its place in the list
    Tensor bf16 = new CudaTensor(dev.medtune.model.safetensors.DType.BF16, new long[] {10},
        ((CudaTensor) onGpu.get(0)).base, 0, 10);
    var e = assertThrows(IllegalArgumentException.class,
        () -> cuda.squaredNorm(java.util.List.of(onGpu.get(0), bf16)));
    assertTrue(e.getMessage().contains("tensor 1"), e.getMessage());
  }
}
