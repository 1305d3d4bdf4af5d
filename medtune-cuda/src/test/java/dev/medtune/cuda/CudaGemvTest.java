package dev.medtune.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * RMSNorm's fused cast ({@code rmsnorm_forward_cast}) against the cast kernel, bit for bit, and the
 * decode product kernel ({@code gemv_16}, {@code CudaBackend.gemv(true)}) against cuBLASLt on
 * the same 16-bit operands and against the CPU backend. Tolerances, with {@code S = sum |x_i w_i|}
 * over the 16-bit operands: against cuBLASLt (same products, another summation order, both in
 * float32) {@code 2 k 2^-24 S + 1e-6}; against the CPU (which does not round the activation)
 * the matmul checks' {@code 2^-8 S + 1e-6} (bf16) and {@code 2^-11 S + 1e-6} (f16).
 */
class CudaGemvTest {

  private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static CudaBackend cuda;
  private static Backend cpu;
  private static final Arena arena = Arena.ofShared();

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
      cuda.gemv(false);
      cuda.close();
      cpu.close();
    }
  }

  private static float[] read(Backend b, Tensor t, int n) {
    float[] f = new float[n];
    b.copyToHost(t, 0, f, n);
    return f;
  }

  /** {@code v} rounded to the weight's 16-bit type (nearest even), as cast_to_16 does. */
  private static float round16(float v, DType d) {
    if (d == DType.F16) {
      return Float.float16ToFloat(Float.floatToFloat16(v));
    }
    int bits = Float.floatToRawIntBits(v);
    return Float.intBitsToFloat(((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16);
  }

  private void gemvCase(DType dtype, int m, int n, int k, Random r) {
    float[] x = new float[m * k];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) r.nextGaussian();
    }
    MemorySegment seg = arena.allocate(2L * n * k, 16);
    float[] w = new float[n * k];
    for (int i = 0; i < w.length; i++) {
      float v = (float) (r.nextGaussian() * 0.05);
      short bits = dtype == DType.BF16 ? (short) (Float.floatToRawIntBits(v) >>> 16) : Float.floatToFloat16(v);
      seg.set(SHORT_LE, 2L * i, bits);
      w[i] = dtype == DType.BF16 ? Float.intBitsToFloat((bits & 0xffff) << 16) : Float.float16ToFloat(bits);
    }
    TensorInfo info = new TensorInfo("gemv.weight", dtype, new long[] {n, k}, seg);
    Tensor wg = cuda.weight(info);
    Tensor wc = cpu.weight(info);
    Tensor xg = cuda.allocate(m, k);
    cuda.copyFromHost(x, xg, 0);
    Tensor xc = cpu.allocate(m, k);
    cpu.copyFromHost(x, xc, 0);
    Tensor yBlas = cuda.allocate(m, n);
    Tensor yGemv = cuda.allocate(m, n);
    Tensor yCpu = cpu.allocate(m, n);
    cuda.gemv(false);
    cuda.matmul(yBlas, xg, false, wg, true, m, n, k, 1f, 0f);
    cuda.gemv(true);
    cuda.copyFromHost(new float[] {Float.NaN}, yGemv, 0); // poisoned: the kernel must write it
    cuda.matmul(yGemv, xg, false, wg, true, m, n, k, 1f, 0f);
    cuda.gemv(false);
    cpu.matmul(yCpu, xc, false, wc, true, m, n, k, 1f, 0f);
    float[] blas = read(cuda, yBlas, m * n);
    float[] gemv = read(cuda, yGemv, m * n);
    float[] ref = read(cpu, yCpu, m * n);
    double unitCpu = dtype == DType.BF16 ? Math.scalb(1.0, -8) : Math.scalb(1.0, -11);
    double worstBlas = 0;
    double worstCpu = 0;
    boolean ok = true;
    for (int row = 0; row < m; row++) {
      for (int c = 0; c < n; c++) {
        double s = 0;
        for (int i = 0; i < k; i++) {
          s += Math.abs(round16(x[row * k + i], dtype) * (double) w[c * k + i]);
        }
        int at = row * n + c;
        double eBlas = Math.abs((double) gemv[at] - blas[at]);
        double eCpu = Math.abs((double) gemv[at] - ref[at]);
        worstBlas = Double.isNaN(eBlas) ? Double.NaN : Math.max(worstBlas, eBlas);
        worstCpu = Double.isNaN(eCpu) ? Double.NaN : Math.max(worstCpu, eCpu);
        ok &= eBlas <= 2.0 * k * Math.scalb(1.0, -24) * s + 1e-6 && eCpu <= unitCpu * s + 1e-6;
      }
    }
    String what = String.format("%s m=%d n=%d k=%d", dtype, m, n, k);
    CheckTable.row("gemv_16 vs cuBLASLt", what, worstBlas, "2 k 2^-24 S + 1e-6", ok);
    CheckTable.row("gemv_16 vs CPU", what, worstCpu, String.format("%.1e S + 1e-6", unitCpu), ok);
    assertTrue(ok, what + ": max |gemv - cuBLASLt| " + worstBlas + ", max |gemv - cpu| " + worstCpu);
  }

  @Test
  void gemvMatchesCublasLtAndTheCpuOnDecodeShapes() {
    Random r = new Random(11);
    gemvCase(DType.BF16, 1, 4096, 4096, r);   // q/o projection, 8B width
    gemvCase(DType.BF16, 1, 1024, 4096, r);   // k/v projection: few columns, split K
    gemvCase(DType.BF16, 1, 14336, 4096, r);  // gate/up
    gemvCase(DType.BF16, 1, 4096, 14336, r);  // down
    gemvCase(DType.BF16, 3, 777, 264, r);     // rows 3, odd column count
    gemvCase(DType.BF16, 4, 33, 8, r);        // k of one group
    gemvCase(DType.F16, 2, 300, 96, r);
    gemvCase(DType.F16, 1, 5, 4104, r);
  }

  @Test
  void rmsnormWritesTheCastTheNextProductWouldMake() {
    // rmsnorm_forward_cast writes the bf16 operand of the next product; a product after a fresh
    // upload of the same values casts it again (cast_to_16): the two products must agree bit for bit
    Random r = new Random(13);
    for (boolean gemv : new boolean[] {false, true}) {
      for (int[] shape : new int[][] {{1, 4096, 1024}, {3, 520, 200}, {16, 2048, 512}}) {
        int m = shape[0], k = shape[1], n = shape[2];
        MemorySegment seg = arena.allocate(2L * n * k, 16);
        for (int i = 0; i < n * k; i++) {
          seg.set(SHORT_LE, 2L * i, (short) (Float.floatToRawIntBits((float) (r.nextGaussian() * 0.05)) >>> 16));
        }
        Tensor w = cuda.weight(new TensorInfo("w", DType.BF16, new long[] {n, k}, seg));
        float[] xv = new float[m * k];
        float[] norm = new float[k];
        for (int i = 0; i < xv.length; i++) {
          xv[i] = (float) r.nextGaussian();
        }
        for (int i = 0; i < k; i++) {
          norm[i] = (float) (1 + 0.1 * r.nextGaussian());
        }
        Tensor x = cuda.allocate(m, k);
        Tensor weight = cuda.allocate(k);
        Tensor xn = cuda.allocate(m, k);
        cuda.copyFromHost(xv, x, 0);
        cuda.copyFromHost(norm, weight, 0);
        Tensor y1 = cuda.allocate(m, n);
        Tensor y2 = cuda.allocate(m, n);
        cuda.gemv(gemv);
        cuda.rmsnormForward(xn, x, weight, null, 1e-5f, m, k);
        cuda.matmul(y1, xn, false, w, true, m, n, k, 1f, 0f);
        float[] normed = read(cuda, xn, m * k);
        cuda.copyFromHost(normed, xn, 0);
        cuda.matmul(y2, xn, false, w, true, m, n, k, 1f, 0f);
        cuda.gemv(false);
        float[] a = read(cuda, y1, m * n);
        float[] b = read(cuda, y2, m * n);
        int differ = 0;
        for (int i = 0; i < a.length; i++) {
          differ += Float.floatToRawIntBits(a[i]) == Float.floatToRawIntBits(b[i]) ? 0 : 1;
        }
        CheckTable.row("rmsnorm + cast", String.format("m=%d k=%d n=%d%s: fused cast vs cast_to_16", m, k, n,
            gemv ? " (gemv_16)" : ""), differ, "0 elements differ", differ == 0);
        assertEquals(0, differ, "m=" + m + " k=" + k + " gemv " + gemv);
      }
    }
  }

  @Test
  void shapesTheKernelDoesNotTakeStayOnCublasLt() {
    // k not a multiple of 8, 5 rows: the cuBLASLt path, results as without the switch
    Random r = new Random(12);
    for (int[] shape : new int[][] {{1, 64, 100}, {5, 64, 64}}) {
      int m = shape[0], n = shape[1], k = shape[2];
      MemorySegment seg = arena.allocate(2L * n * k, 16);
      for (int i = 0; i < n * k; i++) {
        seg.set(SHORT_LE, 2L * i, (short) (Float.floatToRawIntBits((float) r.nextGaussian()) >>> 16));
      }
      Tensor w = cuda.weight(new TensorInfo("w", DType.BF16, new long[] {n, k}, seg));
      Tensor x = cuda.allocate(m, k);
      float[] xv = new float[m * k];
      for (int i = 0; i < xv.length; i++) {
        xv[i] = (float) r.nextGaussian();
      }
      cuda.copyFromHost(xv, x, 0);
      Tensor y0 = cuda.allocate(m, n);
      Tensor y1 = cuda.allocate(m, n);
      cuda.matmul(y0, x, false, w, true, m, n, k, 1f, 0f);
      cuda.gemv(true);
      cuda.matmul(y1, x, false, w, true, m, n, k, 1f, 0f);
      cuda.gemv(false);
      float[] a = read(cuda, y0, m * n);
      float[] b = read(cuda, y1, m * n);
      assertEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(b), "m=" + m + " k=" + k);
    }
  }
}
