package dev.medtune.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The steps of {@code Backend.beginStep}/{@code endStep} as CUDA graphs: a decode step is about
 * 650 launches (8B shape) whose host cost (~3.7 us each through the driver) is a third of the
 * token; a graph queues them with one {@code cuGraphLaunch}.
 *
 * <p>Per key: the first time, the ops run directly and are recorded (kernel and every argument,
 * each cuBLASLt product, each upload of a host {@code int[]}); this warms up NVRTC's module,
 * cuBLASLt's plans and every scratch buffer, so that nothing allocates or waits later. The second
 * time the stream is captured (thread-local mode: the driver refuses allocation and waits from
 * this thread meanwhile), each op compared with the record, and the graph instantiated and
 * launched at the end. From the third time on the ops only run their host checks and are
 * compared with the record (nothing is queued), their int arrays are written into the step's
 * page-locked buffers (which the graph's copy nodes read when it runs), and the end of the step
 * launches the graph.
 *
 * <p>Host int arrays: the calls of one step that pass the same array (Llama passes one
 * {@code positions} to rope, the KV store and attention of every layer) share one page-locked
 * buffer and one device buffer, uploaded once per step (one copy node); a later call of the
 * group must find the same contents, else it is a mismatch. The pinned buffers are rewritten only
 * after the previous run of the step is done (an event recorded after it).
 *
 * <p>Mismatch (an op, argument or int content that differs from the record, an op the record does
 * not have, or an op that cannot be in a graph, such as a copy to the host or a buffer that must
 * grow): the step falls back to running directly, so results never depend on the graph. The ops
 * of the step so far are queued directly from the record (they are identical to this step's, or
 * the mismatch would have been found earlier), the rest of the step runs directly, and the key
 * starts again from a new record (a scratch buffer that grew has a new address: one fallback, then
 * a new graph); after {@link #MAX_FALLBACKS} fallbacks the key runs op by op for good, reported on
 * stderr. A failed capture falls back the same way. {@link #stats} counts fallbacks and keeps the
 * last reason.
 */
final class StepGraphs implements AutoCloseable {

  /** Steps kept (graphs and their buffers) before the least recently used is destroyed. */
  static final int MAX_STEPS = 32;
  /** Fallbacks of one key before it is never recorded again (its ops or arguments keep changing). */
  static final int MAX_FALLBACKS = 3;
  /** Int groups of up to SLOT_BYTES share one page-locked slab and one device slab (no allocation per step). */
  private static final int SLOT_BYTES = 256;
  private static final int SLOTS = 1024;

  enum Mode { DIRECT, RECORD, CAPTURE, REPLAY }

  /** What happened so far: steps recorded, captured, replayed, fallen back, and the last reason. */
  record Stats(long recorded, long captured, long replayed, long fallbacks, String lastFallback) {}

  /** One stream operation of a step. */
  sealed interface Op permits Launch, Product, Upload, Fill {}

  /** A kernel launch; {@code args} are Long (pointers), Integer or Float, compared bit for bit. */
  record Launch(String kernel, int grid, int gridY, int block, int shared, Object[] args) implements Op {
    @Override
    public boolean equals(Object o) {
      return o instanceof Launch l && kernel.equals(l.kernel) && grid == l.grid && gridY == l.gridY
          && block == l.block && shared == l.shared && Arrays.equals(args, l.args);
    }

    @Override
    public int hashCode() {
      return kernel.hashCode() * 31 + Arrays.hashCode(args);
    }

    @Override
    public String toString() {
      StringBuilder sb = new StringBuilder(kernel).append("<<<").append(grid).append('x').append(gridY)
          .append(", ").append(block).append(", ").append(shared).append(">>>(");
      for (int i = 0; i < args.length; i++) {
        sb.append(i == 0 ? "" : ", ").append(args[i] instanceof Long l ? "0x" + Long.toHexString(l) : args[i]);
      }
      return sb.append(')').toString();
    }
  }

  /** A cuBLASLt product, in {@link CublasLt#matmul}'s column-major terms. */
  record Product(int abType, boolean transa, boolean transb, long m, long n, long k, long a, long lda,
      long b, long ldb, long d, long ldd, float alpha, float beta) implements Op {}

  /** An upload of {@code count} ints into group {@code group}'s buffers; only the group's first call copies. */
  record Upload(int group, int count, boolean first) implements Op {}

  /** {@code cuMemsetD32Async(dst, value, count)}. */
  record Fill(long dst, int value, long count) implements Op {}

  /** The page-locked and device buffers of the int arguments that come from one host array. */
  private static final class Group {
    final int count;
    final MemorySegment host;
    final long device;
    final int slot;       // in the slabs, or -1: host and device allocated for this group
    final int[] current;  // what host holds now

    Group(int count, MemorySegment host, long device, int slot) {
      this.count = count;
      this.host = host;
      this.device = device;
      this.slot = slot;
      this.current = new int[count];
    }
  }

  private static final class Step {
    final Object key;
    final List<Op> ops = new ArrayList<>();
    final List<Group> groups = new ArrayList<>();
    final MemorySegment done;  // recorded after every run of the step
    boolean recorded;
    boolean disabled;
    boolean reset;      // fell back: record again from the next time
    int fallbacks;
    MemorySegment graph;
    MemorySegment exec;

    Step(Object key, MemorySegment done) {
      this.key = key;
      this.done = done;
    }
  }

  /** The device calls of steps, all on one stream: the CUDA driver and cuBLASLt ({@link Cuda}), or a test's simulation. */
  interface Device {
    void launch(Launch l);

    void product(Product p);

    void copyHtoD(long dst, MemorySegment src, long bytes);

    void fill(long dst, int value, long count);

    void beginCapture();

    /** The captured graph; a CudaException when the capture was invalidated (the stream has left capture). */
    MemorySegment endCapture();

    MemorySegment instantiate(MemorySegment graph);

    void launchGraph(MemorySegment exec);

    void destroyExec(MemorySegment exec);

    void destroyGraph(MemorySegment graph);

    MemorySegment newEvent();

    void record(MemorySegment event);

    void waitFor(MemorySegment event);

    void destroyEvent(MemorySegment event);

    MemorySegment allocHost(long bytes);

    void freeHost(MemorySegment host);

    long alloc(long bytes);

    void free(long pointer);

    void synchronize(String what);
  }

  /** {@link Device} on the CUDA driver and cuBLASLt, queueing on the backend's stream. */
  static final class Cuda implements Device {
    private final Driver driver;
    private final MemorySegment stream;
    private final Map<String, MemorySegment> functions;
    private final CublasLt blas;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment paramValues = arena.allocate(8L * 32, 8);
    private final MemorySegment paramPointers = arena.allocate(ADDRESS, 32);

    Cuda(Driver driver, MemorySegment stream, Map<String, MemorySegment> functions, CublasLt blas) {
      this.driver = driver;
      this.stream = stream;
      this.functions = functions;
      this.blas = blas;
    }

    @Override
    public void launch(Launch l) {
      for (int i = 0; i < l.args.length; i++) {
        long at = 8L * i;
        switch (l.args[i]) {
          case Long v -> paramValues.set(JAVA_LONG, at, v);
          case Integer v -> paramValues.set(JAVA_INT, at, v);
          case Float v -> paramValues.set(JAVA_FLOAT, at, v);
          default -> throw new IllegalArgumentException("kernel argument " + l.args[i]);
        }
        paramPointers.setAtIndex(ADDRESS, i, paramValues.asSlice(at, 8));
      }
      driver.launch(l.kernel, functions.get(l.kernel), l.grid, l.gridY, l.block, l.shared, stream, paramPointers);
    }

    @Override
    public void product(Product p) {
      blas.matmul(stream, p.abType, p.transa, p.transb, p.m, p.n, p.k, p.a, p.lda, p.b, p.ldb, p.d, p.ldd,
          p.alpha, p.beta);
    }

    @Override
    public void copyHtoD(long dst, MemorySegment src, long bytes) {
      driver.copyHtoDAsync(dst, src, bytes, stream);
    }

    @Override
    public void fill(long dst, int value, long count) {
      driver.memsetD32Async(dst, value, count, stream);
    }

    @Override
    public void beginCapture() {
      // thread-local: the driver refuses allocation and waits from this thread while capturing
      driver.streamBeginCapture(stream, Driver.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
    }

    @Override
    public MemorySegment endCapture() {
      return driver.streamEndCapture(stream);
    }

    @Override
    public MemorySegment instantiate(MemorySegment graph) {
      return driver.graphInstantiate(graph);
    }

    @Override
    public void launchGraph(MemorySegment exec) {
      driver.graphLaunch(exec, stream);
    }

    @Override
    public void destroyExec(MemorySegment exec) {
      driver.graphExecDestroy(exec);
    }

    @Override
    public void destroyGraph(MemorySegment graph) {
      driver.graphDestroy(graph);
    }

    @Override
    public MemorySegment newEvent() {
      return driver.eventCreate();
    }

    @Override
    public void record(MemorySegment event) {
      driver.eventRecord(event, stream);
    }

    @Override
    public void waitFor(MemorySegment event) {
      driver.eventSynchronize(event);
    }

    @Override
    public void destroyEvent(MemorySegment event) {
      driver.eventDestroy(event);
    }

    @Override
    public MemorySegment allocHost(long bytes) {
      return driver.memAllocHost(bytes);
    }

    @Override
    public void freeHost(MemorySegment host) {
      driver.memFreeHost(host);
    }

    @Override
    public long alloc(long bytes) {
      return driver.memAlloc(bytes);
    }

    @Override
    public void free(long pointer) {
      driver.memFree(pointer);
    }

    @Override
    public void synchronize(String what) {
      driver.streamSynchronize(stream, what);
    }

    void close() {
      arena.close();
    }
  }

  private final Device device;
  private final LinkedHashMap<Object, Step> steps = new LinkedHashMap<>(16, 0.75f, true);
  private final IdentityHashMap<int[], Group> recordGroups = new IdentityHashMap<>();
  private final List<Group> retired = new ArrayList<>();
  private final java.util.BitSet slotsUsed = new java.util.BitSet(SLOTS);
  private MemorySegment slabHost;
  private long slabDevice;
  private boolean enabled;
  private Step current;
  private Mode mode = Mode.DIRECT;
  private int position;
  private long recorded;
  private long captured;
  private long replayed;
  private long fallbacks;
  private String lastFallback;
  private boolean warned;

  StepGraphs(Device device, boolean enabled) {
    this.device = device;
    this.enabled = enabled;
  }

  boolean enabled() {
    return enabled;
  }

  void enable(boolean on) {
    if (current != null) {
      throw new IllegalStateException("CUDA graphs switched inside the step " + current.key);
    }
    enabled = on;
  }

  /** True between begin and end while the step is recorded, captured or replayed (ops go through here). */
  boolean active() {
    return mode != Mode.DIRECT;
  }

  Stats stats() {
    return new Stats(recorded, captured, replayed, fallbacks, lastFallback);
  }

  // ---------------------------------------------------------------- begin and end

  void begin(Object key) {
    if (current != null) {
      throw new IllegalStateException("beginStep(" + key + ") inside the step " + current.key
          + ": end it first");
    }
    if (!enabled) {
      return;
    }
    if (!retired.isEmpty()) {
      // buffers of discarded records: free once the copies queued from them have run
      device.synchronize("the steps before freeing their buffers");
      free(retired);
    }
    Step s = steps.get(key);
    if (s == null) {
      if (steps.size() >= MAX_STEPS) {
        evictOldest();
      }
      s = new Step(key, device.newEvent());
      steps.put(key, s);
    }
    current = s;
    position = 0;
    if (s.disabled) {
      mode = Mode.DIRECT;
      return;
    }
    if (s.recorded) {
      // the pinned buffers are rewritten by this step: the previous run must have read them
      device.waitFor(s.done);
    }
    if (!s.recorded) {
      recordGroups.clear();
      mode = Mode.RECORD;
    } else if (s.exec == null) {
      try {
        device.beginCapture();
        mode = Mode.CAPTURE;
      } catch (CudaException e) {
        fellBack(s, e.getMessage());
        mode = Mode.DIRECT;
      }
    } else {
      mode = Mode.REPLAY;
    }
  }

  /** Ends the step; {@code completed} false when an op threw (what ran so far is queued directly). */
  void end(boolean completed) {
    Step s = current;
    if (s == null) {
      return;
    }
    Mode m = mode;
    try {
      if (!completed) {
        mode = Mode.DIRECT;
        if (m == Mode.RECORD) {
          // a partial record is no record: record again next time (the buffers may be in use)
          s.ops.clear();
          retired.addAll(s.groups);
          s.groups.clear();
        } else if (m == Mode.CAPTURE || m == Mode.REPLAY) {
          if (m == Mode.CAPTURE) {
            endCaptureQuietly();
          }
          runDirectly(s, position);
        }
      } else {
        switch (m) {
          case RECORD -> {
            s.recorded = true;
            recorded++;
          }
          case CAPTURE -> finishCapture(s);
          case REPLAY -> {
            if (position != s.ops.size()) {
              fallBack("the step ended after " + position + " of the recorded " + s.ops.size() + " ops");
            } else {
              device.launchGraph(s.exec);
              replayed++;
            }
          }
          case DIRECT -> { }
        }
      }
      device.record(s.done);
    } finally {
      current = null;
      mode = Mode.DIRECT;
      if (s.reset) {
        forget(s);
      }
    }
  }

  /** Drops a step's record and graph so that the next time records it again. */
  private void forget(Step s) {
    s.reset = false;
    s.recorded = false;
    s.ops.clear();
    retired.addAll(s.groups); // copies queued from them may not have run yet: freed at the next begin
    s.groups.clear();
    if (s.exec != null) {
      device.destroyExec(s.exec); // its last run is finished or queued; the driver keeps what it needs
      s.exec = null;
    }
    if (s.graph != null) {
      device.destroyGraph(s.graph);
      s.graph = null;
    }
  }

  private void finishCapture(Step s) {
    if (position != s.ops.size()) {
      fallBack("the step ended after " + position + " of the recorded " + s.ops.size() + " ops");
      return;
    }
    MemorySegment graph;
    try {
      graph = device.endCapture();
    } catch (CudaException e) {
      mode = Mode.DIRECT;
      runDirectly(s, s.ops.size());
      fellBack(s, e.getMessage());
      return;
    }
    mode = Mode.DIRECT;
    try {
      s.exec = device.instantiate(graph);
      s.graph = graph;
    } catch (CudaException e) {
      device.destroyGraph(graph);
      runDirectly(s, s.ops.size());
      fellBack(s, e.getMessage());
      return;
    }
    captured++;
    device.launchGraph(s.exec);
  }

  // ---------------------------------------------------------------- ops

  /** Leaves graph mode for the rest of the step before {@code what}, which cannot be in a graph. */
  void leave(String what) {
    if (active()) {
      fallBack(what + " cannot be part of a CUDA graph");
    }
  }

  void launch(String kernel, int grid, int gridY, int block, int shared, Object[] args) {
    op(new Launch(kernel, grid, gridY, block, shared, args));
  }

  void product(Product p) {
    op(p);
  }

  void fill(long dst, int value, long count) {
    op(new Fill(dst, value, count));
  }

  private void op(Op op) {
    switch (mode) {
      case RECORD -> {
        current.ops.add(op);
        issue(op);
      }
      case CAPTURE, REPLAY -> {
        if (!matches(op)) {
          issue(op);
          return;
        }
        position++;
        if (mode == Mode.CAPTURE) {
          try {
            issue(op);
          } catch (CudaException e) {
            // not captured: run the step so far (this op included) directly
            fallBack("capturing " + op + " failed: " + e.getMessage());
          }
        }
      }
      case DIRECT -> issue(op);
    }
  }

  /** Compares {@code op} with the record at the current position; on a mismatch falls back and says false. */
  private boolean matches(Op op) {
    Op want = position < current.ops.size() ? current.ops.get(position) : null;
    if (op.equals(want)) {
      return true;
    }
    fallBack("op " + position + " of the step is " + op + ", the record has "
        + (want == null ? "no more ops" : want.toString()));
    return false;
  }

  /**
   * The device address of {@code values[0..count)} for this step, or 0 when the step has fallen
   * back (the caller uploads directly).
   */
  long ints(int[] values, int count) {
    Step s = current;
    switch (mode) {
      case RECORD -> {
        Group g = recordGroups.get(values);
        boolean first = g == null || g.count != count || !Arrays.equals(g.current, 0, count, values, 0, count);
        if (first) {
          g = newGroup(count);
          s.groups.add(g);
          recordGroups.put(values, g);
          write(g, values);
        }
        Upload u = new Upload(s.groups.indexOf(g), count, first);
        s.ops.add(u);
        issue(u);
        return g.device;
      }
      case CAPTURE, REPLAY -> {
        Op want = position < s.ops.size() ? s.ops.get(position) : null;
        if (!(want instanceof Upload u) || u.count() != count) {
          fallBack("op " + position + " of the step is an upload of " + count + " ints, the record has "
              + (want == null ? "no more ops" : want.toString()));
          return 0;
        }
        Group g = s.groups.get(u.group());
        if (u.first()) {
          write(g, values);
        } else if (!Arrays.equals(g.current, 0, count, values, 0, count)) {
          fallBack("op " + position + " of the step passes ints " + Arrays.toString(Arrays.copyOf(values, count))
              + " where an earlier op of the step passed " + Arrays.toString(g.current) + " from the same array");
          return 0;
        }
        position++;
        if (mode == Mode.CAPTURE && u.first()) {
          try {
            issue(u);
          } catch (CudaException e) {
            fallBack("capturing " + u + " failed: " + e.getMessage());
          }
        }
        return g.device;
      }
      default -> {
        return 0;
      }
    }
  }

  /** Buffers for {@code count} ints: a slot of the slabs when one is free and large enough. */
  private Group newGroup(int count) {
    long bytes = 4L * count;
    if (bytes <= SLOT_BYTES) {
      if (slabHost == null) {
        slabHost = device.allocHost((long) SLOT_BYTES * SLOTS);
        slabDevice = device.alloc((long) SLOT_BYTES * SLOTS);
      }
      int slot = slotsUsed.nextClearBit(0);
      if (slot < SLOTS) {
        slotsUsed.set(slot);
        long at = (long) slot * SLOT_BYTES;
        return new Group(count, slabHost.asSlice(at, SLOT_BYTES), slabDevice + at, slot);
      }
    }
    long size = Math.max(bytes, 64);
    return new Group(count, device.allocHost(size), device.alloc(size), -1);
  }

  private static void write(Group g, int[] values) {
    System.arraycopy(values, 0, g.current, 0, g.count);
    MemorySegment.copy(values, 0, g.host, JAVA_INT, 0, g.count);
  }

  /** Queues {@code op} on the stream (captured when the stream is capturing). */
  private void issue(Op op) {
    switch (op) {
      case Launch l -> device.launch(l);
      case Product p -> device.product(p);
      case Upload u -> {
        if (u.first) {
          Group g = current.groups.get(u.group);
          device.copyHtoD(g.device, g.host, 4L * u.count);
        }
      }
      case Fill f -> device.fill(f.dst, f.value, f.count);
    }
  }

  // ---------------------------------------------------------------- fallback

  /**
   * Leaves graph mode for the rest of the step: ends a capture, queues the ops of the step so far
   * directly (in replay and capture nothing has run yet); the key is recorded again next time.
   */
  private void fallBack(String why) {
    Step s = current;
    Mode m = mode;
    mode = Mode.DIRECT;
    if (m == Mode.CAPTURE) {
      endCaptureQuietly();
    }
    if (m == Mode.CAPTURE || m == Mode.REPLAY) {
      runDirectly(s, position);
    }
    fellBack(s, why);
  }

  private void runDirectly(Step s, int count) {
    for (int i = 0; i < count; i++) {
      issue(s.ops.get(i));
    }
  }

  private void endCaptureQuietly() {
    try {
      MemorySegment g = device.endCapture();
      if (!g.equals(MemorySegment.NULL)) {
        device.destroyGraph(g);
      }
    } catch (CudaException e) {
      // the capture was invalidated; the stream has left capture mode either way
    }
  }

  private void fellBack(Step s, String why) {
    fallbacks++;
    lastFallback = "step " + s.key + ": " + why;
    if (++s.fallbacks >= MAX_FALLBACKS) {
      s.disabled = true;
      if (!warned) {
        warned = true;
        System.err.println("medtune: CUDA graph given up for " + lastFallback + " (" + MAX_FALLBACKS
            + " fallbacks; the step runs op by op)");
      }
    } else {
      s.reset = true;
    }
  }

  // ---------------------------------------------------------------- cleanup

  private void evictOldest() {
    Iterator<Step> it = steps.values().iterator();
    Step s = it.next();
    it.remove();
    device.synchronize("the steps before freeing a CUDA graph");
    destroy(s);
  }

  private void destroy(Step s) {
    if (s.exec != null) {
      device.destroyExec(s.exec);
    }
    if (s.graph != null) {
      device.destroyGraph(s.graph);
    }
    free(s.groups);
    device.destroyEvent(s.done);
  }

  private void free(List<Group> groups) {
    for (Group g : groups) {
      if (g.slot >= 0) {
        slotsUsed.clear(g.slot);
      } else {
        device.freeHost(g.host);
        device.free(g.device);
      }
    }
    groups.clear();
  }

  /**
   * Forgets every recorded step (their graphs and buffers freed), so the next ones are recorded
   * again: for a change of the backend's own choices (which kernel a product uses) that would
   * otherwise show as a mismatch and disable the step's graph for good.
   */
  void forget() {
    if (current != null) {
      throw new IllegalStateException("CUDA graphs forgotten inside the step " + current.key);
    }
    device.synchronize("the steps before freeing their CUDA graphs");
    destroyAll();
  }

  private void destroyAll() {
    for (Step s : steps.values()) {
      destroy(s);
    }
    steps.clear();
  }

  /** Frees every graph and buffer; the caller has waited for the stream. */
  @Override
  public void close() {
    try {
      if (mode == Mode.CAPTURE) {
        endCaptureQuietly();
      }
      destroyAll();
      free(retired);
      if (slabHost != null) {
        device.freeHost(slabHost);
        device.free(slabDevice);
        slabHost = null;
      }
    } finally {
      steps.clear();
      current = null;
      mode = Mode.DIRECT;
      if (device instanceof Cuda c) {
        c.close();
      }
    }
  }
}
