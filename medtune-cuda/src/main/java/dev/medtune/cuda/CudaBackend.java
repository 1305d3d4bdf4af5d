package dev.medtune.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.TensorInfo;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The backend SPI on one NVIDIA GPU: every matrix product goes to cuBLASLt, every other op is one
 * of medtune's kernels ({@code dev/medtune/cuda/kernels/*.cu}, compiled by NVRTC for this GPU and
 * cached), all queued in order on one stream. Activations are float32 as the SPI says; a product
 * with a bf16 (f16) weight casts its float32 operand to bf16 (f16) and accumulates in float32,
 * which is where this backend differs from the CPU reference (bf16 rounding of the activation
 * entering each product); products with float32 weights are float32 throughout. Every op's math
 * is stated on {@link Backend} and next to its kernel.
 *
 * <p>Token ids, slots and positions (host {@code int[]}) travel through a few page-locked staging
 * buffers whose device copies are reused while their contents are unchanged, so the layers of a
 * forward pass upload the positions once. Setting {@code MEDTUNE_CUDA_SYNC=1} waits after every op
 * so that a failing kernel is named in the error.
 */
final class CudaBackend implements Backend {

  static final String[] KERNELS = {
      "cast_to_16", "cast_to_f32", "embedding_forward", "rmsnorm_forward", "rope_forward",
      "kv_store_forward", "attention_forward", "swiglu_forward", "add_forward", "softmax_forward",
      "rmsnorm_backward", "rope_backward", "kv_store_backward", "attention_backward_dq",
      "attention_backward_dkv", "swiglu_backward", "cross_entropy_forward", "dropout_forward",
      "scale_inplace", "squared_norm", "adamw_step", "attention_rows_tiled", "attention_dkv_tiled",
      "flash_attention_forward_64", "flash_attention_forward_128", "flash_attention_d", "flash_attention_dq_64",
      "flash_attention_dq_128", "flash_attention_dkv_64", "flash_attention_dkv_128", "squared_norm_many",
      "argmax_rows", "gemv_16_r1", "gemv_16_r2", "gemv_16_r4",
      "gemv_16_multi_r1", "gemv_16_multi_r2", "gemv_16_multi_r4",
      "gemv_16", "sample_rows", "rmsnorm_forward_cast", "attention_decode"};
  // the query-tiled attention kernels (attention_tiled.cu) take head dimensions up to this
  private static final int TILED_MAX_HEAD_DIM = 128;
  private static final int TQ = 16;
  private static final int TK = 32;
  private static final int ELEMENTWISE_BLOCK = 256;
  private static final int ATTENTION_BLOCK = 128;
  private static final int ATTENTION_DECODE_THREADS = 512; // DECODE_WARPS of attention_decode.cu
  private static final int INT_STAGES = 8;
  // flash_attention.cu: tiles of 64 rows, head dims up to 128 (variants 64 and 128), 4 warps
  private static final int FLASH_MAX_HEAD_DIM = 128;
  private static final int FLASH_THREADS = 128;
  private static final float LOG2E = (float) (1 / Math.log(2));

  private final Driver driver;
  private final int device;
  private final MemorySegment context;
  private final MemorySegment stream;
  private final MemorySegment module;
  private final Map<String, MemorySegment> functions = new HashMap<>();
  private final CublasLt blas;
  private final String description;
  private final int multiprocessors;
  private final boolean syncEveryOp;
  // gemv_rows.cu for products of at most GEMV_ROWS_MAX_M rows with a 16-bit weight: weight rows per
  // warp (1, 2 or 4; 0: off), MEDTUNE_CUDA_GEMV_ROWS. 2 by default: CudaGemvBench on an H200 had it
  // 1.6-1.9x cuBLASLt's cast + product on the 8B's q/k/v/o shapes and 1.04x on lm_head, but 0.95-0.98x
  // on gate/up/down (117 MB weights, where cuBLASLt reaches 85-87% of the copy bandwidth): so only
  // weights under GEMV_ROWS_MAX_ELEMENTS, or with GEMV_ROWS_MIN_N rows and more (lm_head), take it.
  private static final int GEMV_ROWS_MAX_M = 4;
  private static final int GEMV_ROWS_WARPS = 8;
  private static final long GEMV_ROWS_MAX_ELEMENTS = 40L << 20;
  private static final int GEMV_ROWS_MIN_N = 65536;
  private int gemvRows = 2;
  private final boolean tensorCores;      // compute capability 8.0 or later: bf16 mma.sync
  private boolean flashAttention;         // MEDTUNE_CUDA_ATTENTION: flash (default) or tiled
  private final StepGraphs steps;

  private final Arena arena = Arena.ofShared();
  private final MemorySegment paramValues = arena.allocate(8L * 24, 8);
  private final MemorySegment paramPointers = arena.allocate(ADDRESS, 24);
  private final List<Long> allocations = new ArrayList<>();
  private final IntStage[] intStages = new IntStage[INT_STAGES];
  private long useClock;

  private MemorySegment hostStage;   // page-locked, for float copies
  private long scratch16;            // device, the bf16/f16 operand of a product
  private long scratch16Bytes;
  private long scratch32;            // device, a weight read back as float32
  private long scratch32Bytes;
  private Thread lastThread;
  private boolean closed;
  // what scratch16 holds: a 16-bit copy of castCount floats at castSource, while no op has written
  // there since (q/k/v and gate/up read one normalised input: one cast serves three products)
  private long castSource;
  private long castCount;
  private DType castDtype;
  private boolean castValid;
  // the 16-bit type of the first such weight uploaded: RMSNorm also writes its output's cast to it
  // (fixed once weights are up, so a step's ops do not depend on what ran before it)
  private DType fuseDtype;

  /** A page-locked host buffer and its device twin for one int[] argument. */
  private static final class IntStage {
    MemorySegment host;
    long device;
    int capacity;
    int[] contents = new int[0];
    MemorySegment copied;  // event recorded after the last copy out of host
    long lastUse;
  }

  CudaBackend(int ordinal) {
    this.driver = Driver.get();
    int count = driver.deviceCount();
    if (ordinal >= count) {
      throw new CudaException("CUDA device " + ordinal + " requested, " + count + " present");
    }
    this.device = driver.device(ordinal);
    this.context = driver.primaryContextRetain(device);
    driver.setCurrent(context);
    lastThread = Thread.currentThread();
    int major = driver.attribute(device, Driver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
    int minor = driver.attribute(device, Driver.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    this.multiprocessors = driver.attribute(device, Driver.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    this.stream = driver.streamCreate();
    Nvrtc.Compiled cubin = Nvrtc.cubin(Nvrtc.source(), major, minor);
    MemorySegment image = arena.allocate(cubin.image().length + 1L, 16);
    MemorySegment.copy(MemorySegment.ofArray(cubin.image()), 0, image, 0, cubin.image().length);
    this.module = driver.moduleLoadData(image);
    for (String k : KERNELS) {
      functions.put(k, driver.moduleGetFunction(module, k));
    }
    this.blas = new CublasLt(driver);
    for (int i = 0; i < INT_STAGES; i++) {
      intStages[i] = new IntStage();
    }
    this.syncEveryOp = "1".equals(System.getenv("MEDTUNE_CUDA_SYNC"));
    String gemvEnv = System.getenv("MEDTUNE_CUDA_GEMV_ROWS");
    if (gemvEnv != null && !gemvEnv.isEmpty()) {
      gemvRows = switch (gemvEnv) {
        case "0", "1", "2", "4" -> Integer.parseInt(gemvEnv);
        default -> throw new CudaException("MEDTUNE_CUDA_GEMV_ROWS=" + gemvEnv
            + ": expected 0 (off), 1, 2 or 4 (weight rows per warp)");
      };
    }
    this.tensorCores = major >= 8;
    String attention = System.getenv("MEDTUNE_CUDA_ATTENTION");
    if (attention != null && !attention.isEmpty() && !attention.equals("flash") && !attention.equals("tiled")) {
      throw new CudaException("MEDTUNE_CUDA_ATTENTION=" + attention + ": expected flash or tiled");
    }
    this.flashAttention = !"tiled".equals(attention);
    if (tensorCores) {
      // the backward kernels hold four 64-row tiles: 69 KiB at head dim 128, past the default 48 KiB
      for (int hd : new int[] {64, 128}) {
        for (String k : new String[] {"flash_attention_dq_", "flash_attention_dkv_"}) {
          driver.funcSetAttribute(k + hd, functions.get(k + hd), Driver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
              flashSharedBytes(hd, true));
        }
      }
    }
    this.tf32Supported = major >= 8; // trainspeed: TF32 tensor cores from Ampere on
    blas.tf32(tf32Supported && !"0".equals(System.getenv("MEDTUNE_CUDA_TF32")));
    this.steps = new StepGraphs(new StepGraphs.Cuda(driver, stream, functions, blas),
        !"0".equals(System.getenv("MEDTUNE_CUDA_GRAPHS")));
    int driverVersion = driver.driverVersion();
    this.description = String.format("cuda (%s, %s, %d SMs, %.1f GiB, driver %d.%d, cuBLASLt %s, float32 products %s, kernels %s)",
        driver.deviceName(device), cubin.arch(), multiprocessors, driver.totalMemory(device) / (double) (1L << 30),
        driverVersion / 1000, driverVersion % 1000 / 10, CublasLt.version(), blas.tf32() ? "TF32" : "float32",
        cubin.fromCache() ? "from cache" : "compiled by NVRTC");
  }

  @Override
  public String name() {
    return "cuda";
  }

  @Override
  public String description() {
    return description;
  }

  /** The device's name as the driver reports it, e.g. "NVIDIA H100 80GB HBM3". */
  String deviceName() {
    return driver.deviceName(device);
  }

  private void enter() {
    if (closed) {
      throw new IllegalStateException("the CUDA backend is closed");
    }
    Thread t = Thread.currentThread();
    if (t != lastThread) {
      driver.setCurrent(context);
      lastThread = t;
    }
  }

  private void after(String op) {
    if (syncEveryOp || profiling) {
      driver.streamSynchronize(stream, op);
    }
    if (profiling) {
      mark(op);
    }
  }

  // ---------------------------------------------------------------- profile (benchmarks)

  private boolean profiling;
  private long profileMark;
  private final Map<String, double[]> profile = new java.util.TreeMap<>();

  /**
   * Starts (or stops) a coarse profile: every op waits for the GPU and its wall time since the
   * previous op (launch, GPU time and the host's time between the two) is added to the op's row.
   * Slows the step down; for finding where the time goes, not for timing.
   */
  void profile(boolean on) {
    enter();
    steps.leave("profile");
    driver.streamSynchronize(stream, "the queued ops");
    profiling = on;
    profileMark = System.nanoTime();
    if (on) {
      profile.clear();
    }
  }

  /** The profile: op (matmuls with their shape and weight type) to {seconds, calls}. */
  Map<String, double[]> profileTable() {
    return profile;
  }

  private void mark(String op) {
    long now = System.nanoTime();
    double[] row = profile.computeIfAbsent(op, k -> new double[2]);
    row[0] += (now - profileMark) / 1e9;
    row[1]++;
    profileMark = now;
  }

  // ---------------------------------------------------------------- memory

  private long deviceAlloc(long bytes) {
    long p = driver.memAlloc(Math.max(bytes, 4));
    allocations.add(p);
    return p;
  }

  private void deviceFree(long p) {
    if (p != 0) {
      allocations.remove(Long.valueOf(p));
      driver.memFree(p);
    }
  }

  @Override
  public Tensor allocate(long... shape) {
    enter();
    steps.leave("allocate");
    long n = 1;
    for (long d : shape) {
      if (d <= 0) {
        throw new IllegalArgumentException("allocate: bad shape " + Arrays.toString(shape));
      }
      n *= d;
    }
    long p = deviceAlloc(n * 4);
    driver.memsetD32Async(p, 0, n, stream);
    return new CudaTensor(DType.F32, shape, p, 0, n);
  }

  @Override
  public Tensor weight(TensorInfo info) {
    enter();
    steps.leave("weight");
    long expected = info.elementCount() * info.dtype().byteSize();
    if (info.data().byteSize() != expected) {
      throw new IllegalArgumentException("tensor " + info.name() + ": " + info.data().byteSize()
          + " bytes for shape " + Arrays.toString(info.shape()) + " " + info.dtype()
          + ", expected " + expected);
    }
    if (info.shape().length == 1) {
      // vectors (norm weights) are tiny: float32 keeps the elementwise kernels to one dtype
      float[] f = info.toFloatArray();
      CudaTensor t = (CudaTensor) allocate(f.length);
      copyFromHost(f, t, 0);
      return new CudaTensor(DType.F32, info.shape(), t.base, 0, f.length);
    }
    if (info.dtype() != DType.F32 && fuseDtype == null) {
      // the model's products will cast to this type: RMSNorm writes that cast too (rmsnormForward)
      fuseDtype = info.dtype();
      if (scratch16 == 0) {
        scratch16Bytes = 1L << 20;
        scratch16 = deviceAlloc(scratch16Bytes);
      }
    }
    long p = deviceAlloc(expected);
    MemorySegment data = info.data();
    if (data.isNative()) {
      // a plain address: the mapped file is read by the copy, which returns once it is staged
      driver.copyHtoDAsync(p, MemorySegment.ofAddress(data.address()), expected, stream);
      driver.streamSynchronize(stream, "uploading " + info.name());
    } else {
      long chunk = 64L << 20;
      for (long at = 0; at < expected; at += chunk) {
        long len = Math.min(chunk, expected - at);
        MemorySegment stage = hostStage(len);
        MemorySegment.copy(data, at, stage, 0, len);
        driver.copyHtoDAsync(p + at, stage, len, stream);
        driver.streamSynchronize(stream, "uploading " + info.name());
      }
    }
    return new CudaTensor(info.dtype(), info.shape(), p, 0, info.elementCount());
  }

  private MemorySegment hostStage(long bytes) {
    if (hostStage == null || hostStage.byteSize() < bytes) {
      if (hostStage != null) {
        driver.streamSynchronize(stream, null);
        driver.memFreeHost(hostStage);
      }
      hostStage = driver.memAllocHost(Math.max(bytes, 1L << 20));
    }
    return hostStage;
  }

  private static CudaTensor f32(Tensor t, String op, String what) {
    CudaTensor c = (CudaTensor) t;
    if (c.dtype != DType.F32) {
      throw new IllegalArgumentException(op + ": " + what + " must be a float32 buffer made by allocate(), found a "
          + c.dtype + " tensor of shape " + Arrays.toString(c.shape()));
    }
    return c;
  }

  private static void checkRange(CudaTensor t, long offset, long count, String op) {
    if (offset < 0 || count < 0 || offset + count > t.size()) {
      throw new IllegalArgumentException(op + ": " + count + " elements at " + offset + " are outside " + t);
    }
  }

  @Override
  public void copyFromHost(float[] src, Tensor dst, long offset) {
    enter();
    steps.leave("copyFromHost");
    CudaTensor d = f32(dst, "copyFromHost", "the destination");
    checkRange(d, offset, src.length, "copyFromHost");
    long bytes = 4L * src.length;
    MemorySegment stage = hostStage(bytes);
    MemorySegment.copy(src, 0, stage, JAVA_FLOAT, 0, src.length);
    driver.copyHtoDAsync(d.address(offset), stage, bytes, stream);
    castValid = false;
    driver.streamSynchronize(stream, "copyFromHost");
    if (profiling) {
      mark("copyFromHost (with the wait for the ops before)");
    }
  }

  @Override
  public void copyToHost(Tensor src, long offset, float[] dst, int count) {
    enter();
    steps.leave("copyToHost");
    CudaTensor s = (CudaTensor) src;
    checkRange(s, offset, count, "copyToHost");
    long bytes = 4L * count;
    long from = s.address(offset);
    if (s.dtype != DType.F32) {
      if (scratch32Bytes < bytes) {
        driver.streamSynchronize(stream, null);
        deviceFree(scratch32);
        scratch32Bytes = Math.max(bytes, 1L << 20);
        scratch32 = deviceAlloc(scratch32Bytes);
      }
      launch("cast_to_f32", gridFor(count), ELEMENTWISE_BLOCK, 0, scratch32, from, code(s.dtype), (long) count);
      from = scratch32;
    }
    MemorySegment stage = hostStage(bytes);
    driver.copyDtoHAsync(stage, from, bytes, stream);
    driver.streamSynchronize(stream, "the ops before copyToHost");
    if (profiling) {
      mark("copyToHost (with the wait for the ops before)");
    }
    MemorySegment.copy(stage, JAVA_FLOAT, 0, dst, 0, count);
  }

  /** Uploads {@code values[0..count)} and returns their device address, reusing an unchanged upload. */
  private long ints(int[] values, int count, String op) {
    if (values.length < count) {
      throw new IllegalArgumentException(op + ": " + count + " rows but only " + values.length + " ids");
    }
    if (steps.active()) {
      long p = steps.ints(values, count);
      if (p != 0) {
        return p;
      }
    }
    useClock++;
    IntStage lru = intStages[0];
    for (IntStage s : intStages) {
      if (s.contents.length == count && Arrays.equals(s.contents, 0, count, values, 0, count)) {
        s.lastUse = useClock;
        return s.device;
      }
      if (s.lastUse < lru.lastUse) {
        lru = s;
      }
    }
    IntStage s = lru;
    if (s.capacity < count) {
      if (s.host != null) {
        driver.streamSynchronize(stream, null);
        driver.memFreeHost(s.host);
        deviceFree(s.device);
      }
      s.capacity = Math.max(count, 256);
      s.host = driver.memAllocHost(4L * s.capacity);
      s.device = deviceAlloc(4L * s.capacity);
      if (s.copied == null) {
        s.copied = driver.eventCreate();
      }
    } else {
      driver.eventSynchronize(s.copied); // the previous copy out of s.host has been made
    }
    MemorySegment.copy(values, 0, s.host, JAVA_INT, 0, count);
    driver.copyHtoDAsync(s.device, s.host, 4L * count, stream);
    driver.eventRecord(s.copied, stream);
    s.contents = Arrays.copyOf(values, count);
    s.lastUse = useClock;
    return s.device;
  }

  // ---------------------------------------------------------------- launches

  private static int code(DType d) {
    return switch (d) {
      case F32 -> 0;
      case BF16 -> 1;
      case F16 -> 2;
    };
  }

  private int gridFor(long n) {
    long blocks = (n + ELEMENTWISE_BLOCK - 1) / ELEMENTWISE_BLOCK;
    return (int) Math.max(1, Math.min(blocks, (long) multiprocessors * 16));
  }

  private static int rowBlock(int dim) {
    return Math.min(256, Math.max(32, (dim + 31) / 32 * 32));
  }

  /** Launches a kernel with arguments Long (pointers, 64-bit), Integer or Float, in order. */
  private void launch(String kernel, int grid, int block, int sharedBytes, Object... args) {
    launch2(kernel, grid, 1, block, sharedBytes, args);
  }

  /** {@link #launch} on a two-dimensional grid. */
  private void launch2(String kernel, int grid, int gridY, int block, int sharedBytes, Object... args) {
    if (grid <= 0 || gridY <= 0) {
      return;
    }
    if (steps.active()) {
      steps.launch(kernel, grid, gridY, block, sharedBytes, args);
      castValid = false;
      return;
    }
    for (int i = 0; i < args.length; i++) {
      long at = 8L * i;
      switch (args[i]) {
        case Long l -> paramValues.set(JAVA_LONG, at, l);
        case Integer v -> paramValues.set(JAVA_INT, at, v);
        case Float v -> paramValues.set(JAVA_FLOAT, at, v);
        default -> throw new IllegalArgumentException("kernel argument " + args[i]);
      }
      paramPointers.setAtIndex(ADDRESS, i, paramValues.asSlice(at, 8));
    }
    driver.launch(kernel, functions.get(kernel), grid, gridY, block, sharedBytes, stream, paramPointers);
    castValid = false; // any kernel may have written the cast's source
    after(kernel);
  }

  /** Weight rows per warp of gemv_rows.cu for decode products: 1, 2 or 4, or 0 for none (benchmarks, tests). */
  void gemvRows(int rows) {
    if (rows != 0 && rows != 1 && rows != 2 && rows != 4) {
      throw new IllegalArgumentException("gemv rows per warp: " + rows + ", expected 0, 1, 2 or 4");
    }
    if (rows != gemvRows) {
      steps.forget(); // recorded steps name the other kernels
    }
    gemvRows = rows;
  }

  int gemvRows() {
    return gemvRows;
  }

  private boolean gemvRowsFits(CudaTensor w, boolean transA, boolean transB, int m, int n, int k, long a) {
    return gemvRows > 0 && w.dtype != DType.F32 && transB && !transA && m <= GEMV_ROWS_MAX_M && k % 8 == 0
        && w.address() % 16 == 0 && a % 16 == 0;
  }

  @Override
  public void linearShared(Tensor x, int rows, int in, Tensor[] weights, Tensor[] outs, int[] ns) {
    enter();
    CudaTensor xt = f32(x, "linearShared", "x");
    checkRange(xt, 0, (long) rows * in, "linearShared x");
    boolean one = weights.length >= 1 && weights.length <= 3 && rows > 0;
    long elements = 0;
    int total = 0;
    for (int i = 0; one && i < weights.length; i++) {
      CudaTensor w = (CudaTensor) weights[i];
      one = gemvRowsFits(w, false, true, rows, ns[i], in, xt.address())
          && w.dtype == ((CudaTensor) weights[0]).dtype && ns[i] % gemvRows == 0;
      elements += (long) ns[i] * in;
      total += ns[i];
    }
    if (!one || elements > GEMV_ROWS_MAX_ELEMENTS) {
      Backend.super.linearShared(x, rows, in, weights, outs, ns);
      return;
    }
    // q/k/v of a decode step: one launch over the three weights (gemv_rows.cu, gemv_16_multi_rR)
    long[] w = new long[3];
    long[] c = new long[3];
    int[] n = new int[3];
    for (int i = 0; i < weights.length; i++) {
      CudaTensor wt = (CudaTensor) weights[i];
      CudaTensor ct = f32(outs[i], "linearShared", "out " + i);
      checkRange(ct, 0, (long) rows * ns[i], "linearShared out " + i);
      checkRange(wt, 0, (long) ns[i] * in, "linearShared weight " + i);
      w[i] = wt.address();
      c[i] = ct.address();
      n[i] = ns[i];
    }
    int perBlock = GEMV_ROWS_WARPS * gemvRows;
    launch("gemv_16_multi_r" + gemvRows, (total + perBlock - 1) / perBlock, GEMV_ROWS_WARPS * 32, 0, c[0], c[1], c[2],
        w[0], w[1], w[2], n[0], n[1], n[2], xt.address(), rows, in, code(((CudaTensor) weights[0]).dtype));
  }

  // ---------------------------------------------------------------- ops

  @Override
  public void matmul(Tensor c, Tensor a, boolean transA, Tensor b, boolean transB,
      int m, int n, int k, float alpha, float beta) {
    enter();
    CudaTensor ct = f32(c, "matmul", "C");
    CudaTensor at = f32(a, "matmul", "A");
    CudaTensor bt = (CudaTensor) b;
    checkRange(ct, 0, (long) m * n, "matmul C");
    checkRange(at, 0, (long) m * k, "matmul A");
    checkRange(bt, 0, (long) k * n, "matmul B");
    if (m == 0 || n == 0) {
      return;
    }
    long aPtr = at.address();
    if (gemvRowsFits(bt, transA, transB, m, n, k, aPtr) && ((long) n * k <= GEMV_ROWS_MAX_ELEMENTS || n >= GEMV_ROWS_MIN_N)) {
      // decode: a few float32 rows against a 16-bit weight, bound by the weight's bytes (gemv_rows.cu)
      int perBlock = GEMV_ROWS_WARPS * gemvRows;
      launch("gemv_16_r" + gemvRows, (n + perBlock - 1) / perBlock, GEMV_ROWS_WARPS * 32, 0, ct.address(), aPtr,
          bt.address(), m, n, k, alpha, beta, code(bt.dtype));
      return;
    }
    if (bt.dtype != DType.F32) {
      // cuBLASLt multiplies operands of one type: the activation joins the weight's 16-bit type
      long count = (long) m * k;
      if (!(castValid && castSource == aPtr && castCount == count && castDtype == bt.dtype)) {
        long bytes = 2L * count;
        if (scratch16Bytes < bytes) {
          steps.leave("growing the 16-bit operand buffer");
          driver.streamSynchronize(stream, null);
          deviceFree(scratch16);
          scratch16Bytes = Math.max(bytes, 1L << 20);
          scratch16 = deviceAlloc(scratch16Bytes);
        }
        launch("cast_to_16", gridFor(count), ELEMENTWISE_BLOCK, 0, scratch16, aPtr, count, code(bt.dtype));
        castSource = aPtr;
        castCount = count;
        castDtype = bt.dtype;
        castValid = true;
      }
      aPtr = scratch16;
    }
    // the product writes C: the cast stays valid only if C does not overlap its source
    long cFrom = ct.address();
    long cTo = cFrom + 4L * m * n;
    if (castValid && cFrom < castSource + 4L * castCount && castSource < cTo) {
      castValid = false;
    }
    if (bt.dtype != DType.F32 && gemvFits(transA, transB, m, k, alpha, beta, bt.address(), aPtr)) {
      boolean keep = castValid; // the product does not write the cast's source (checked above)
      gemv(ct.address(), aPtr, bt, m, n, k);
      castValid = keep;
      after("matmul (gemv_16)");
      return;
    }
    // row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: B comes first
    if (steps.active()) {
      steps.product(new StepGraphs.Product(CublasLt.dataType(bt.dtype), transB, transA, n, m, k,
          bt.address(), transB ? k : n, aPtr, transA ? m : k, ct.address(), n, alpha, beta));
    } else {
      blas.matmul(stream, CublasLt.dataType(bt.dtype), transB, transA, n, m, k,
          bt.address(), transB ? k : n, aPtr, transA ? m : k, ct.address(), n, alpha, beta);
    }
    after(profiling ? String.format("matmul %s%s%s%s %dx%dx%d", bt.dtype, bt.dtype == DType.F32 && blas.tf32() ? " (TF32)" : "",
        transA ? " A^T" : "", transB ? " B^T" : "", m, n, k) : "matmul");
  }

  @Override
  public void embeddingForward(Tensor out, Tensor table, int[] tokens, int rows, int dim) {
    enter();
    CudaTensor o = f32(out, "embeddingForward", "out");
    CudaTensor tab = (CudaTensor) table;
    checkRange(o, 0, (long) rows * dim, "embeddingForward out");
    long entries = tab.size() / dim;
    for (int t = 0; t < rows; t++) {
      if (tokens[t] < 0 || tokens[t] >= entries) {
        throw new IllegalArgumentException("token id " + tokens[t] + " at " + t
            + " is outside the embedding table of " + entries + " rows");
      }
    }
    long ids = ints(tokens, rows, "embeddingForward");
    launch("embedding_forward", rows, rowBlock(dim), 0, o.address(), tab.address(), code(tab.dtype), ids, dim);
  }

  @Override
  public void rmsnormForward(Tensor out, Tensor x, Tensor weight, Tensor rstd, float eps, int rows, int dim) {
    enter();
    CudaTensor o = f32(out, "rmsnormForward", "out");
    CudaTensor xs = f32(x, "rmsnormForward", "x");
    CudaTensor w = f32(weight, "rmsnormForward", "weight");
    checkRange(o, 0, (long) rows * dim, "rmsnormForward out");
    checkRange(xs, 0, (long) rows * dim, "rmsnormForward x");
    checkRange(w, 0, dim, "rmsnormForward weight");
    long r = 0;
    if (rstd != null) {
      CudaTensor rs = f32(rstd, "rmsnormForward", "rstd");
      checkRange(rs, 0, rows, "rmsnormForward rstd");
      r = rs.address();
    }
    long count = (long) rows * dim;
    if (fuseDtype != null && 2 * count <= scratch16Bytes) {
      // the cast of out that the next 16-bit product needs, in the same kernel (one launch fewer)
      launch("rmsnorm_forward_cast", rows, rowBlock(dim), 0, o.address(), scratch16, xs.address(), w.address(), r,
          eps, dim, code(fuseDtype));
      castSource = o.address();
      castCount = count;
      castDtype = fuseDtype;
      castValid = true;
      return;
    }
    launch("rmsnorm_forward", rows, rowBlock(dim), 0, o.address(), xs.address(), w.address(), r, eps, dim);
  }

  @Override
  public void ropeForward(Tensor x, Tensor table, int[] positions, int rows, int heads, int headDim) {
    rope("rope_forward", "ropeForward", "x", x, table, positions, rows, heads, headDim);
  }

  /** The rotation of ropeForward ({@code rope_forward}) or by the negative angle (ropeBackward). */
  private void rope(String kernel, String op, String what, Tensor x, Tensor table, int[] positions, int rows,
      int heads, int headDim) {
    enter();
    CudaTensor xt = f32(x, op, what);
    CudaTensor tab = f32(table, op, "table");
    checkRange(xt, 0, (long) rows * heads * headDim, op + " " + what);
    long maxPositions = tab.size() / headDim;
    for (int t = 0; t < rows; t++) {
      if (positions[t] < 0 || positions[t] >= maxPositions) {
        throw new IllegalArgumentException("position " + positions[t] + " of row " + t
            + " is outside the rope table of " + maxPositions + " positions");
      }
    }
    long pos = ints(positions, rows, op);
    long pairs = (long) rows * heads * (headDim / 2);
    launch(kernel, gridFor(pairs), ELEMENTWISE_BLOCK, 0, xt.address(), tab.address(), pos, rows, heads, headDim);
  }

  private static void checkHeads(int heads, int kvHeads) {
    if (heads % kvHeads != 0) {
      throw new IllegalArgumentException("attention: " + heads + " query heads are not a multiple of "
          + kvHeads + " KV heads");
    }
  }

  private static void checkSlots(String op, int[] slots, int[] positions, int rows, long slotCount, int maxLength) {
    for (int t = 0; t < rows; t++) {
      if (slots[t] < 0 || slots[t] >= slotCount || positions[t] < 0 || positions[t] >= maxLength) {
        throw new IllegalArgumentException(op + ": row " + t + " wants slot " + slots[t]
            + " position " + positions[t] + ", the cache has " + slotCount + " slots of "
            + maxLength + " positions");
      }
    }
  }

  @Override
  public void kvStoreForward(Tensor kCache, Tensor vCache, Tensor k, Tensor v, int[] slots,
      int[] positions, int rows, int kvDim, int maxLength) {
    enter();
    CudaTensor kc = f32(kCache, "kvStoreForward", "kCache");
    CudaTensor vc = f32(vCache, "kvStoreForward", "vCache");
    CudaTensor kt = f32(k, "kvStoreForward", "k");
    CudaTensor vt = f32(v, "kvStoreForward", "v");
    checkRange(kt, 0, (long) rows * kvDim, "kvStoreForward k");
    checkRange(vt, 0, (long) rows * kvDim, "kvStoreForward v");
    long slotCount = kc.size() / ((long) maxLength * kvDim);
    checkRange(vc, 0, kc.size(), "kvStoreForward vCache");
    checkSlots("KV cache", slots, positions, rows, slotCount, maxLength);
    long s = ints(slots, rows, "kvStoreForward");
    long p = ints(positions, rows, "kvStoreForward");
    launch("kv_store_forward", rows, rowBlock(kvDim), 0, kc.address(), vc.address(), kt.address(), vt.address(),
        s, p, kvDim, maxLength);
  }

  // ---------------------------------------------------------------- attention

  /**
   * Whether attention of this head dim runs the flash-attention kernels (flash_attention.cu;
   * state: one log-sum-exp per row and head) rather than the tiled/per-row kernels (state: the
   * probabilities): head dims up to 128 on compute capability 8.0+, unless
   * {@code MEDTUNE_CUDA_ATTENTION=tiled} or {@link #flashAttention(boolean)} turned them off.
   */
  boolean flashAttentionFor(int headDim) {
    return flashAttention && tensorCores && headDim > 0 && headDim <= FLASH_MAX_HEAD_DIM;
  }

  /**
   * Picks the attention kernels for head dims up to 128 (tests and benchmarks compare both in one
   * run); the {@code att} buffers must be allocated after, with {@link #attentionStateFloats}.
   */
  void flashAttention(boolean on) {
    flashAttention = on;
  }

  /** Whether the flash-attention kernels are on (they still need head dim <= 128 and sm_80+). */
  boolean flashAttention() {
    return flashAttention;
  }

  @Override
  public long attentionStateFloats(int rows, int heads, int headDim, int maxLength) {
    return flashAttentionFor(headDim) ? (long) rows * heads : (long) rows * heads * maxLength;
  }

  private static int flashVariant(int headDim) {
    return headDim <= 64 ? 64 : 128;
  }

  /** Dynamic shared memory of a flash kernel: 2 bf16 tiles of 64 x (hd + 8) (forward) or 4 (backward). */
  private static int flashSharedBytes(int variant, boolean backward) {
    int tile = 64 * (variant + 8) * 2;
    return backward ? 4 * tile + 2 * 64 * 4 : 2 * tile;
  }

  /** 1 when every row the flash kernels read can be read as float4 (16-byte aligned, whole head). */
  private static int flashVector(int headDim, CudaTensor... tensors) {
    if (headDim != flashVariant(headDim)) {
      return 0;
    }
    for (CudaTensor t : tensors) {
      if (t.address() % 16 != 0) {
        return 0;
      }
    }
    return 1;
  }

  private long flashScratch;       // device: the backward's D, or the decode kernel's probabilities
  private long flashScratchBytes;

  private long flashScratch(long bytes) {
    if (flashScratchBytes < bytes) {
      driver.streamSynchronize(stream, null);
      deviceFree(flashScratch);
      flashScratchBytes = Math.max(bytes, 1L << 16);
      flashScratch = deviceAlloc(flashScratchBytes);
    }
    return flashScratch;
  }

  @Override
  public void attentionForward(Tensor out, Tensor att, Tensor q, Tensor kCache, Tensor vCache,
      int[] slots, int[] positions, int rows, int heads, int kvHeads, int headDim, int maxLength) {
    enter();
    checkHeads(heads, kvHeads);
    CudaTensor o = f32(out, "attentionForward", "out");
    CudaTensor p = f32(att, "attentionForward", "att");
    CudaTensor qt = f32(q, "attentionForward", "q");
    CudaTensor kc = f32(kCache, "attentionForward", "kCache");
    CudaTensor vc = f32(vCache, "attentionForward", "vCache");
    checkRange(o, 0, (long) rows * heads * headDim, "attentionForward out");
    checkRange(qt, 0, (long) rows * heads * headDim, "attentionForward q");
    boolean flash = flashAttentionFor(headDim);
    checkRange(p, 0, attentionStateFloats(rows, heads, headDim, maxLength),
        flash ? "attentionForward att (log-sum-exp, flash attention)" : "attentionForward att (probabilities)");
    long slotCount = kc.size() / ((long) maxLength * kvHeads * headDim);
    checkRange(vc, 0, kc.size(), "attentionForward vCache");
    checkSlots("attention", slots, positions, rows, slotCount, maxLength);
    float scale = (float) (1.0 / Math.sqrt(headDim));
    if (flash && rows > 1) {
      FlashItems items = FlashItems.of(slots, positions, rows);
      long it = ints(items.items(), items.items().length, "attentionForward");
      int variant = flashVariant(headDim);
      launch2("flash_attention_forward_" + variant, items.count(), heads, FLASH_THREADS, flashSharedBytes(variant, false),
          o.address(), p.address(), qt.address(), kc.address(), vc.address(), it, heads, kvHeads, headDim, maxLength,
          scale * LOG2E, flashVector(headDim, o, qt, kc, vc));
      return;
    }
    long s = ints(slots, rows, "attentionForward");
    long pos = ints(positions, rows, "attentionForward");
    if (!flash && headDim <= TILED_MAX_HEAD_DIM && rows > 1) {
      // query tiles: K and V read once per TQ rows (decode, one row, keeps the per-row kernel)
      launch2("attention_rows_tiled", (rows + TQ - 1) / TQ, heads, 128, 0, o.address(), p.address(), 0L,
          qt.address(), kc.address(), vc.address(), s, pos, rows, heads, kvHeads, headDim, maxLength, scale, 1f, 0);
      return;
    }
    // the per-row kernel (decode; head dims over 128); in the flash layout its probabilities go
    // to scratch and it writes the log-sum-exp into att
    long probabilities = flash ? flashScratch(4L * rows * heads * maxLength) : p.address();
    long lse = flash ? p.address() : 0L;
    if (headDim % 4 == 0 && headDim <= 128 && ((qt.address() | kc.address() | vc.address() | o.address()) & 15) == 0) {
      // attention_decode.cu: whole key rows per warp, coalesced
      launch("attention_decode", rows * heads, ATTENTION_DECODE_THREADS, 0, o.address(), probabilities, lse,
          qt.address(), kc.address(), vc.address(), s, pos, heads, kvHeads, headDim, maxLength, scale);
      return;
    }
    int shared = (headDim + 32) * 4;
    launch("attention_forward", rows * heads, ATTENTION_BLOCK, shared, o.address(), probabilities, lse, qt.address(),
        kc.address(), vc.address(), s, pos, heads, kvHeads, headDim, maxLength, scale);
  }

  @Override
  public void swigluForward(Tensor out, Tensor gate, Tensor up, int rows, int dim) {
    enter();
    long n = (long) rows * dim;
    CudaTensor o = f32(out, "swigluForward", "out");
    CudaTensor g = f32(gate, "swigluForward", "gate");
    CudaTensor u = f32(up, "swigluForward", "up");
    checkRange(o, 0, n, "swigluForward out");
    checkRange(g, 0, n, "swigluForward gate");
    checkRange(u, 0, n, "swigluForward up");
    launch("swiglu_forward", gridFor(n), ELEMENTWISE_BLOCK, 0, o.address(), g.address(), u.address(), n);
  }

  @Override
  public void addForward(Tensor out, Tensor a, Tensor b, int rows, int dim) {
    enter();
    long n = (long) rows * dim;
    CudaTensor o = f32(out, "addForward", "out");
    CudaTensor x = f32(a, "addForward", "a");
    CudaTensor y = f32(b, "addForward", "b");
    checkRange(o, 0, n, "addForward out");
    checkRange(x, 0, n, "addForward a");
    checkRange(y, 0, n, "addForward b");
    launch("add_forward", gridFor(n), ELEMENTWISE_BLOCK, 0, o.address(), x.address(), y.address(), n);
  }

  @Override
  public void softmaxForward(Tensor out, Tensor x, int rows, int dim) {
    enter();
    CudaTensor o = f32(out, "softmaxForward", "out");
    CudaTensor xs = f32(x, "softmaxForward", "x");
    checkRange(o, 0, (long) rows * dim, "softmaxForward out");
    checkRange(xs, 0, (long) rows * dim, "softmaxForward x");
    launch("softmax_forward", rows, rowBlock(dim), 0, o.address(), xs.address(), dim);
  }

  // ---------------------------------------------------------------- training

  @Override
  public void rmsnormBackward(Tensor dx, Tensor dout, Tensor x, Tensor weight, Tensor rstd, int rows, int dim) {
    enter();
    CudaTensor d = f32(dx, "rmsnormBackward", "dx");
    CudaTensor g = f32(dout, "rmsnormBackward", "dout");
    CudaTensor xs = f32(x, "rmsnormBackward", "x");
    CudaTensor w = f32(weight, "rmsnormBackward", "weight");
    CudaTensor r = f32(rstd, "rmsnormBackward", "rstd");
    long n = (long) rows * dim;
    checkRange(d, 0, n, "rmsnormBackward dx");
    checkRange(g, 0, n, "rmsnormBackward dout");
    checkRange(xs, 0, n, "rmsnormBackward x");
    checkRange(w, 0, dim, "rmsnormBackward weight");
    checkRange(r, 0, rows, "rmsnormBackward rstd");
    launch("rmsnorm_backward", rows, rowBlock(dim), 0, d.address(), g.address(), xs.address(), w.address(),
        r.address(), dim);
  }

  @Override
  public void ropeBackward(Tensor dx, Tensor table, int[] positions, int rows, int heads, int headDim) {
    rope("rope_backward", "ropeBackward", "dx", dx, table, positions, rows, heads, headDim);
  }

  @Override
  public void kvStoreBackward(Tensor dk, Tensor dv, Tensor dkCache, Tensor dvCache,
      int[] slots, int[] positions, int rows, int kvDim, int maxLength) {
    enter();
    CudaTensor dkt = f32(dk, "kvStoreBackward", "dk");
    CudaTensor dvt = f32(dv, "kvStoreBackward", "dv");
    CudaTensor kc = f32(dkCache, "kvStoreBackward", "dkCache");
    CudaTensor vc = f32(dvCache, "kvStoreBackward", "dvCache");
    checkRange(dkt, 0, (long) rows * kvDim, "kvStoreBackward dk");
    checkRange(dvt, 0, (long) rows * kvDim, "kvStoreBackward dv");
    long slotCount = kc.size() / ((long) maxLength * kvDim);
    checkRange(vc, 0, slotCount * maxLength * kvDim, "kvStoreBackward dvCache");
    checkSlots("KV cache gradient", slots, positions, rows, slotCount, maxLength);
    long s = ints(slots, rows, "kvStoreBackward");
    long p = ints(positions, rows, "kvStoreBackward");
    launch("kv_store_backward", rows, rowBlock(kvDim), 0, dkt.address(), dvt.address(), kc.address(), vc.address(),
        s, p, kvDim, maxLength);
  }

  private long dsScratch;       // device, ds of the tiled attention backward, [rows, heads, maxLength]
  private long dsScratchBytes;

  @Override
  public void attentionBackward(Tensor dq, Tensor dkCache, Tensor dvCache, Tensor dout, Tensor out, Tensor q,
      Tensor kCache, Tensor vCache, Tensor att, int[] slots, int[] positions,
      int rows, int heads, int kvHeads, int headDim, int maxLength) {
    enter();
    checkHeads(heads, kvHeads);
    CudaTensor dqt = f32(dq, "attentionBackward", "dq");
    CudaTensor dkc = f32(dkCache, "attentionBackward", "dkCache");
    CudaTensor dvc = f32(dvCache, "attentionBackward", "dvCache");
    CudaTensor dot = f32(dout, "attentionBackward", "dout");
    CudaTensor ot = f32(out, "attentionBackward", "out");
    CudaTensor qt = f32(q, "attentionBackward", "q");
    CudaTensor kc = f32(kCache, "attentionBackward", "kCache");
    CudaTensor vc = f32(vCache, "attentionBackward", "vCache");
    CudaTensor p = f32(att, "attentionBackward", "att");
    long qn = (long) rows * heads * headDim;
    checkRange(dqt, 0, qn, "attentionBackward dq");
    checkRange(dot, 0, qn, "attentionBackward dout");
    checkRange(ot, 0, qn, "attentionBackward out");
    checkRange(qt, 0, qn, "attentionBackward q");
    boolean flash = flashAttentionFor(headDim);
    checkRange(p, 0, attentionStateFloats(rows, heads, headDim, maxLength),
        flash ? "attentionBackward att (log-sum-exp, flash attention)" : "attentionBackward att (probabilities)");
    long kvDim = (long) kvHeads * headDim;
    long slotCount = kc.size() / (maxLength * kvDim);
    checkRange(vc, 0, slotCount * maxLength * kvDim, "attentionBackward vCache");
    checkRange(dkc, 0, slotCount * maxLength * kvDim, "attentionBackward dkCache");
    checkRange(dvc, 0, slotCount * maxLength * kvDim, "attentionBackward dvCache");
    checkSlots("attention", slots, positions, rows, slotCount, maxLength);
    float scale = (float) (1.0 / Math.sqrt(headDim));
    if (flash) {
      FlashItems items = FlashItems.of(slots, positions, rows);
      long it = ints(items.items(), items.items().length, "attentionBackward");
      long ranges = ints(items.slotItems(), items.slotItems().length, "attentionBackward");
      long d = flashScratch(4L * rows * heads);
      int variant = flashVariant(headDim);
      int vec = flashVector(headDim, dqt, dot, qt, kc, vc, dkc, dvc);
      int shared = flashSharedBytes(variant, true);
      launch("flash_attention_d", (rows * heads + 3) / 4, 128, 0, d, dot.address(), ot.address(), rows * heads, headDim);
      launch2("flash_attention_dkv_" + variant, items.slots() * kvHeads, (items.lastPosition() + 64) / 64,
          FLASH_THREADS, shared, dkc.address(), dvc.address(), qt.address(), kc.address(), vc.address(), dot.address(),
          p.address(), d, it, ranges, heads, kvHeads, headDim, maxLength, scale * LOG2E, scale, vec);
      launch2("flash_attention_dq_" + variant, items.count(), heads, FLASH_THREADS, shared, dqt.address(),
          qt.address(), kc.address(), vc.address(), dot.address(), p.address(), d, it, heads, kvHeads, headDim,
          maxLength, scale * LOG2E, scale, vec);
      return;
    }
    int usedSlots = 0;
    for (int t = 0; t < rows; t++) {
      usedSlots = Math.max(usedSlots, slots[t] + 1);
    }
    // each slot's first and past-the-last row: the dK/dV kernel looks only there
    int[] range = new int[2 * usedSlots];
    Arrays.fill(range, 0, range.length, -1);
    for (int t = 0; t < rows; t++) {
      int sl = slots[t];
      if (range[2 * sl] < 0) {
        range[2 * sl] = t;
      }
      range[2 * sl + 1] = t + 1;
    }
    for (int i = 0; i < range.length; i++) {
      range[i] = Math.max(range[i], 0); // an unused slot: the empty range [0, 0)
    }
    long bytes = 4L * rows * heads * maxLength;
    if (dsScratchBytes < bytes) {
      driver.streamSynchronize(stream, null);
      deviceFree(dsScratch);
      dsScratchBytes = bytes;
      dsScratch = deviceAlloc(bytes);
    }
    long s = ints(slots, rows, "attentionBackward");
    long pos = ints(positions, rows, "attentionBackward");
    long ranges = ints(range, range.length, "attentionBackward");
    if (headDim <= TILED_MAX_HEAD_DIM) {
      launch2("attention_rows_tiled", (rows + TQ - 1) / TQ, heads, 128, 0, dqt.address(), dsScratch, p.address(),
          dot.address(), vc.address(), kc.address(), s, pos, rows, heads, kvHeads, headDim, maxLength, 1f, scale, 1);
      launch2("attention_dkv_tiled", usedSlots * kvHeads, (maxLength + TK - 1) / TK, 128, 0, dkc.address(),
          dvc.address(), dsScratch, p.address(), qt.address(), dot.address(), s, pos, ranges, heads, kvHeads, headDim,
          maxLength, scale);
      return;
    }
    int shared = (headDim + 32) * 4;
    launch("attention_backward_dq", rows * heads, ATTENTION_BLOCK, shared, dqt.address(), dsScratch, dot.address(),
        p.address(), kc.address(), vc.address(), s, pos, heads, kvHeads, headDim, maxLength, scale);
    long blocks = (long) usedSlots * maxLength * kvHeads;
    launch("attention_backward_dkv", Math.toIntExact(blocks), rowBlock(headDim), 0, dkc.address(), dvc.address(),
        dsScratch, p.address(), qt.address(), dot.address(), s, pos, ranges, heads, kvHeads, headDim, maxLength, scale);
  }

  @Override
  public void swigluBackward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up, int rows, int dim) {
    enter();
    long n = (long) rows * dim;
    CudaTensor dg = f32(dgate, "swigluBackward", "dgate");
    CudaTensor du = f32(dup, "swigluBackward", "dup");
    CudaTensor d = f32(dout, "swigluBackward", "dout");
    CudaTensor g = f32(gate, "swigluBackward", "gate");
    CudaTensor u = f32(up, "swigluBackward", "up");
    for (CudaTensor c : new CudaTensor[] {dg, du, d, g, u}) {
      checkRange(c, 0, n, "swigluBackward");
    }
    launch("swiglu_backward", gridFor(n), ELEMENTWISE_BLOCK, 0, dg.address(), du.address(), d.address(),
        g.address(), u.address(), n);
  }

  @Override
  public void crossEntropyForward(Tensor losses, Tensor logits, int[] targets, int ignoreIndex,
      int rows, int vocab, float gradScale) {
    enter();
    CudaTensor l = f32(losses, "crossEntropyForward", "losses");
    CudaTensor z = f32(logits, "crossEntropyForward", "logits");
    checkRange(l, 0, rows, "crossEntropyForward losses");
    checkRange(z, 0, (long) rows * vocab, "crossEntropyForward logits");
    for (int t = 0; t < rows; t++) {
      if (targets[t] != ignoreIndex && (targets[t] < 0 || targets[t] >= vocab)) {
        throw new IllegalArgumentException("cross-entropy: target " + targets[t] + " of row " + t
            + " is outside the vocabulary of " + vocab);
      }
    }
    long tg = ints(targets, rows, "crossEntropyForward");
    launch("cross_entropy_forward", rows, 1024, 0, l.address(), z.address(), tg, ignoreIndex, vocab, gradScale);
  }

  @Override
  public void dropoutForward(Tensor out, Tensor x, float p, long seed, long count) {
    enter();
    CudaTensor o = f32(out, "dropoutForward", "out");
    CudaTensor xs = f32(x, "dropoutForward", "x");
    checkRange(o, 0, count, "dropoutForward out");
    checkRange(xs, 0, count, "dropoutForward x");
    launch("dropout_forward", gridFor(count), ELEMENTWISE_BLOCK, 0, o.address(), xs.address(), p, 1f / (1f - p),
        seed, count);
  }

  @Override
  public void zero(Tensor t, long count) {
    enter();
    CudaTensor c = f32(t, "zero", "t");
    checkRange(c, 0, count, "zero");
    if (count > 0) {
      if (steps.active()) {
        steps.fill(c.address(), 0, count);
      } else {
        driver.memsetD32Async(c.address(), 0, count, stream);
      }
      castValid = false;
      after("zero");
    }
  }

  @Override
  public void scale(Tensor t, long count, float s) {
    enter();
    CudaTensor c = f32(t, "scale", "t");
    checkRange(c, 0, count, "scale");
    launch("scale_inplace", gridFor(count), ELEMENTWISE_BLOCK, 0, c.address(), s, count);
  }

  private long normResult;  // device, one double

  @Override
  public double squaredNorm(Tensor t, long count) {
    enter();
    steps.leave("squaredNorm");
    CudaTensor c = f32(t, "squaredNorm", "t");
    checkRange(c, 0, count, "squaredNorm");
    if (normResult == 0) {
      normResult = deviceAlloc(8);
    }
    if (count == 0) {
      return 0;
    }
    launch("squared_norm", 1, 1024, 0, normResult, c.address(), count);
    MemorySegment stage = hostStage(8);
    driver.copyDtoHAsync(stage, normResult, 8, stream);
    driver.streamSynchronize(stream, "squaredNorm");
    if (profiling) {
      mark("squaredNorm (with the wait for the ops before)");
    }
    return stage.get(java.lang.foreign.ValueLayout.JAVA_DOUBLE, 0);
  }

  // ---------------------------------------------------------------- trainspeed (issue 5)
  // TF32 for float32 x float32 products, the squared norm of many tensors with one wait, and the
  // loss head's chunk size. Kept together so that merges with other work on this class are easy.

  private final boolean tf32Supported;

  /**
   * Whether float32 x float32 products use TF32 tensor cores (cuBLASLt's
   * {@code CUBLAS_COMPUTE_32F_FAST_TF32}: each operand rounded to TF32's 10-bit mantissa, products
   * accumulated in float32). On by default from compute capability 8.0 (Ampere) on; off with
   * {@code MEDTUNE_CUDA_TF32=0}.
   */
  boolean tf32() {
    return blas.tf32();
  }

  /** Turns TF32 for float32 products on or off (tests that check float32 accuracy turn it off). */
  void tf32(boolean on) {
    if (on && !tf32Supported) {
      throw new IllegalStateException("TF32 needs compute capability 8.0 or newer: " + deviceName());
    }
    blas.tf32(on);
  }

  /** Whether this GPU has TF32 tensor cores (compute capability 8.0 or newer). */
  boolean tf32Supported() {
    return tf32Supported;
  }

  /**
   * 2^26 floats (256 MiB) of logits per loss chunk: 523 rows of Llama 3's vocabulary, so a 4 x 2048
   * micro-batch runs the lm_head in 16 products of 523 rows instead of 32 of 261 (each product
   * also pays a cast of its operand to the weight's type).
   */
  @Override
  public long preferredLossChunkFloats() {
    return 1L << 26;
  }

  private MemorySegment normTableHost; // page-locked: the tensors' addresses, then their element counts
  private long normTableDevice;        // the same on the device
  private long normPartials;           // device doubles, one per tensor
  private int normCapacity;
  private long[] normTable = new long[0]; // what normTableDevice holds

  /**
   * One kernel ({@code squared_norm_many}, a block per tensor) writes each tensor's sum of squares
   * in double; one copy brings them back, and they are added here in list order: one wait for all
   * of them. The table of addresses and counts is uploaded only when it changes (the gradients of
   * a model are the same tensors every step).
   */
  @Override
  public double squaredNorm(List<Tensor> tensors) {
    enter();
    int n = tensors.size();
    if (n == 0) {
      return 0;
    }
    long[] table = new long[2 * n];
    for (int i = 0; i < n; i++) {
      CudaTensor c = f32(tensors.get(i), "squaredNorm", "tensor " + i);
      table[i] = c.address();
      table[n + i] = c.size();
    }
    if (n > normCapacity) {
      driver.streamSynchronize(stream, null);
      if (normTableHost != null) {
        driver.memFreeHost(normTableHost);
      }
      deviceFree(normTableDevice);
      deviceFree(normPartials);
      normCapacity = Math.max(n, 64);
      normTableHost = driver.memAllocHost(16L * normCapacity);
      normTableDevice = deviceAlloc(16L * normCapacity);
      normPartials = deviceAlloc(8L * normCapacity);
      normTable = new long[0];
    }
    if (!Arrays.equals(table, normTable)) {
      // the previous copy out of normTableHost is done: every call ends with a wait
      MemorySegment.copy(table, 0, normTableHost, JAVA_LONG, 0, table.length);
      driver.copyHtoDAsync(normTableDevice, normTableHost, 16L * n, stream);
      normTable = table;
    }
    // looked up here rather than in KERNELS, so that this section merges on its own
    functions.computeIfAbsent("squared_norm_many", k -> driver.moduleGetFunction(module, k));
    launch("squared_norm_many", n, 1024, 0, normPartials, normTableDevice, normTableDevice + 8L * n);
    MemorySegment stage = hostStage(8L * n);
    driver.copyDtoHAsync(stage, normPartials, 8L * n, stream);
    driver.streamSynchronize(stream, "squaredNorm of " + n + " tensors");
    if (profiling) {
      mark("squaredNorm of many tensors (with the wait for the ops before)");
    }
    double s = 0;
    for (int i = 0; i < n; i++) {
      s += stage.getAtIndex(java.lang.foreign.ValueLayout.JAVA_DOUBLE, i);
    }
    return s;
  }

  // ---------------------------------------------------------------- end trainspeed

  @Override
  public void adamwStep(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, long count,
      float decay, float oneMinusBeta1, float beta2, float oneMinusBeta2, float stepSize,
      float bc2Sqrt, float eps) {
    enter();
    CudaTensor p = f32(param, "adamwStep", "param");
    CudaTensor g = f32(grad, "adamwStep", "grad");
    CudaTensor m = f32(expAvg, "adamwStep", "expAvg");
    CudaTensor v = f32(expAvgSq, "adamwStep", "expAvgSq");
    for (CudaTensor c : new CudaTensor[] {p, g, m, v}) {
      checkRange(c, 0, count, "adamwStep");
    }
    launch("adamw_step", gridFor(count), ELEMENTWISE_BLOCK, 0, p.address(), g.address(), m.address(), v.address(),
        count, decay, oneMinusBeta1, beta2, oneMinusBeta2, stepSize, bc2Sqrt, eps);
  }

  // ---------------------------------------------------------------- steps (CUDA graphs) and argmax

  /**
   * A step of ops that repeats with the same arguments except the contents of host int arrays
   * (a decode step): recorded the first time, captured into a CUDA graph the second, replayed
   * with one launch after that ({@link StepGraphs}). Off with {@code MEDTUNE_CUDA_GRAPHS=0}, and
   * while {@code MEDTUNE_CUDA_SYNC=1} or a profile waits after every op.
   */
  @Override
  public void beginStep(Object key) {
    enter();
    if (syncEveryOp || profiling) {
      return;
    }
    steps.begin(key);
    castValid = false; // the step's cast decisions must not depend on what ran before it
  }

  @Override
  public void endStep(boolean completed) {
    enter();
    steps.end(completed);
  }

  /** Turns CUDA graphs for steps on or off (tests and benchmarks compare the two); not inside a step. */
  void cudaGraphs(boolean on) {
    steps.enable(on);
  }

  /** Steps recorded, captured, replayed and fallen back so far. */
  StepGraphs.Stats graphStats() {
    return steps.stats();
  }

  // ---------------------------------------------------------------- decode products (gemv_16)

  private static final int GEMV_MAX_ROWS = 4;
  private boolean gemvOn = "1".equals(System.getenv("MEDTUNE_CUDA_GEMV"));

  /** Turns the decode product kernel on or off (off by default until measured; MEDTUNE_CUDA_GEMV=1). */
  void gemv(boolean on) {
    if (on != gemvOn) {
      steps.forget(); // recorded steps name the other kernels
    }
    gemvOn = on;
  }

  /** A linear layer's product of up to 4 rows on a 16-bit weight, aligned for 16-byte loads. */
  private boolean gemvFits(boolean transA, boolean transB, int m, int k, float alpha, float beta, long w, long x16) {
    return gemvOn && !transA && transB && m <= GEMV_MAX_ROWS && alpha == 1f && beta == 0f && k % 8 == 0
        && w % 16 == 0 && x16 % 16 == 0;
  }

  /**
   * {@code C[m, n] = x16 W^T} by {@code gemv_16} (gemv.cu): the weight streamed once for the m
   * rows, split over the warps of a block so that small n still fill the GPU.
   */
  private void gemv(long c, long x16, CudaTensor w, int m, int n, int k) {
    int cols = 8;
    while (cols > 1 && (n + cols - 1) / cols < 4 * multiprocessors) {
      cols /= 2;
    }
    launch("gemv_16", (n + cols - 1) / cols, 256, 0, c, x16, w.address(), m, n, k, code(w.dtype), cols);
  }

  private long argmaxResult;       // device, int per row
  private long argmaxResultBytes;

  /**
   * {@code argmax_rows} (argmax.cu), one block per row, then the {@code rows} ints to the host:
   * the lowest index of the largest value, NaN passed over, as {@link Backend#argmaxOf}.
   */
  @Override
  public void argmax(Tensor x, int rows, int dim, int[] out) {
    enter();
    steps.leave("argmax");
    CudaTensor xs = f32(x, "argmax", "x");
    if (rows < 0 || dim < 1) {
      throw new IllegalArgumentException("argmax: " + rows + " rows of " + dim + " values");
    }
    checkRange(xs, 0, (long) rows * dim, "argmax x");
    if (out.length < rows) {
      throw new IllegalArgumentException("argmax: " + rows + " rows but the output holds " + out.length);
    }
    if (rows == 0) {
      return;
    }
    long bytes = 4L * rows;
    if (argmaxResultBytes < bytes) {
      driver.streamSynchronize(stream, null);
      deviceFree(argmaxResult);
      argmaxResultBytes = Math.max(bytes, 256);
      argmaxResult = deviceAlloc(argmaxResultBytes);
    }
    launch("argmax_rows", rows, 1024, 0, argmaxResult, xs.address(), dim);
    MemorySegment stage = hostStage(bytes);
    driver.copyDtoHAsync(stage, argmaxResult, bytes, stream);
    driver.streamSynchronize(stream, "argmax");
    if (profiling) {
      mark("argmax (with the wait for the ops before)");
    }
    MemorySegment.copy(stage, JAVA_INT, 0, out, 0, rows);
  }

  private long sampleBuffer;       // device: the uniforms (double per row), then the tokens (int per row)
  private long sampleBufferBytes;

  /**
   * {@code sample_rows} (sample.cu), one block per row: temperature sampling with the caller's
   * uniforms, as {@link Backend#sampleOf} (which sums in index order; the kernel sums per thread
   * chunk, so the two can differ only within rounding of a boundary of the cumulative sum).
   */
  @Override
  public void sample(Tensor x, int rows, int dim, float invTemperature, double[] uniforms, int[] out) {
    enter();
    steps.leave("sample");
    CudaTensor xs = f32(x, "sample", "x");
    if (rows < 0 || dim < 1) {
      throw new IllegalArgumentException("sample: " + rows + " rows of " + dim + " values");
    }
    checkRange(xs, 0, (long) rows * dim, "sample x");
    if (out.length < rows || uniforms.length < rows) {
      throw new IllegalArgumentException("sample: " + rows + " rows but " + uniforms.length
          + " uniforms and room for " + out.length + " tokens");
    }
    if (rows == 0) {
      return;
    }
    long bytes = 12L * rows;
    if (sampleBufferBytes < bytes) {
      driver.streamSynchronize(stream, null);
      deviceFree(sampleBuffer);
      sampleBufferBytes = Math.max(bytes, 3072);
      sampleBuffer = deviceAlloc(sampleBufferBytes);
    }
    MemorySegment stage = hostStage(bytes);
    MemorySegment.copy(uniforms, 0, stage, java.lang.foreign.ValueLayout.JAVA_DOUBLE, 0, rows);
    driver.copyHtoDAsync(sampleBuffer, stage, 8L * rows, stream);
    long tokens = sampleBuffer + 8L * rows;
    launch("sample_rows", rows, 1024, 0, tokens, xs.address(), dim, invTemperature, sampleBuffer);
    driver.copyDtoHAsync(stage.asSlice(8L * rows), tokens, 4L * rows, stream);
    driver.streamSynchronize(stream, "sample");
    if (profiling) {
      mark("sample (with the wait for the ops before)");
    }
    MemorySegment.copy(stage, JAVA_INT, 8L * rows, out, 0, rows);
  }

  @Override
  public void synchronize() {
    enter();
    steps.leave("synchronize");
    driver.streamSynchronize(stream, "the queued ops");
  }

  /** Free and total device memory, in bytes (benchmarks). */
  long[] memoryInfo() {
    enter();
    return driver.memoryInfo();
  }

  /** Bytes per second of a device-to-device copy of {@code bytes}, {@code repeats} times (benchmarks). */
  double copyBandwidth(long bytes, int repeats) {
    enter();
    steps.leave("copyBandwidth");
    long src = deviceAlloc(bytes);
    long dst = deviceAlloc(bytes);
    try {
      driver.memsetD32Async(src, 0x3f800000, bytes / 4, stream);
      driver.copyDtoDAsync(dst, src, bytes, stream);
      driver.streamSynchronize(stream, "copy warm-up");
      long t0 = System.nanoTime();
      for (int i = 0; i < repeats; i++) {
        driver.copyDtoDAsync(dst, src, bytes, stream);
      }
      driver.streamSynchronize(stream, "copy benchmark");
      double seconds = (System.nanoTime() - t0) / 1e9;
      return 2.0 * bytes * repeats / seconds; // each byte is read once and written once
    } finally {
      deviceFree(src);
      deviceFree(dst);
    }
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    enter();
    closed = true;
    RuntimeException first = null;
    try {
      driver.streamSynchronize(stream, "the queued ops, at close");
    } catch (RuntimeException e) {
      first = e;
    }
    try {
      steps.close();
      blas.close();
      for (IntStage s : intStages) {
        if (s.host != null) {
          driver.memFreeHost(s.host);
        }
        if (s.copied != null) {
          driver.eventDestroy(s.copied);
        }
      }
      if (hostStage != null) {
        driver.memFreeHost(hostStage);
      }
      if (normTableHost != null) {
        driver.memFreeHost(normTableHost);
      }
      for (long p : allocations) {
        driver.memFree(p);
      }
      allocations.clear();
      driver.moduleUnload(module);
      driver.streamDestroy(stream);
      driver.primaryContextRelease(device);
    } catch (RuntimeException e) {
      if (first == null) {
        first = e;
      }
    } finally {
      arena.close();
    }
    if (first != null) {
      throw first;
    }
  }
}
