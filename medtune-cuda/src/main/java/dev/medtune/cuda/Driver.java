package dev.medtune.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * The CUDA driver API ({@code libcuda.so.1}) through the FFM API, binding the {@code _v2} entry
 * points that the C headers' macros name (cuMemAlloc is cuMemAlloc_v2, ...). Every call's result
 * is checked; a failure is a {@link CudaException} that names the call and the driver's error
 * name and string. Handles (context, stream, module, function, event) are {@link MemorySegment}
 * addresses; device pointers ({@code CUdeviceptr}) are {@code long}.
 */
final class Driver {

  static final int CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
  static final int CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE = 36;
  static final int CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH = 37;
  static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
  static final int CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
  static final int CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
  static final int CU_STREAM_NON_BLOCKING = 1;
  static final int CU_EVENT_DISABLE_TIMING = 2;
  static final int CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;

  private static Driver instance;
  private static CudaException loadFailure;

  final NativeLibraries.Library lib;
  private final MethodHandle cuGetErrorName;
  private final MethodHandle cuGetErrorString;
  private final MethodHandle cuInit;
  private final MethodHandle cuDriverGetVersion;
  private final MethodHandle cuDeviceGetCount;
  private final MethodHandle cuDeviceGet;
  private final MethodHandle cuDeviceGetName;
  private final MethodHandle cuDeviceGetAttribute;
  private final MethodHandle cuDeviceTotalMem;
  private final MethodHandle cuDevicePrimaryCtxRetain;
  private final MethodHandle cuDevicePrimaryCtxRelease;
  private final MethodHandle cuCtxSetCurrent;
  private final MethodHandle cuStreamCreate;
  private final MethodHandle cuStreamDestroy;
  private final MethodHandle cuStreamSynchronize;
  private final MethodHandle cuMemAlloc;
  private final MethodHandle cuMemFree;
  private final MethodHandle cuMemAllocHost;
  private final MethodHandle cuMemFreeHost;
  private final MethodHandle cuMemGetInfo;
  private final MethodHandle cuMemcpyHtoDAsync;
  private final MethodHandle cuMemcpyDtoHAsync;
  private final MethodHandle cuMemcpyDtoDAsync;
  private final MethodHandle cuMemsetD32Async;
  private final MethodHandle cuModuleLoadData;
  private final MethodHandle cuModuleUnload;
  private final MethodHandle cuModuleGetFunction;
  private final MethodHandle cuLaunchKernel;
  private final MethodHandle cuFuncSetAttribute;
  private final MethodHandle cuEventCreate;
  private final MethodHandle cuEventRecord;
  private final MethodHandle cuEventSynchronize;
  private final MethodHandle cuEventDestroy;
  private final MethodHandle cuStreamBeginCapture;
  private final MethodHandle cuStreamEndCapture;
  private final MethodHandle cuGraphInstantiateWithFlags;
  private final MethodHandle cuGraphLaunch;
  private final MethodHandle cuGraphExecDestroy;
  private final MethodHandle cuGraphDestroy;

  private Driver(NativeLibraries.Library lib) {
    this.lib = lib;
    FunctionDescriptor iI = FunctionDescriptor.of(JAVA_INT, JAVA_INT);
    FunctionDescriptor iA = FunctionDescriptor.of(JAVA_INT, ADDRESS);
    cuGetErrorName = lib.function("cuGetErrorName", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    cuGetErrorString = lib.function("cuGetErrorString", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    cuInit = lib.function("cuInit", iI);
    cuDriverGetVersion = lib.function("cuDriverGetVersion", iA);
    cuDeviceGetCount = lib.function("cuDeviceGetCount", iA);
    cuDeviceGet = lib.function("cuDeviceGet", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    cuDeviceGetName = lib.function("cuDeviceGetName", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    cuDeviceGetAttribute = lib.function("cuDeviceGetAttribute", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    cuDeviceTotalMem = lib.function("cuDeviceTotalMem_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    cuDevicePrimaryCtxRetain = lib.function("cuDevicePrimaryCtxRetain", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    cuDevicePrimaryCtxRelease = lib.function("cuDevicePrimaryCtxRelease_v2", iI);
    cuCtxSetCurrent = lib.function("cuCtxSetCurrent", iA);
    cuStreamCreate = lib.function("cuStreamCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    cuStreamDestroy = lib.function("cuStreamDestroy_v2", iA);
    cuStreamSynchronize = lib.function("cuStreamSynchronize", iA);
    cuMemAlloc = lib.function("cuMemAlloc_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    cuMemFree = lib.function("cuMemFree_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG));
    cuMemAllocHost = lib.function("cuMemAllocHost_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    cuMemFreeHost = lib.function("cuMemFreeHost", iA);
    cuMemGetInfo = lib.function("cuMemGetInfo_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    cuMemcpyHtoDAsync = lib.function("cuMemcpyHtoDAsync_v2",
        FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS));
    cuMemcpyDtoHAsync = lib.function("cuMemcpyDtoHAsync_v2",
        FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS));
    cuMemcpyDtoDAsync = lib.function("cuMemcpyDtoDAsync_v2",
        FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS));
    cuMemsetD32Async = lib.function("cuMemsetD32Async",
        FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG, ADDRESS));
    cuModuleLoadData = lib.function("cuModuleLoadData", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    cuModuleUnload = lib.function("cuModuleUnload", iA);
    cuModuleGetFunction = lib.function("cuModuleGetFunction", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    cuLaunchKernel = lib.function("cuLaunchKernel", FunctionDescriptor.of(JAVA_INT, ADDRESS,
        JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    cuFuncSetAttribute = lib.function("cuFuncSetAttribute", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    cuEventCreate = lib.function("cuEventCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    cuEventRecord = lib.function("cuEventRecord", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    cuEventSynchronize = lib.function("cuEventSynchronize", iA);
    cuEventDestroy = lib.function("cuEventDestroy_v2", iA);
    cuStreamBeginCapture = lib.function("cuStreamBeginCapture_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    cuStreamEndCapture = lib.function("cuStreamEndCapture", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    cuGraphInstantiateWithFlags = lib.function("cuGraphInstantiateWithFlags",
        FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG));
    cuGraphLaunch = lib.function("cuGraphLaunch", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    cuGraphExecDestroy = lib.function("cuGraphExecDestroy", iA);
    cuGraphDestroy = lib.function("cuGraphDestroy", iA);
  }

  /** The driver, loaded and initialised once per process ({@code cuInit(0)}). */
  static synchronized Driver get() {
    if (instance != null) {
      return instance;
    }
    if (loadFailure != null) {
      throw loadFailure;
    }
    try {
      Driver d = new Driver(NativeLibraries.open("libcuda.so.1", null, "the NVIDIA driver"));
      d.check("cuInit", (int) d.cuInit.invokeExact(0));
      instance = d;
      return d;
    } catch (CudaException e) {
      loadFailure = e;
      throw e;
    } catch (Throwable t) {
      loadFailure = new CudaException("loading libcuda.so.1 failed: " + t);
      throw loadFailure;
    }
  }

  // ---------------------------------------------------------------- errors

  void check(String call, int result) {
    if (result != 0) {
      throw new CudaException(call + " failed: " + errorText(result));
    }
  }

  String errorText(int result) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment p = a.allocate(ADDRESS);
      String name = "CUDA error " + result;
      if ((int) cuGetErrorName.invokeExact(result, p) == 0 && !p.get(ADDRESS, 0).equals(MemorySegment.NULL)) {
        name = p.get(ADDRESS, 0).reinterpret(256).getString(0);
      }
      String text = "";
      if ((int) cuGetErrorString.invokeExact(result, p) == 0 && !p.get(ADDRESS, 0).equals(MemorySegment.NULL)) {
        text = " (" + p.get(ADDRESS, 0).reinterpret(1024).getString(0) + ")";
      }
      return name + text;
    } catch (Throwable t) {
      return "CUDA error " + result;
    }
  }

  private static CudaException wrap(String call, Throwable t) {
    if (t instanceof CudaException c) {
      return c;
    }
    return new CudaException(call + " could not be called: " + t);
  }

  // ---------------------------------------------------------------- device and context

  int driverVersion() {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(JAVA_INT);
      check("cuDriverGetVersion", (int) cuDriverGetVersion.invokeExact(v));
      return v.get(JAVA_INT, 0);
    } catch (Throwable t) {
      throw wrap("cuDriverGetVersion", t);
    }
  }

  int deviceCount() {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(JAVA_INT);
      check("cuDeviceGetCount", (int) cuDeviceGetCount.invokeExact(v));
      return v.get(JAVA_INT, 0);
    } catch (Throwable t) {
      throw wrap("cuDeviceGetCount", t);
    }
  }

  int device(int ordinal) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(JAVA_INT);
      check("cuDeviceGet(" + ordinal + ")", (int) cuDeviceGet.invokeExact(v, ordinal));
      return v.get(JAVA_INT, 0);
    } catch (Throwable t) {
      throw wrap("cuDeviceGet", t);
    }
  }

  String deviceName(int device) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment s = a.allocate(256);
      check("cuDeviceGetName", (int) cuDeviceGetName.invokeExact(s, 256, device));
      return s.getString(0);
    } catch (Throwable t) {
      throw wrap("cuDeviceGetName", t);
    }
  }

  int attribute(int device, int attribute) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(JAVA_INT);
      check("cuDeviceGetAttribute(" + attribute + ")", (int) cuDeviceGetAttribute.invokeExact(v, attribute, device));
      return v.get(JAVA_INT, 0);
    } catch (Throwable t) {
      throw wrap("cuDeviceGetAttribute", t);
    }
  }

  long totalMemory(int device) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(JAVA_LONG);
      check("cuDeviceTotalMem_v2", (int) cuDeviceTotalMem.invokeExact(v, device));
      return v.get(JAVA_LONG, 0);
    } catch (Throwable t) {
      throw wrap("cuDeviceTotalMem_v2", t);
    }
  }

  /** Free and total device memory of the current context, in bytes. */
  long[] memoryInfo() {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment f = a.allocate(JAVA_LONG);
      MemorySegment t = a.allocate(JAVA_LONG);
      check("cuMemGetInfo_v2", (int) cuMemGetInfo.invokeExact(f, t));
      return new long[] {f.get(JAVA_LONG, 0), t.get(JAVA_LONG, 0)};
    } catch (Throwable t) {
      throw wrap("cuMemGetInfo_v2", t);
    }
  }

  MemorySegment primaryContextRetain(int device) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(ADDRESS);
      check("cuDevicePrimaryCtxRetain", (int) cuDevicePrimaryCtxRetain.invokeExact(v, device));
      return v.get(ADDRESS, 0);
    } catch (Throwable t) {
      throw wrap("cuDevicePrimaryCtxRetain", t);
    }
  }

  void primaryContextRelease(int device) {
    try {
      check("cuDevicePrimaryCtxRelease_v2", (int) cuDevicePrimaryCtxRelease.invokeExact(device));
    } catch (Throwable t) {
      throw wrap("cuDevicePrimaryCtxRelease_v2", t);
    }
  }

  void setCurrent(MemorySegment context) {
    try {
      check("cuCtxSetCurrent", (int) cuCtxSetCurrent.invokeExact(context));
    } catch (Throwable t) {
      throw wrap("cuCtxSetCurrent", t);
    }
  }

  // ---------------------------------------------------------------- streams and events

  MemorySegment streamCreate() {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(ADDRESS);
      check("cuStreamCreate", (int) cuStreamCreate.invokeExact(v, CU_STREAM_NON_BLOCKING));
      return v.get(ADDRESS, 0);
    } catch (Throwable t) {
      throw wrap("cuStreamCreate", t);
    }
  }

  void streamDestroy(MemorySegment stream) {
    try {
      check("cuStreamDestroy_v2", (int) cuStreamDestroy.invokeExact(stream));
    } catch (Throwable t) {
      throw wrap("cuStreamDestroy_v2", t);
    }
  }

  /** Waits for the stream; {@code after} names the work that ran, for the error message. */
  void streamSynchronize(MemorySegment stream, String after) {
    try {
      int r = (int) cuStreamSynchronize.invokeExact(stream);
      if (r != 0) {
        throw new CudaException("cuStreamSynchronize" + (after == null ? "" : " after " + after)
            + " failed: " + errorText(r));
      }
    } catch (Throwable t) {
      throw wrap("cuStreamSynchronize", t);
    }
  }

  MemorySegment eventCreate() {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(ADDRESS);
      check("cuEventCreate", (int) cuEventCreate.invokeExact(v, CU_EVENT_DISABLE_TIMING));
      return v.get(ADDRESS, 0);
    } catch (Throwable t) {
      throw wrap("cuEventCreate", t);
    }
  }

  void eventRecord(MemorySegment event, MemorySegment stream) {
    try {
      check("cuEventRecord", (int) cuEventRecord.invokeExact(event, stream));
    } catch (Throwable t) {
      throw wrap("cuEventRecord", t);
    }
  }

  void eventSynchronize(MemorySegment event) {
    try {
      check("cuEventSynchronize", (int) cuEventSynchronize.invokeExact(event));
    } catch (Throwable t) {
      throw wrap("cuEventSynchronize", t);
    }
  }

  void eventDestroy(MemorySegment event) {
    try {
      check("cuEventDestroy_v2", (int) cuEventDestroy.invokeExact(event));
    } catch (Throwable t) {
      throw wrap("cuEventDestroy_v2", t);
    }
  }

  // ---------------------------------------------------------------- graphs (stream capture)

  /**
   * Starts capturing {@code stream} into a graph: the work queued on it is recorded, not run,
   * until {@link #streamEndCapture}. {@code mode} is a {@code CUstreamCaptureMode}; thread-local
   * makes the driver refuse unsafe calls (allocation, synchronisation) from this thread meanwhile.
   */
  void streamBeginCapture(MemorySegment stream, int mode) {
    try {
      check("cuStreamBeginCapture_v2", (int) cuStreamBeginCapture.invokeExact(stream, mode));
    } catch (Throwable t) {
      throw wrap("cuStreamBeginCapture_v2", t);
    }
  }

  /** Ends the capture and returns the graph (a {@code CUgraph}); fails when the capture was invalidated. */
  MemorySegment streamEndCapture(MemorySegment stream) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(ADDRESS);
      int r = (int) cuStreamEndCapture.invokeExact(stream, v);
      MemorySegment graph = v.get(ADDRESS, 0);
      if (r != 0) {
        if (!graph.equals(MemorySegment.NULL)) {
          int ignored = (int) cuGraphDestroy.invokeExact(graph);
        }
        check("cuStreamEndCapture", r);
      }
      return graph;
    } catch (Throwable t) {
      throw wrap("cuStreamEndCapture", t);
    }
  }

  /** An executable graph ({@code CUgraphExec}) of {@code graph}. */
  MemorySegment graphInstantiate(MemorySegment graph) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(ADDRESS);
      check("cuGraphInstantiateWithFlags", (int) cuGraphInstantiateWithFlags.invokeExact(v, graph, 0L));
      return v.get(ADDRESS, 0);
    } catch (Throwable t) {
      throw wrap("cuGraphInstantiateWithFlags", t);
    }
  }

  /** Queues the whole graph on {@code stream}, in the order it was captured. */
  void graphLaunch(MemorySegment exec, MemorySegment stream) {
    try {
      check("cuGraphLaunch", (int) cuGraphLaunch.invokeExact(exec, stream));
    } catch (Throwable t) {
      throw wrap("cuGraphLaunch", t);
    }
  }

  void graphExecDestroy(MemorySegment exec) {
    try {
      check("cuGraphExecDestroy", (int) cuGraphExecDestroy.invokeExact(exec));
    } catch (Throwable t) {
      throw wrap("cuGraphExecDestroy", t);
    }
  }

  void graphDestroy(MemorySegment graph) {
    try {
      check("cuGraphDestroy", (int) cuGraphDestroy.invokeExact(graph));
    } catch (Throwable t) {
      throw wrap("cuGraphDestroy", t);
    }
  }

  // ---------------------------------------------------------------- memory

  long memAlloc(long bytes) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(JAVA_LONG);
      check("cuMemAlloc_v2(" + bytes + " bytes)", (int) cuMemAlloc.invokeExact(v, bytes));
      return v.get(JAVA_LONG, 0);
    } catch (Throwable t) {
      throw wrap("cuMemAlloc_v2", t);
    }
  }

  void memFree(long pointer) {
    try {
      check("cuMemFree_v2", (int) cuMemFree.invokeExact(pointer));
    } catch (Throwable t) {
      throw wrap("cuMemFree_v2", t);
    }
  }

  /** Page-locked host memory, so that asynchronous copies from it are truly asynchronous. */
  MemorySegment memAllocHost(long bytes) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(ADDRESS);
      check("cuMemAllocHost_v2(" + bytes + " bytes)", (int) cuMemAllocHost.invokeExact(v, bytes));
      return v.get(ADDRESS, 0).reinterpret(bytes);
    } catch (Throwable t) {
      throw wrap("cuMemAllocHost_v2", t);
    }
  }

  void memFreeHost(MemorySegment host) {
    try {
      check("cuMemFreeHost", (int) cuMemFreeHost.invokeExact(host));
    } catch (Throwable t) {
      throw wrap("cuMemFreeHost", t);
    }
  }

  void copyHtoDAsync(long dst, MemorySegment src, long bytes, MemorySegment stream) {
    try {
      check("cuMemcpyHtoDAsync_v2(" + bytes + " bytes)", (int) cuMemcpyHtoDAsync.invokeExact(dst, src, bytes, stream));
    } catch (Throwable t) {
      throw wrap("cuMemcpyHtoDAsync_v2", t);
    }
  }

  void copyDtoHAsync(MemorySegment dst, long src, long bytes, MemorySegment stream) {
    try {
      check("cuMemcpyDtoHAsync_v2(" + bytes + " bytes)", (int) cuMemcpyDtoHAsync.invokeExact(dst, src, bytes, stream));
    } catch (Throwable t) {
      throw wrap("cuMemcpyDtoHAsync_v2", t);
    }
  }

  void copyDtoDAsync(long dst, long src, long bytes, MemorySegment stream) {
    try {
      check("cuMemcpyDtoDAsync_v2(" + bytes + " bytes)", (int) cuMemcpyDtoDAsync.invokeExact(dst, src, bytes, stream));
    } catch (Throwable t) {
      throw wrap("cuMemcpyDtoDAsync_v2", t);
    }
  }

  /** Sets {@code count} 32-bit words at {@code dst} to {@code value} (float bits for float buffers). */
  void memsetD32Async(long dst, int value, long count, MemorySegment stream) {
    try {
      check("cuMemsetD32Async(" + count + " words)", (int) cuMemsetD32Async.invokeExact(dst, value, count, stream));
    } catch (Throwable t) {
      throw wrap("cuMemsetD32Async", t);
    }
  }

  // ---------------------------------------------------------------- modules and launches

  MemorySegment moduleLoadData(MemorySegment image) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(ADDRESS);
      check("cuModuleLoadData", (int) cuModuleLoadData.invokeExact(v, image));
      return v.get(ADDRESS, 0);
    } catch (Throwable t) {
      throw wrap("cuModuleLoadData", t);
    }
  }

  void moduleUnload(MemorySegment module) {
    try {
      check("cuModuleUnload", (int) cuModuleUnload.invokeExact(module));
    } catch (Throwable t) {
      throw wrap("cuModuleUnload", t);
    }
  }

  MemorySegment moduleGetFunction(MemorySegment module, String name) {
    try (Arena a = Arena.ofConfined()) {
      MemorySegment v = a.allocate(ADDRESS);
      check("cuModuleGetFunction(" + name + ")", (int) cuModuleGetFunction.invokeExact(v, module, a.allocateFrom(name)));
      return v.get(ADDRESS, 0);
    } catch (Throwable t) {
      throw wrap("cuModuleGetFunction", t);
    }
  }

  /** {@code cuFuncSetAttribute}, e.g. the dynamic shared memory a kernel may use past the default 48 KiB. */
  void funcSetAttribute(String kernel, MemorySegment function, int attribute, int value) {
    try {
      check("cuFuncSetAttribute(" + kernel + ", " + attribute + ", " + value + ")",
          (int) cuFuncSetAttribute.invokeExact(function, attribute, value));
    } catch (Throwable t) {
      throw wrap("cuFuncSetAttribute(" + kernel + ")", t);
    }
  }

  /** {@code params} is the {@code void**} array of pointers to each argument's value. */
  void launch(String kernel, MemorySegment function, int gridX, int gridY, int blockX, int sharedBytes,
      MemorySegment stream, MemorySegment params) {
    try {
      int r = (int) cuLaunchKernel.invokeExact(function, gridX, gridY, 1, blockX, 1, 1, sharedBytes,
          stream, params, MemorySegment.NULL);
      if (r != 0) {
        throw new CudaException("cuLaunchKernel(" + kernel + ", grid " + gridX + "x" + gridY + ", block "
            + blockX + ") failed: " + errorText(r));
      }
    } catch (Throwable t) {
      throw wrap("cuLaunchKernel(" + kernel + ")", t);
    }
  }

}
