package dev.medtune.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * {@link StepGraphs}' record / capture / replay / fallback logic without a GPU, on a stream
 * simulated on the host ({@link SimulatedStream}: device memory is a map of words, a captured
 * graph is the list of its operations run again at each launch, copies from page-locked memory
 * read it when they run). The one property: the stream runs exactly the operations the caller
 * asked for, in order, each reading the ints the caller passed at that call, whatever mix of
 * recording, capture, replay and fallback produced them. The GPU tests
 * ({@code CudaDecodeGraphTest}) check the same on the real driver.
 */
class StepGraphsTest {

  /** The device calls of StepGraphs on a synchronous stream simulated on the host. */
  static final class SimulatedStream implements StepGraphs.Device {
    final Arena arena = Arena.ofShared();
    final Map<Long, Integer> memory = new HashMap<>();
    final List<String> executed = new ArrayList<>();
    final Map<Long, List<Runnable>> graphs = new HashMap<>();
    final Set<String> failWhileCapturing = new HashSet<>();
    final Set<Long> liveDevice = new HashSet<>();
    final Set<Long> liveHost = new HashSet<>();
    final Set<Long> liveGraphs = new HashSet<>();
    final Set<Long> liveEvents = new HashSet<>();
    boolean failEndCapture;
    boolean failInstantiate;
    List<Runnable> capturing;
    long nextAddress = 0x10000;
    long nextHandle = 1;
    int graphLaunches;

    private void queue(Runnable r) {
      if (capturing != null) {
        capturing.add(r);
      } else {
        r.run();
      }
    }

    @Override
    public void launch(StepGraphs.Launch l) {
      if (capturing != null && failWhileCapturing.contains(l.kernel())) {
        throw new CudaException("cuLaunchKernel(" + l.kernel() + ") failed: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED");
      }
      queue(() -> {
        if (l.kernel().equals("read")) {
          long p = (Long) l.args()[0];
          int n = (Integer) l.args()[1];
          int[] v = new int[n];
          for (int i = 0; i < n; i++) {
            Integer w = memory.get(p + 4L * i);
            v[i] = w == null ? Integer.MIN_VALUE : w;
          }
          executed.add("read " + Arrays.toString(v));
        } else {
          executed.add(l.kernel() + " " + Arrays.toString(l.args()));
        }
      });
    }

    @Override
    public void product(StepGraphs.Product p) {
      queue(() -> executed.add("product a=" + p.a()));
    }

    @Override
    public void copyHtoD(long dst, MemorySegment src, long bytes) {
      queue(() -> {
        for (long i = 0; i < bytes / 4; i++) {
          memory.put(dst + 4 * i, src.get(ValueLayout.JAVA_INT, 4 * i));
        }
      });
    }

    @Override
    public void fill(long dst, int value, long count) {
      queue(() -> executed.add("fill " + dst + " " + value + " " + count));
    }

    @Override
    public void beginCapture() {
      assertTrue(capturing == null, "capture inside a capture");
      capturing = new ArrayList<>();
    }

    @Override
    public MemorySegment endCapture() {
      assertTrue(capturing != null, "end of a capture that did not begin");
      List<Runnable> ops = capturing;
      capturing = null;
      if (failEndCapture) {
        throw new CudaException("cuStreamEndCapture failed: CUDA_ERROR_STREAM_CAPTURE_INVALIDATED");
      }
      long h = nextHandle++;
      graphs.put(h, ops);
      liveGraphs.add(h);
      return MemorySegment.ofAddress(h);
    }

    @Override
    public MemorySegment instantiate(MemorySegment graph) {
      if (failInstantiate) {
        throw new CudaException("cuGraphInstantiateWithFlags failed: CUDA_ERROR_INVALID_VALUE");
      }
      long h = nextHandle++;
      graphs.put(h, graphs.get(graph.address()));
      liveGraphs.add(h);
      return MemorySegment.ofAddress(h);
    }

    @Override
    public void launchGraph(MemorySegment exec) {
      assertTrue(capturing == null, "graph launched while capturing");
      graphLaunches++;
      for (Runnable r : graphs.get(exec.address())) {
        r.run();
      }
    }

    @Override
    public void destroyExec(MemorySegment exec) {
      assertTrue(liveGraphs.remove(exec.address()));
    }

    @Override
    public void destroyGraph(MemorySegment graph) {
      assertTrue(liveGraphs.remove(graph.address()));
    }

    @Override
    public MemorySegment newEvent() {
      assertTrue(capturing == null, "event created while capturing");
      long h = nextHandle++;
      liveEvents.add(h);
      return MemorySegment.ofAddress(h);
    }

    @Override
    public void record(MemorySegment event) {
      assertTrue(capturing == null, "event recorded while capturing");
    }

    @Override
    public void waitFor(MemorySegment event) {
      assertTrue(capturing == null, "a wait while capturing");
    }

    @Override
    public void destroyEvent(MemorySegment event) {
      assertTrue(liveEvents.remove(event.address()));
    }

    @Override
    public MemorySegment allocHost(long bytes) {
      assertTrue(capturing == null, "page-locked allocation while capturing");
      MemorySegment m = arena.allocate(bytes, 64);
      liveHost.add(m.address());
      return m;
    }

    @Override
    public void freeHost(MemorySegment host) {
      assertTrue(liveHost.remove(host.address()));
    }

    @Override
    public long alloc(long bytes) {
      assertTrue(capturing == null, "device allocation while capturing");
      long p = nextAddress;
      nextAddress += (bytes + 255) / 256 * 256;
      liveDevice.add(p);
      return p;
    }

    @Override
    public void free(long pointer) {
      assertTrue(liveDevice.remove(pointer));
    }

    @Override
    public void synchronize(String what) {
      assertTrue(capturing == null, "synchronize while capturing: " + what);
    }
  }

  private final SimulatedStream sim = new SimulatedStream();
  private final StepGraphs steps = new StepGraphs(sim, true);
  private final List<String> expected = new ArrayList<>();

  @AfterEach
  void closeAndCheckEverythingIsFreed() {
    steps.close();
    assertEquals(Set.of(), sim.liveGraphs, "graphs left");
    assertEquals(Set.of(), sim.liveEvents, "events left");
    assertEquals(Set.of(), sim.liveHost, "page-locked buffers left");
    assertEquals(Set.of(), sim.liveDevice, "device buffers left");
    sim.arena.close();
  }

  // what CudaBackend does with each kind of op, and what the caller expects the stream to run

  private long ints(int[] values, int count) {
    if (steps.active()) {
      long p = steps.ints(values, count);
      if (p != 0) {
        return p;
      }
    }
    // the backend's direct upload (its own staging buffers)
    MemorySegment host = sim.arena.allocate(4L * count, 4);
    MemorySegment.copy(values, 0, host, ValueLayout.JAVA_INT, 0, count);
    long p = 0x7000_0000L + 0x100L * expected.size();
    sim.copyHtoD(p, host, 4L * count);
    return p;
  }

  private void launch(String kernel, Object... args) {
    StepGraphs.Launch l = new StepGraphs.Launch(kernel, 1, 1, 32, 0, args);
    if (steps.active()) {
      steps.launch(kernel, 1, 1, 32, 0, args);
    } else {
      sim.launch(l);
    }
  }

  private void read(int[] values, int count) {
    long p = ints(values, count);
    expected.add("read " + Arrays.toString(Arrays.copyOf(values, count)));
    launch("read", p, count);
  }

  private void kernel(String name, Object... args) {
    expected.add(name + " " + Arrays.toString(args));
    launch(name, args);
  }

  private void product(long a) {
    expected.add("product a=" + a);
    StepGraphs.Product p = new StepGraphs.Product(14, true, false, 8, 1, 8, a, 8, 0x200, 8, 0x300, 8, 1f, 0f);
    if (steps.active()) {
      steps.product(p);
    } else {
      sim.product(p);
    }
  }

  /** A decode-like step: tokens, then positions used three times, a kernel, a product. */
  private void decodeStep(Object key, int token, int position, float eps) {
    int[] tokens = {token};            // a new array each step
    int[] positions = {position, 0};   // one array for the whole step, as Llama passes it
    steps.begin(key);
    read(tokens, 1);
    read(positions, 1);
    kernel("rmsnorm", 0x100L, eps, 64);
    read(positions, 1);
    product(0x400);
    read(positions, 1);
    steps.end(true);
  }

  private void assertRanAsAsked(String when) {
    assertEquals(expected, sim.executed, when);
  }

  @Test
  void replaysRunWhatEachStepAskedWithItsInts() {
    for (int s = 0; s < 6; s++) {
      int before = sim.executed.size();
      decodeStep("decode", 100 + s, 16 + s, 1e-5f);
      assertTrue(sim.executed.size() > before);
      assertRanAsAsked("after step " + s);
    }
    StepGraphs.Stats st = steps.stats();
    assertEquals(1, st.recorded());
    assertEquals(1, st.captured());
    assertEquals(4, st.replayed());
    assertEquals(0, st.fallbacks());
    assertEquals(5, sim.graphLaunches, "one launch per captured or replayed step");
  }

  @Test
  void aReplayRunsNothingBeforeTheEndOfItsStep() {
    for (int s = 0; s < 2; s++) {
      decodeStep("decode", 1, s, 1e-5f);
    }
    steps.begin("decode");
    int before = sim.executed.size();
    read(new int[] {5}, 1);
    read(new int[] {9, 0}, 1);
    kernel("rmsnorm", 0x100L, 1e-5f, 64);
    assertEquals(before, sim.executed.size(), "ops of a replayed step wait for its graph");
    read(new int[] {9, 0}, 1);
    product(0x400);
    read(new int[] {9, 0}, 1);
    steps.end(true);
    assertRanAsAsked("after the replay");
  }

  @Test
  void anOpThatDiffersFromTheRecordFallsBackThenTheKeyIsRecordedAgain() {
    for (int s = 0; s < 3; s++) {
      decodeStep("decode", s, s, 1e-5f);
    }
    decodeStep("decode", 7, 7, 2e-5f); // another scalar argument: a mismatch in the middle of a replay
    assertRanAsAsked("after the mismatch");
    StepGraphs.Stats st = steps.stats();
    assertEquals(1, st.fallbacks());
    assertTrue(st.lastFallback().contains("rmsnorm"), st.lastFallback());
    // the new arguments are the step now (a buffer that moved, say): record, capture, replay again
    for (int s = 0; s < 4; s++) {
      decodeStep("decode", 8 + s, 8 + s, 2e-5f);
      assertRanAsAsked("after the mismatch, step " + s);
    }
    assertEquals(2, steps.stats().recorded());
    assertEquals(2, steps.stats().captured());
    assertEquals(1 + 2, steps.stats().replayed());
    // arguments that change every time: given up after MAX_FALLBACKS, then op by op
    for (int s = 0; s < 12; s++) {
      decodeStep("varying", s, s, 1e-5f * (s + 1));
      assertRanAsAsked("varying, step " + s);
    }
    assertEquals(1 + StepGraphs.MAX_FALLBACKS, steps.stats().fallbacks());
    int launches = sim.graphLaunches;
    long recorded = steps.stats().recorded();
    decodeStep("varying", 99, 99, 1e-5f);
    assertRanAsAsked("after the key was given up");
    assertEquals(launches, sim.graphLaunches, "a key given up runs op by op");
    assertEquals(recorded, steps.stats().recorded(), "and is not recorded again");
  }

  @Test
  void fewerOrMoreOpsThanTheRecordFallBack() {
    for (int s = 0; s < 3; s++) {
      decodeStep("a", s, s, 1e-5f);
      decodeStep("b", s, s, 1e-5f);
    }
    steps.begin("a"); // fewer: ends after two ops
    read(new int[] {1}, 1);
    read(new int[] {2, 0}, 1);
    steps.end(true);
    assertRanAsAsked("a shorter step");
    steps.begin("b"); // more: an extra kernel at the end
    read(new int[] {1}, 1);
    int[] positions = {3, 0};
    read(positions, 1);
    kernel("rmsnorm", 0x100L, 1e-5f, 64);
    read(positions, 1);
    product(0x400);
    read(positions, 1);
    kernel("extra", 1L);
    steps.end(true);
    assertRanAsAsked("a longer step");
    assertEquals(2, steps.stats().fallbacks());
  }

  @Test
  void anArrayWhoseContentsChangeWithinAStepFallsBack() {
    for (int s = 0; s < 3; s++) {
      decodeStep("decode", s, s, 1e-5f);
    }
    int[] positions = {4, 0};
    steps.begin("decode");
    read(new int[] {9}, 1);
    read(positions, 1);
    kernel("rmsnorm", 0x100L, 1e-5f, 64);
    positions[0] = 5; // the group's later use must see the ints of its first
    read(positions, 1);
    product(0x400);
    read(positions, 1);
    steps.end(true);
    assertRanAsAsked("after contents changed within a step");
    assertEquals(1, steps.stats().fallbacks());
  }

  @Test
  void anOpThatCannotBeInAGraphLeavesIt() {
    for (int mode = 0; mode < 3; mode++) { // leave while recording, capturing, replaying
      String key = "leave " + mode;
      for (int s = 0; s < mode; s++) {
        decodeStep(key, s, s, 1e-5f);
      }
      steps.begin(key);
      read(new int[] {1}, 1);
      int[] positions = {2, 0};
      read(positions, 1);
      steps.leave("copyToHost");
      assertRanAsAsked("the step so far has run before the copy (mode " + mode + ")");
      kernel("rmsnorm", 0x100L, 1e-5f, 64);
      read(positions, 1);
      steps.end(true);
      assertRanAsAsked("mode " + mode);
    }
    assertEquals(3, steps.stats().fallbacks());
  }

  @Test
  void aStepCutShortByAnExceptionRunsItsOpsSoFarAndTheKeyStillWorks() {
    for (int mode = 0; mode < 3; mode++) { // cut short while recording, capturing, replaying
      String key = "cut " + mode;
      for (int s = 0; s < mode; s++) {
        decodeStep(key, s, s, 1e-5f);
      }
      steps.begin(key);
      read(new int[] {1}, 1);
      read(new int[] {2, 0}, 1);
      steps.end(false);
      assertRanAsAsked("cut short in mode " + mode);
      for (int s = 0; s < 4; s++) {
        decodeStep(key, 10 + s, 10 + s, 1e-5f);
        assertRanAsAsked("mode " + mode + ", step " + s + " after");
      }
    }
    StepGraphs.Stats st = steps.stats();
    assertEquals(0, st.fallbacks());
    assertTrue(st.replayed() >= 3 + 2 + 2, "replayed " + st.replayed());
  }

  @Test
  void failuresOfTheCaptureFallBackToTheDirectRun() {
    sim.failWhileCapturing.add("rmsnorm");
    for (int s = 0; s < 4; s++) {
      decodeStep("launch fails", s, s, 1e-5f);
      assertRanAsAsked("launch fails, step " + s);
    }
    sim.failWhileCapturing.clear();
    sim.failEndCapture = true;
    for (int s = 0; s < 4; s++) {
      decodeStep("end fails", s, s, 1e-5f);
      assertRanAsAsked("end fails, step " + s);
    }
    sim.failEndCapture = false;
    sim.failInstantiate = true;
    for (int s = 0; s < 4; s++) {
      decodeStep("instantiate fails", s, s, 1e-5f);
      assertRanAsAsked("instantiate fails, step " + s);
    }
    // each capture fails: record, capture (fallback), record, capture (fallback)
    assertEquals(3 * 2, steps.stats().fallbacks());
    assertEquals(0, sim.graphLaunches);
    assertTrue(steps.stats().lastFallback().contains("cuGraphInstantiateWithFlags"), steps.stats().lastFallback());
  }

  @Test
  void manyKeysEvictTheLeastRecentlyUsedAndKeepWorking() {
    for (int round = 0; round < 3; round++) {
      for (int k = 0; k < StepGraphs.MAX_STEPS + 8; k++) {
        decodeStep("key " + k, k, round, 1e-5f);
      }
    }
    assertRanAsAsked("after three rounds over more keys than kept");
    assertEquals(0, steps.stats().fallbacks());
    // every key was evicted before its second use: recorded each round, never captured
    assertEquals(3L * (StepGraphs.MAX_STEPS + 8), steps.stats().recorded());
    for (int s = 0; s < 4; s++) {
      decodeStep("key 0", 50 + s, s, 1e-5f);
    }
    assertRanAsAsked("a key used again and again");
    assertEquals(2, steps.stats().replayed());
  }

  @Test
  void stepsDoNotNestAndGraphsOffMeansOpByOp() {
    steps.begin("outer");
    assertThrows(IllegalStateException.class, () -> steps.begin("inner"));
    steps.end(true);
    steps.enable(false);
    for (int s = 0; s < 4; s++) {
      decodeStep("off", s, s, 1e-5f);
    }
    assertRanAsAsked("graphs off");
    assertFalse(steps.active());
    assertEquals(0, sim.graphLaunches);
    assertEquals(1, steps.stats().recorded(), "only the outer step");
  }
}
