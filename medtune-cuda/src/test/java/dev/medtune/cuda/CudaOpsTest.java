package dev.medtune.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.TensorInfo;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Every CUDA op against the CPU backend (the reference meaning of each op) on fresh random
 * inputs, sizes that are not multiples of warps or tiles, outputs poisoned with NaN before each
 * op (an element the op fails to write fails the check; NaN never passes). Tolerances, per
 * element, with {@code S = sum |a_i b_i|} of the terms of a dot product:
 * <ul>
 *   <li>copies, gathers, the residual add, the KV store: exact (0);
 *   <li>float32 products (cuBLASLt, {@code CUBLAS_COMPUTE_32F}, TF32 off): {@code 2e-6 S + 1e-6};
 *   <li>float32 products with TF32 ({@code CUBLAS_COMPUTE_32F_FAST_TF32}, the default from
 *       compute capability 8.0): each operand is rounded to TF32's 10-bit mantissa (relative
 *       error under {@code 2^-11} rounded to nearest, {@code 2^-10} if truncated), so each term
 *       {@code a_i b_i} is off by under {@code 2^-9 |a_i b_i|}, plus float32 accumulation:
 *       {@code (2^-9 + 2e-6) S + 1e-6}; both settings are checked on every transpose;
 *   <li>products with a bf16 weight, where the activation is rounded to bf16 (unit roundoff
 *       {@code 2^-8}): {@code 2^-8 S + 1e-6}; f16 ({@code 2^-11}): {@code 2^-11 S + 1e-6};
 *   <li>RMSNorm, RoPE, SwiGLU, softmax, attention (float32, another summation order, hardware
 *       exp): {@code 1e-6 + 1e-5 |ref|}.
 * </ul>
 * On a machine without an NVIDIA GPU (CI) every test is skipped, with the reason.
 */
class CudaOpsTest {

  private static CudaBackend cuda;
  private static Backend cpu;
  private static final Arena arena = Arena.ofShared();
  private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private final Random random = new Random(System.nanoTime());

  @BeforeAll
  static void open() {
    if (CudaBackendProvider.check() != null) {
      System.err.println("CUDA tests skipped: " + CudaBackendProvider.check());
      return;
    }
    cuda = CudaBackendProvider.open();
    cpu = CpuBackendProvider.create(4);
    System.out.println("CUDA backend: " + cuda.description());
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
    float[] zeros = new float[(int) n];
    float[] nans = new float[(int) n];
    Arrays.fill(nans, Float.NaN);
    Tensor c = cpu.allocate(shape);
    Tensor g = cuda.allocate(shape);
    cpu.copyFromHost(zeros, c, 0);
    cuda.copyFromHost(nans, g, 0);
    return new Pair(c, g);
  }

  private static float[] read(Backend b, Tensor t) {
    float[] f = new float[(int) t.size()];
    b.copyToHost(t, 0, f, f.length);
    return f;
  }

  /** The same weight on both backends, stored as {@code dtype}. */
  private static Pair weight(DType dtype, float[] values, long... shape) {
    MemorySegment seg = arena.allocate((long) values.length * dtype.byteSize(), 8);
    for (int i = 0; i < values.length; i++) {
      switch (dtype) {
        case F32 -> seg.set(FLOAT_LE, i * 4L, values[i]);
        case BF16 -> seg.set(SHORT_LE, i * 2L, (short) (Float.floatToRawIntBits(values[i]) >>> 16));
        case F16 -> seg.set(SHORT_LE, i * 2L, Float.floatToFloat16(values[i]));
      }
    }
    TensorInfo info = new TensorInfo("test.weight", dtype, shape, seg);
    return new Pair(cpu.weight(info), cuda.weight(info));
  }

  /** Compares element by element: |got - want| <= tol[i]; records a row and asserts. */
  private static void compare(String op, String what, float[] want, float[] got, double[] tol, String tolText) {
    assertEquals(want.length, got.length);
    double worst = 0;
    int bad = -1;
    for (int i = 0; i < want.length; i++) {
      double err = Math.abs((double) got[i] - want[i]);
      worst = Double.isNaN(err) || Double.isNaN(worst) ? Double.NaN : Math.max(worst, err);
      if (!(err <= tol[i]) && bad < 0) { // NaN fails
        bad = i;
      }
    }
    CheckTable.row(op, what, worst, tolText, bad < 0);
    int b = bad;
    assertTrue(bad < 0, () -> op + " " + what + ": element " + b + " expected " + want[b] + " got " + got[b]
        + " (tolerance " + tol[b] + ")");
  }

  private static void compare(String op, String what, float[] want, float[] got, double abs, double rel) {
    double[] tol = new double[want.length];
    for (int i = 0; i < tol.length; i++) {
      tol[i] = abs + rel * Math.abs(want[i]);
    }
    String text = rel == 0 && abs == 0 ? "exact" : String.format("%.0e + %.0e |ref|", abs, rel);
    compare(op, what, want, got, tol, text);
  }

  private static float[] abs(float[] f) {
    float[] a = new float[f.length];
    for (int i = 0; i < f.length; i++) {
      a[i] = Math.abs(f[i]);
    }
    return a;
  }

  // ---------------------------------------------------------------- matmul

  private void matmulCase(DType bType, boolean transA, boolean transB, int m, int n, int k, float alpha, float beta) {
    matmulCase(bType, transA, transB, m, n, k, alpha, beta, false);
  }

  private void matmulCase(DType bType, boolean transA, boolean transB, int m, int n, int k, float alpha, float beta,
      boolean tf32) {
    boolean was = cuda.tf32();
    cuda.tf32(tf32);
    try {
      matmulCaseAs(bType, transA, transB, m, n, k, alpha, beta, tf32);
    } finally {
      cuda.tf32(was);
    }
  }

  private void matmulCaseAs(DType bType, boolean transA, boolean transB, int m, int n, int k, float alpha, float beta,
      boolean tf32) {
    float[] a = randoms(m * k, 1);
    float[] bv = randoms(k * n, 0.5);
    float[] c0 = randoms(m * n, 1);
    Pair pa = pair(a, m, k);
    Pair pb = bType == DType.F32 && random.nextBoolean() ? pair(bv, k, n) : weight(bType, bv, transB ? n : k, transB ? k : n);
    Pair pc;
    if (beta == 0) {
      pc = output(m, n);
    } else {
      pc = pair(c0, m, n);
    }
    cpu.matmul(pc.cpu, pa.cpu, transA, pb.cpu, transB, m, n, k, alpha, beta);
    cuda.matmul(pc.gpu, pa.gpu, transA, pb.gpu, transB, m, n, k, alpha, beta);
    float[] want = read(cpu, pc.cpu);
    float[] got = read(cuda, pc.gpu);

    // S = |alpha| sum |a||b| + |beta c|, from the CPU backend on absolute values
    float[] bExact = new float[bv.length];
    cpu.copyToHost(pb.cpu, 0, bExact, bExact.length);
    Pair sa = pair(abs(a), m, k);
    Pair sb = pair(abs(bExact), transB ? n : k, transB ? k : n);
    Pair sc = pair(abs(c0), m, n);
    cpu.matmul(sc.cpu, sa.cpu, transA, sb.cpu, transB, m, n, k, Math.abs(alpha), Math.abs(beta));
    float[] s = read(cpu, sc.cpu);
    // gemv.cu (a few rows against a 16-bit B^T, k % 8 == 0) keeps A in float32: only float32 sums
    boolean gemv = cuda.gemvRows() > 0 && bType != DType.F32 && transB && !transA && m <= 4 && k % 8 == 0;
    double unit = gemv ? 1e-5 : switch (bType) {
      case F32 -> tf32 ? Math.scalb(1.0, -9) + 2e-6 : 2e-6;
      case BF16 -> Math.scalb(1.0, -8);
      case F16 -> Math.scalb(1.0, -11);
    };
    double[] tol = new double[s.length];
    for (int i = 0; i < s.length; i++) {
      tol[i] = unit * s[i] + 1e-6;
    }
    String what = String.format("%s%s%s B%s%s m=%d n=%d k=%d a=%.1f b=%.0f", bType, tf32 ? " (TF32)" : "",
        gemv ? " (gemv_rows.cu, " + cuda.gemvRows() + " per warp)" : "", transA ? " A^T" : "",
        transB ? " B^T" : "", m, n, k, alpha, beta);
    compare("matmul", what, want, got, tol, String.format("%.1e S + 1e-6", unit));
  }

  @Test
  void matmulFloat32AllTransposesAlphaBeta() {
    for (boolean ta : new boolean[] {false, true}) {
      for (boolean tb : new boolean[] {false, true}) {
        matmulCase(DType.F32, ta, tb, 37, 300, 96, 1f, 0f);
        matmulCase(DType.F32, ta, tb, 19, 67, 200, 0.5f, 1f);
      }
    }
  }

  @Test
  void matmulFloat32WithTf32AllTransposesAlphaBeta() {
    assumeTrue(cuda.tf32Supported(), () -> "no TF32 on " + cuda.deviceName());
    for (boolean ta : new boolean[] {false, true}) {
      for (boolean tb : new boolean[] {false, true}) {
        matmulCase(DType.F32, ta, tb, 37, 300, 96, 1f, 0f, true);
        matmulCase(DType.F32, ta, tb, 19, 67, 200, 0.5f, 1f, true);
      }
    }
    // the LoRA shapes of the 8B step: x A^T (k = 4096, n = r) and dA += dh^T x (k = rows)
    matmulCase(DType.F32, false, true, 300, 16, 4096, 1f, 0f, true);
    matmulCase(DType.F32, true, false, 16, 1000, 300, 1f, 1f, true);
  }

  @Test
  void matmulWithBf16AndF16Weights() {
    matmulCase(DType.BF16, false, true, 5, 1000, 512, 1f, 0f);      // a linear layer, prefill
    matmulCase(DType.BF16, false, true, 1, 2048, 2048, 1f, 0f);     // decode, 1B width
    matmulCase(DType.BF16, false, true, 64, 520, 96, 0.25f, 1f);    // LoRA-style accumulate
    matmulCase(DType.BF16, false, false, 33, 96, 200, 1f, 0f);      // dx = dy W
    matmulCase(DType.F16, false, true, 7, 300, 96, 1f, 0f);
    matmulCase(DType.F16, false, false, 9, 96, 40, 1f, 0f);
  }

  @Test
  void decodeProductsOfAFewRowsAgainstTheirMath() {
    // gemv_rows.cu: m <= 4 rows, 16-bit weight as B^T, k % 8 == 0 (C poisoned with NaN when beta = 0)
    int was = cuda.gemvRows();
    try {
      for (int perWarp : new int[] {1, 2, 4}) {
        cuda.gemvRows(perWarp);
        for (int m = 1; m <= 4; m++) {
          matmulCase(DType.BF16, false, true, m, 1003, 4096, 1f, 0f);   // n not a multiple of the warps' rows
          matmulCase(DType.F16, false, true, m, 300, 200, 0.5f, 1f);    // k not a multiple of the lanes' stride
        }
        matmulCase(DType.BF16, false, true, 1, 2048, 14336, 1f, 0f);     // the 8B down_proj width
        matmulCase(DType.BF16, false, true, 2, 96, 100, 1f, 0f);         // k % 8 != 0: cuBLASLt
        matmulCase(DType.BF16, false, true, 5, 96, 128, 1f, 0f);         // 5 rows: cuBLASLt
      }
    } finally {
      cuda.gemvRows(was);
    }
  }

  @Test
  void sharedInputProductsAsOneLaunchMatchTheCpu() {
    // Backend.linearShared: q/k/v of a decode step as one gemv_16_multi launch (m <= 4), and the
    // per-product path (m = 5, and widths that are not a multiple of the rows per warp)
    int k = 512;
    int[][] widths = {{256, 64, 64}, {512, 128, 128}, {130, 64, 64}};
    for (int[] ns : widths) {
      for (int m : new int[] {1, 3, 5}) {
        Pair x = pair(randoms(m * k, 1), m, k);
        Tensor[] wc = new Tensor[3];
        Tensor[] wg = new Tensor[3];
        Pair[] out = new Pair[3];
        for (int i = 0; i < 3; i++) {
          Pair w = weight(DType.BF16, randoms(ns[i] * k, 0.5), ns[i], k);
          wc[i] = w.cpu;
          wg[i] = w.gpu;
          out[i] = output(m, ns[i]);
        }
        cpu.linearShared(x.cpu, m, k, wc, new Tensor[] {out[0].cpu, out[1].cpu, out[2].cpu}, ns);
        cuda.linearShared(x.gpu, m, k, wg, new Tensor[] {out[0].gpu, out[1].gpu, out[2].gpu}, ns);
        for (int i = 0; i < 3; i++) {
          // a launch of gemv_rows keeps x in float32 (float32 sums only); cuBLASLt rounds x to bf16
          // (outputs are sums of 512 products of size ~1 x 0.5: |ref| ~ 10)
          boolean oneLaunch = m <= 4 && cuda.gemvRows() > 0 && java.util.Arrays.stream(ns).allMatch(n -> n % cuda.gemvRows() == 0);
          compare("linearShared", String.format("m=%d, widths %d/%d/%d, product %d%s", m, ns[0], ns[1], ns[2], i,
                  oneLaunch ? " (one launch)" : ""),
              read(cpu, out[i].cpu), read(cuda, out[i].gpu), oneLaunch ? 2e-3 : 1e-1, oneLaunch ? 1e-4 : 2e-2);
        }
      }
    }
  }

  @Test
  void aCastOperandIsReusedOnlyWhileItsSourceIsUnchanged() {
    int m = 6, k = 128, n = 96;
    Pair a = pair(randoms(m * k, 1), m, k);
    Pair b = pair(randoms(m * k, 1), m, k);
    Pair d = pair(randoms(m * k, 1), m, k);
    Pair w1 = weight(DType.BF16, randoms(n * k, 0.5), n, k);
    Pair w2 = weight(DType.BF16, randoms(n * k, 0.5), n, k);
    Pair w3 = weight(DType.BF16, randoms(k * k, 0.1), k, k);
    Pair[] c = {output(m, n), output(m, n), output(m, n), output(m, n)};
    for (Backend be : new Backend[] {cpu, cuda}) {
      boolean g = be == cuda;
      be.matmul(g ? c[0].gpu : c[0].cpu, g ? a.gpu : a.cpu, false, g ? w1.gpu : w1.cpu, true, m, n, k, 1f, 0f);
      be.matmul(g ? c[1].gpu : c[1].cpu, g ? a.gpu : a.cpu, false, g ? w2.gpu : w2.cpu, true, m, n, k, 1f, 0f);
      // a product that writes a: the next product from a must cast it again
      be.matmul(g ? a.gpu : a.cpu, g ? b.gpu : b.cpu, false, g ? w3.gpu : w3.cpu, true, m, k, k, 1f, 0f);
      be.matmul(g ? c[2].gpu : c[2].cpu, g ? a.gpu : a.cpu, false, g ? w1.gpu : w1.cpu, true, m, n, k, 1f, 0f);
      // a kernel that writes a: likewise
      be.addForward(g ? a.gpu : a.cpu, g ? a.gpu : a.cpu, g ? d.gpu : d.cpu, m, k);
      be.matmul(g ? c[3].gpu : c[3].cpu, g ? a.gpu : a.cpu, false, g ? w2.gpu : w2.cpu, true, m, n, k, 1f, 0f);
    }
    for (int i = 0; i < c.length; i++) {
      float[] want = read(cpu, c[i].cpu);
      float[] got = read(cuda, c[i].gpu);
      // relative to the row's scale: bf16 rounding of the operand, |err| <= 2^-8 sum|a||w| (bounded here by 2^-6 max|ref|)
      double scale = 0;
      for (float f : want) {
        scale = Math.max(scale, Math.abs(f));
      }
      compare("matmul (cast reuse)", "product " + (i + 1) + " of 4, a rewritten between", want, got,
          Math.scalb(scale, -6), 0);
    }
  }

  // ---------------------------------------------------------------- other ops

  @Test
  void embeddingGathersEveryDtypeExactly() {
    for (DType dt : DType.values()) {
      int vocab = 301;
      int dim = 96;
      Pair table = weight(dt, randoms(vocab * dim, 1), vocab, dim);
      int rows = 11;
      int[] tokens = new int[rows];
      for (int i = 0; i < rows; i++) {
        tokens[i] = i == 3 ? tokens[1] : random.nextInt(vocab);
      }
      tokens[0] = vocab - 1;
      Pair out = output(rows, dim);
      cpu.embeddingForward(out.cpu, table.cpu, tokens, rows, dim);
      cuda.embeddingForward(out.gpu, table.gpu, tokens, rows, dim);
      compare("embeddingForward", dt + " table 301x96, 11 rows", read(cpu, out.cpu), read(cuda, out.gpu), 0, 0);
    }
    // the row gather before lm_head: a float32 activation buffer as the table
    Pair x = pair(randoms(9 * 64, 1), 9, 64);
    Pair out = output(3, 64);
    int[] rows = {8, 0, 4};
    cpu.embeddingForward(out.cpu, x.cpu, rows, 3, 64);
    cuda.embeddingForward(out.gpu, x.gpu, rows, 3, 64);
    compare("embeddingForward", "row gather from an F32 buffer", read(cpu, out.cpu), read(cuda, out.gpu), 0, 0);

    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> cuda.embeddingForward(out.gpu, x.gpu, new int[] {9}, 1, 64));
    assertTrue(e.getMessage().contains("token id 9 at 0 is outside the embedding table of 9 rows"), e.getMessage());
  }

  @Test
  void rmsnormWithAndWithoutRstd() {
    for (int dim : new int[] {96, 2048, 4100}) {
      int rows = 7;
      Pair x = pair(randoms(rows * dim, 3), rows, dim);
      Pair w = weight(DType.BF16, randoms(dim, 1), dim);
      Pair out = output(rows, dim);
      Pair rstd = output(rows);
      cpu.rmsnormForward(out.cpu, x.cpu, w.cpu, rstd.cpu, 1e-5f, rows, dim);
      cuda.rmsnormForward(out.gpu, x.gpu, w.gpu, rstd.gpu, 1e-5f, rows, dim);
      compare("rmsnormForward", "7 rows x " + dim, read(cpu, out.cpu), read(cuda, out.gpu), 1e-6, 1e-5);
      compare("rmsnormForward rstd", "7 rows x " + dim, read(cpu, rstd.cpu), read(cuda, rstd.gpu), 1e-6, 1e-5);
    }
    Pair x = pair(randoms(3 * 64, 1), 3, 64);
    Pair w = weight(DType.F32, randoms(64, 1), 64);
    Pair out = output(3, 64);
    cpu.rmsnormForward(out.cpu, x.cpu, w.cpu, null, 1e-6f, 3, 64);
    cuda.rmsnormForward(out.gpu, x.gpu, w.gpu, null, 1e-6f, 3, 64);
    compare("rmsnormForward", "3 rows x 64, no rstd", read(cpu, out.cpu), read(cuda, out.gpu), 1e-6, 1e-5);
  }

  @Test
  void ropeRotatesPairsAtTheirPositions() {
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
      Pair x = pair(randoms(rows * heads * headDim, 1), rows, heads * headDim);
      int[] positions = new int[rows];
      for (int i = 0; i < rows; i++) {
        positions[i] = random.nextInt(maxPos);
      }
      cpu.ropeForward(x.cpu, t.cpu, positions, rows, heads, headDim);
      cuda.ropeForward(x.gpu, t.gpu, positions, rows, heads, headDim);
      compare("ropeForward", rows + " rows, " + heads + " heads of " + headDim, read(cpu, x.cpu), read(cuda, x.gpu), 1e-6, 1e-5);
    }
  }

  @Test
  void kvStoreAndAttentionAgainstTheCache() {
    // the tiled and per-row kernels, which save the probabilities (CudaFlashAttentionTest checks
    // the flash-attention kernels)
    boolean flash = cuda.flashAttention();
    cuda.flashAttention(false);
    try {
      kvStoreAndTiledAttention();
    } finally {
      cuda.flashAttention(flash);
    }
  }

  private void kvStoreAndTiledAttention() {
    // {rows, heads, kvHeads, headDim, slots, maxLength}
    int[][] shapes = {{10, 6, 2, 16, 3, 48}, {4, 32, 8, 64, 2, 300}, {6, 4, 4, 32, 1, 20}, {3, 8, 1, 128, 2, 130}};
    for (int[] s : shapes) {
      int rows = s[0], heads = s[1], kvHeads = s[2], headDim = s[3], slots = s[4], maxLength = s[5];
      int kvDim = kvHeads * headDim;
      Pair kc = pair(randoms(slots * maxLength * kvDim, 1), slots, maxLength, kvDim);
      Pair vc = pair(randoms(slots * maxLength * kvDim, 1), slots, maxLength, kvDim);
      Pair k = pair(randoms(rows * kvDim, 1), rows, kvDim);
      Pair v = pair(randoms(rows * kvDim, 1), rows, kvDim);
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
      cpu.kvStoreForward(kc.cpu, vc.cpu, k.cpu, v.cpu, sl, pos, rows, kvDim, maxLength);
      cuda.kvStoreForward(kc.gpu, vc.gpu, k.gpu, v.gpu, sl, pos, rows, kvDim, maxLength);
      String what = String.format("%d rows, %d/%d heads of %d, %d slots x %d", rows, heads, kvHeads, headDim, slots, maxLength);
      compare("kvStoreForward", what + " (whole cache)", read(cpu, kc.cpu), read(cuda, kc.gpu), 0, 0);
      compare("kvStoreForward", what + " (values)", read(cpu, vc.cpu), read(cuda, vc.gpu), 0, 0);

      Pair out = output(rows, heads * headDim);
      float[] sevens = new float[rows * heads * maxLength];
      Arrays.fill(sevens, 7f);
      Pair att = pair(sevens, rows, heads, maxLength);
      cpu.attentionForward(out.cpu, att.cpu, q.cpu, kc.cpu, vc.cpu, sl, pos, rows, heads, kvHeads, headDim, maxLength);
      cuda.attentionForward(out.gpu, att.gpu, q.gpu, kc.gpu, vc.gpu, sl, pos, rows, heads, kvHeads, headDim, maxLength);
      compare("attentionForward", what, read(cpu, out.cpu), read(cuda, out.gpu), 1e-6, 1e-5);
      // probabilities up to each row's position; the rest must be left as they were (7)
      float[] pw = read(cpu, att.cpu);
      float[] pg = read(cuda, att.gpu);
      compare("attentionForward att", what + " (past positions: untouched)", pw, pg, 1e-6, 1e-5);
    }
  }

  @Test
  void swigluAddSoftmax() {
    int rows = 7;
    int dim = 1000;
    Pair g = pair(randoms(rows * dim, 3), rows, dim);
    Pair u = pair(randoms(rows * dim, 1), rows, dim);
    Pair out = output(rows, dim);
    cpu.swigluForward(out.cpu, g.cpu, u.cpu, rows, dim);
    cuda.swigluForward(out.gpu, g.gpu, u.gpu, rows, dim);
    compare("swigluForward", "7 x 1000", read(cpu, out.cpu), read(cuda, out.gpu), 1e-6, 1e-5);

    Pair a = pair(randoms(rows * dim, 1), rows, dim);
    Pair sum = output(rows, dim);
    cpu.addForward(sum.cpu, a.cpu, u.cpu, rows, dim);
    cuda.addForward(sum.gpu, a.gpu, u.gpu, rows, dim);
    compare("addForward", "7 x 1000", read(cpu, sum.cpu), read(cuda, sum.gpu), 0, 0);
    cpu.addForward(a.cpu, a.cpu, u.cpu, rows, dim);
    cuda.addForward(a.gpu, a.gpu, u.gpu, rows, dim);
    compare("addForward", "7 x 1000 in place (the residual)", read(cpu, a.cpu), read(cuda, a.gpu), 0, 0);

    for (int[] s : new int[][] {{3, 300}, {2, 128256}}) {
      Pair x = pair(randoms(s[0] * s[1], 4), s[0], s[1]);
      Pair p = output(s[0], s[1]);
      cpu.softmaxForward(p.cpu, x.cpu, s[0], s[1]);
      cuda.softmaxForward(p.gpu, x.gpu, s[0], s[1]);
      compare("softmaxForward", s[0] + " x " + s[1], read(cpu, p.cpu), read(cuda, p.gpu), 1e-7, 1e-5);
      cpu.softmaxForward(x.cpu, x.cpu, s[0], s[1]);
      cuda.softmaxForward(x.gpu, x.gpu, s[0], s[1]);
      compare("softmaxForward", s[0] + " x " + s[1] + " in place", read(cpu, x.cpu), read(cuda, x.gpu), 1e-7, 1e-5);
    }
  }

  @Test
  void weightsReadBackExactlyAndViewsAddressTheirRows() {
    for (DType dt : DType.values()) {
      Pair w = weight(dt, randoms(37 * 53, 1), 37, 53);
      compare("weight + copyToHost", dt + " 37x53", read(cpu, w.cpu), read(cuda, w.gpu), 0, 0);
      float[] part = new float[53 * 2];
      float[] partCpu = new float[53 * 2];
      cuda.copyToHost(w.gpu.rows(10, 2), 0, part, part.length);
      cpu.copyToHost(w.cpu.rows(10, 2), 0, partCpu, partCpu.length);
      compare("copyToHost of a view", dt + " rows 10..11", partCpu, part, 0, 0);
    }
    Pair buf = pair(randoms(50, 1), 5, 10);
    float[] row = randoms(10, 1);
    cpu.copyFromHost(row, buf.cpu.rows(2, 1), 0);
    cuda.copyFromHost(row, buf.gpu.rows(2, 1), 0);
    compare("copyFromHost into a view", "row 2 of 5x10", read(cpu, buf.cpu), read(cuda, buf.gpu), 0, 0);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> cuda.copyToHost(buf.gpu, 45, new float[10], 10));
    assertTrue(e.getMessage().contains("outside"), e.getMessage());
  }
}
