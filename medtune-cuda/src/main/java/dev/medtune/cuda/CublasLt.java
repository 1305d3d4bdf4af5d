package dev.medtune.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.medtune.model.safetensors.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Matrix products through cuBLASLt ({@code libcublasLt.so.13}), column-major as BLAS: a product
 * {@code D = alpha op(A) op(B) + beta C} is planned once per shape, operand types, transposes and
 * pointer alignments (descriptors, layouts and the heuristic's first algorithm are kept), then
 * each call is one {@code cublasLtMatmul} on the backend's stream. Accumulation is float32
 * ({@code CUBLAS_COMPUTE_32F}). Products of two float32 operands use TF32 tensor cores when
 * {@link #tf32(boolean)} says so ({@code CUBLAS_COMPUTE_32F_FAST_TF32}: each operand rounded to
 * TF32, 8-bit exponent and 10-bit mantissa, the products accumulated in float32); else they are
 * float32 throughout.
 */
final class CublasLt implements AutoCloseable {

  static final int CUDA_R_32F = 0;
  static final int CUDA_R_16F = 2;
  static final int CUDA_R_16BF = 14;
  static final int CUBLAS_COMPUTE_32F = 68;
  static final int CUBLAS_COMPUTE_32F_FAST_TF32 = 77;
  static final int CUBLAS_OP_N = 0;
  static final int CUBLAS_OP_T = 1;
  static final int DESC_TRANSA = 3;
  static final int DESC_TRANSB = 4;
  static final int PREF_MAX_WORKSPACE_BYTES = 1;
  static final int PREF_MIN_ALIGNMENT_A = 5;
  static final int PREF_MIN_ALIGNMENT_B = 6;
  static final int PREF_MIN_ALIGNMENT_C = 7;
  static final int PREF_MIN_ALIGNMENT_D = 8;
  /** sizeof(cublasLtMatmulHeuristicResult_t): algo (8 x uint64), workspaceSize, state, wavesCount, int[4]. */
  static final long HEURISTIC_RESULT_BYTES = 96;

  static final long WORKSPACE_BYTES = 32L << 20;

  private static Functions functions;

  private final Functions f;
  private final Driver driver;
  private final MemorySegment handle;
  private final long workspace;
  private final Arena arena = Arena.ofShared();
  private final MemorySegment alphaBeta = arena.allocate(JAVA_FLOAT, 2);
  private final Map<PlanKey, Plan> plans = new HashMap<>();
  private final List<MemorySegment> layouts = new ArrayList<>();
  private final List<MemorySegment> descs = new ArrayList<>();

  /** The shape of one product, in cuBLASLt's column-major terms. */
  record PlanKey(int abType, int cType, int transa, int transb, long m, long n, long k,
      long lda, long ldb, long ldc, int alignA, int alignB, int alignC, int computeType) {}

  private boolean tf32;

  /** Whether float32 x float32 products use TF32 tensor cores. */
  boolean tf32() {
    return tf32;
  }

  /** Sets {@link #tf32()}; plans are kept per compute type, so switching back and forth is free. */
  void tf32(boolean on) {
    tf32 = on;
  }

  private record Plan(MemorySegment desc, MemorySegment aLayout, MemorySegment bLayout,
      MemorySegment cLayout, MemorySegment algo, long workspaceBytes) {}

  CublasLt(Driver driver) {
    this.f = Functions.get();
    this.driver = driver;
    try (Arena a = Arena.ofConfined()) {
      MemorySegment h = a.allocate(ADDRESS);
      check("cublasLtCreate", (int) f.create.invokeExact(h));
      handle = h.get(ADDRESS, 0);
    } catch (Throwable t) {
      throw wrap("cublasLtCreate", t);
    }
    workspace = driver.memAlloc(WORKSPACE_BYTES);
  }

  static String version() {
    try {
      return Long.toString((long) Functions.get().getVersion.invokeExact());
    } catch (Throwable t) {
      throw wrap("cublasLtGetVersion", t);
    }
  }

  static int dataType(DType dtype) {
    return switch (dtype) {
      case F32 -> CUDA_R_32F;
      case BF16 -> CUDA_R_16BF;
      case F16 -> CUDA_R_16F;
    };
  }

  /**
   * Column-major {@code D[m,n] = alpha op(A) op(B) + beta D}, D float32 (C and D are the same
   * buffer). {@code a} and {@code b} have type {@code abType}; their leading dimensions are those
   * of the stored matrices.
   */
  void matmul(MemorySegment stream, int abType, boolean transa, boolean transb, long m, long n, long k,
      long a, long lda, long b, long ldb, long d, long ldd, float alpha, float beta) {
    PlanKey key = new PlanKey(abType, CUDA_R_32F, transa ? CUBLAS_OP_T : CUBLAS_OP_N,
        transb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, lda, ldb, ldd, alignment(a), alignment(b), alignment(d),
        abType == CUDA_R_32F && tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
    Plan plan = plans.get(key);
    if (plan == null) {
      try {
        plan = plan(key);
      } catch (CudaException e) {
        if (key.computeType() != CUBLAS_COMPUTE_32F_FAST_TF32) {
          throw e;
        }
        // no TF32 algorithm for this shape: the float32 one (never less accurate)
        plan = plan(new PlanKey(key.abType(), key.cType(), key.transa(), key.transb(), key.m(), key.n(), key.k(),
            key.lda(), key.ldb(), key.ldc(), key.alignA(), key.alignB(), key.alignC(), CUBLAS_COMPUTE_32F));
      }
      plans.put(key, plan);
    }
    alphaBeta.setAtIndex(JAVA_FLOAT, 0, alpha);
    alphaBeta.setAtIndex(JAVA_FLOAT, 1, beta);
    try {
      int r = (int) f.matmul.invokeExact(handle, plan.desc, alphaBeta, a, plan.aLayout, b, plan.bLayout,
          alphaBeta.asSlice(4), d, plan.cLayout, d, plan.cLayout, plan.algo, workspace, plan.workspaceBytes, stream);
      if (r != 0) {
        throw new CudaException("cublasLtMatmul(" + describe(key) + ") failed: " + statusText(r));
      }
    } catch (Throwable t) {
      throw wrap("cublasLtMatmul", t);
    }
  }

  /** The largest power of two up to 256 that divides the address (what the heuristic must assume). */
  static int alignment(long address) {
    long low = address & -address;
    return (int) (low == 0 || low > 256 ? 256 : low);
  }

  private static String describe(PlanKey k) {
    String type = switch (k.abType()) {
      case CUDA_R_16BF -> "bf16";
      case CUDA_R_16F -> "f16";
      default -> "f32";
    };
    return type + " x " + type + (k.computeType() == CUBLAS_COMPUTE_32F_FAST_TF32 ? " (TF32)" : "")
        + " -> f32, column-major m=" + k.m() + " n=" + k.n() + " k=" + k.k()
        + (k.transa() == CUBLAS_OP_T ? " A^T" : "") + (k.transb() == CUBLAS_OP_T ? " B^T" : "")
        + " lda=" + k.lda() + " ldb=" + k.ldb() + " ldc=" + k.ldc() + " align " + k.alignA() + "/"
        + k.alignB() + "/" + k.alignC();
  }

  private Plan plan(PlanKey key) {
    String what = describe(key);
    try (Arena a = Arena.ofConfined()) {
      MemorySegment out = a.allocate(ADDRESS);
      check("cublasLtMatmulDescCreate(" + what + ")",
          (int) f.descCreate.invokeExact(out, key.computeType(), CUDA_R_32F));
      MemorySegment desc = out.get(ADDRESS, 0);
      descs.add(desc);
      MemorySegment v = a.allocate(JAVA_INT);
      v.set(JAVA_INT, 0, key.transa());
      check("cublasLtMatmulDescSetAttribute(TRANSA)", (int) f.descSetAttribute.invokeExact(desc, DESC_TRANSA, v, 4L));
      v.set(JAVA_INT, 0, key.transb());
      check("cublasLtMatmulDescSetAttribute(TRANSB)", (int) f.descSetAttribute.invokeExact(desc, DESC_TRANSB, v, 4L));
      // stored shapes: op(A) is m x k, so A is m x k, or k x m when transposed
      MemorySegment aLayout = layout(a, key.abType(), key.transa() == CUBLAS_OP_N ? key.m() : key.k(),
          key.transa() == CUBLAS_OP_N ? key.k() : key.m(), key.lda(), what);
      MemorySegment bLayout = layout(a, key.abType(), key.transb() == CUBLAS_OP_N ? key.k() : key.n(),
          key.transb() == CUBLAS_OP_N ? key.n() : key.k(), key.ldb(), what);
      MemorySegment cLayout = layout(a, key.cType(), key.m(), key.n(), key.ldc(), what);

      check("cublasLtMatmulPreferenceCreate", (int) f.prefCreate.invokeExact(out));
      MemorySegment pref = out.get(ADDRESS, 0);
      try {
        MemorySegment ws = a.allocate(JAVA_LONG);
        ws.set(JAVA_LONG, 0, WORKSPACE_BYTES);
        check("cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)",
            (int) f.prefSetAttribute.invokeExact(pref, PREF_MAX_WORKSPACE_BYTES, ws, 8L));
        int[] attrs = {PREF_MIN_ALIGNMENT_A, PREF_MIN_ALIGNMENT_B, PREF_MIN_ALIGNMENT_C, PREF_MIN_ALIGNMENT_D};
        int[] values = {key.alignA(), key.alignB(), key.alignC(), key.alignC()};
        for (int i = 0; i < attrs.length; i++) {
          v.set(JAVA_INT, 0, values[i]);
          check("cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)",
              (int) f.prefSetAttribute.invokeExact(pref, attrs[i], v, 4L));
        }
        MemorySegment results = arena.allocate(HEURISTIC_RESULT_BYTES, 8);
        MemorySegment count = a.allocate(JAVA_INT);
        check("cublasLtMatmulAlgoGetHeuristic(" + what + ")", (int) f.heuristic.invokeExact(handle, desc,
            aLayout, bLayout, cLayout, cLayout, pref, 1, results, count));
        if (count.get(JAVA_INT, 0) < 1) {
          throw new CudaException("cublasLtMatmulAlgoGetHeuristic found no algorithm for " + what);
        }
        long wsBytes = results.get(JAVA_LONG, 64);
        // the algo is the first 64 bytes of the result, which stays allocated in this.arena
        return new Plan(desc, aLayout, bLayout, cLayout, results.asSlice(0, 64), wsBytes);
      } finally {
        int ignored = (int) f.prefDestroy.invokeExact(pref);
      }
    } catch (Throwable t) {
      throw wrap("cuBLASLt planning", t);
    }
  }

  private MemorySegment layout(Arena a, int type, long rows, long cols, long ld, String what) throws Throwable {
    MemorySegment out = a.allocate(ADDRESS);
    check("cublasLtMatrixLayoutCreate(" + rows + "x" + cols + ", ld " + ld + ") for " + what,
        (int) f.layoutCreate.invokeExact(out, type, rows, cols, ld));
    MemorySegment l = out.get(ADDRESS, 0);
    layouts.add(l);
    return l;
  }

  @Override
  public void close() {
    try {
      for (MemorySegment l : layouts) {
        int ignored = (int) f.layoutDestroy.invokeExact(l);
      }
      for (MemorySegment d : descs) {
        int ignored = (int) f.descDestroy.invokeExact(d);
      }
      check("cublasLtDestroy", (int) f.destroy.invokeExact(handle));
    } catch (Throwable t) {
      throw wrap("cublasLtDestroy", t);
    } finally {
      layouts.clear();
      descs.clear();
      plans.clear();
      driver.memFree(workspace);
      arena.close();
    }
  }

  private static void check(String call, int status) {
    if (status != 0) {
      throw new CudaException(call + " failed: " + statusText(status));
    }
  }

  private static String statusText(int status) {
    try {
      MemorySegment s = (MemorySegment) Functions.get().statusString.invokeExact(status);
      return s.reinterpret(256).getString(0) + " (" + status + ")";
    } catch (Throwable t) {
      return "cuBLAS status " + status;
    }
  }

  private static CudaException wrap(String call, Throwable t) {
    return t instanceof CudaException c ? c : new CudaException(call + " could not be called: " + t);
  }

  /** The cuBLASLt entry points, bound once per process. */
  static final class Functions {
    final NativeLibraries.Library lib;
    final MethodHandle create;
    final MethodHandle destroy;
    final MethodHandle getVersion;
    final MethodHandle statusString;
    final MethodHandle descCreate;
    final MethodHandle descDestroy;
    final MethodHandle descSetAttribute;
    final MethodHandle layoutCreate;
    final MethodHandle layoutDestroy;
    final MethodHandle prefCreate;
    final MethodHandle prefDestroy;
    final MethodHandle prefSetAttribute;
    final MethodHandle heuristic;
    final MethodHandle matmul;

    private Functions(NativeLibraries.Library lib) {
      this.lib = lib;
      create = lib.function("cublasLtCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));
      destroy = lib.function("cublasLtDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
      getVersion = lib.function("cublasLtGetVersion", FunctionDescriptor.of(JAVA_LONG));
      statusString = lib.function("cublasLtGetStatusString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
      descCreate = lib.function("cublasLtMatmulDescCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
      descDestroy = lib.function("cublasLtMatmulDescDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
      descSetAttribute = lib.function("cublasLtMatmulDescSetAttribute",
          FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
      layoutCreate = lib.function("cublasLtMatrixLayoutCreate",
          FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
      layoutDestroy = lib.function("cublasLtMatrixLayoutDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
      prefCreate = lib.function("cublasLtMatmulPreferenceCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));
      prefDestroy = lib.function("cublasLtMatmulPreferenceDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
      prefSetAttribute = lib.function("cublasLtMatmulPreferenceSetAttribute",
          FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG));
      heuristic = lib.function("cublasLtMatmulAlgoGetHeuristic", FunctionDescriptor.of(JAVA_INT,
          ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS));
      matmul = lib.function("cublasLtMatmul", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS,
          ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS,
          ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS));
    }

    static synchronized Functions get() {
      if (functions == null) {
        functions = new Functions(NativeLibraries.open("libcublasLt.so.13", "libcublasLt.so.", "cuBLASLt"));
      }
      return functions;
    }
  }
}
