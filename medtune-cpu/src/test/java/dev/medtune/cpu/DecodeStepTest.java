package dev.medtune.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.Checkpoint;
import dev.medtune.model.Generator;
import dev.medtune.model.KvCache;
import dev.medtune.model.Llama;
import dev.medtune.model.Sampler;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The decode-step SPI ({@code Backend.beginStep/endStep}) as Llama uses it, and greedy picking on
 * the backend ({@code Backend.argmax}, {@code Llama.forwardArgmax}, the Generator's device path)
 * against the host definitions, on the CPU backend. A backend seen through a
 * {@link java.lang.reflect.Proxy} logs the SPI calls Llama makes (the calls themselves go to the
 * CPU backend, or to the SPI's default methods where a test says so).
 */
class DecodeStepTest {

  private static final Backend cpu = CpuBackendProvider.create(2);

  @AfterAll
  static void close() {
    cpu.close();
  }

  private static Path fixture(String name) throws URISyntaxException {
    return Path.of(DecodeStepTest.class.getResource("/fixtures/" + name + "/config.json").toURI()).getParent();
  }

  /** {@code inner} seen through the SPI, logging calls; {@code defaults} names default methods to run as the SPI's. */
  private static Backend logging(Backend inner, List<Object[]> log, String... defaults) {
    List<String> useDefault = List.of(defaults);
    InvocationHandler h = (proxy, m, args) -> {
      String name = m.getName();
      if (!name.equals("close")) {
        log.add(new Object[] {name, args == null ? null : args.length > 0 ? args[0] : null});
      }
      if (m.isDefault() && useDefault.contains(name)) {
        return InvocationHandler.invokeDefault(proxy, m, args);
      }
      try {
        return m.invoke(inner, args);
      } catch (InvocationTargetException e) {
        throw e.getCause();
      }
    };
    return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, h);
  }

  /** An independent statement of argmax: the maximum over the non-NaN values, then its first index. */
  private static int firstIndexOfMax(float[] v, int offset, int length) {
    double max = Double.NaN;
    for (int i = 0; i < length; i++) {
      float x = v[offset + i];
      if (!Float.isNaN(x) && (Double.isNaN(max) || x > max)) {
        max = x;
      }
    }
    for (int i = 0; i < length; i++) {
      if (v[offset + i] == max) {
        return i;
      }
    }
    return 0;
  }

  @Test
  void argmaxOfTakesTheFirstMaximumAndPassesOverNaN() {
    float nan = Float.NaN;
    float inf = Float.POSITIVE_INFINITY;
    assertEquals(1, Backend.argmaxOf(new float[] {0f, 3f, 3f, -1f}, 0, 4));
    assertEquals(2, Backend.argmaxOf(new float[] {9f, 0f, 1f, 3f, 2f}, 1, 4));
    assertEquals(1, Backend.argmaxOf(new float[] {nan, 2f, nan, 2f}, 0, 4), "NaN first is passed over");
    assertEquals(2, Backend.argmaxOf(new float[] {1f, nan, inf, inf}, 0, 4));
    assertEquals(0, Backend.argmaxOf(new float[] {-inf, -inf, -inf}, 0, 3), "all -inf: the first");
    assertEquals(2, Backend.argmaxOf(new float[] {nan, nan, -inf}, 0, 3));
    assertEquals(0, Backend.argmaxOf(new float[] {nan, nan, nan}, 0, 3), "all NaN: 0");
    assertEquals(0, Backend.argmaxOf(new float[] {-0f, 0f}, 0, 2), "-0 equals 0: the lower index");
    assertEquals(0, Backend.argmaxOf(new float[] {0f, -0f}, 0, 2));
    assertEquals(1, new Sampler(Sampler.Params.greedy(), 3).sample(new float[] {nan, 1f, 0f}, 0, new int[0], 0),
        "the host sampler's greedy pick is argmaxOf");
  }

  /** Rows of random values with ties, infinities and NaN: every kind of row argmax must handle. */
  static float[] awkwardRows(int rows, int dim, long seed) {
    Random r = new Random(seed);
    float[] v = new float[rows * dim];
    for (int t = 0; t < rows; t++) {
      int o = t * dim;
      for (int i = 0; i < dim; i++) {
        v[o + i] = switch (t % 6) {
          case 0 -> (float) r.nextGaussian() * 5;                          // distinct values
          case 1 -> r.nextInt(4);                                           // many ties of the maximum
          case 2 -> r.nextInt(3) == 0 ? Float.NEGATIVE_INFINITY : (float) r.nextGaussian();
          case 3 -> Float.NEGATIVE_INFINITY;                               // all -inf: index 0
          case 4 -> r.nextInt(5) == 0 ? Float.NaN : (float) r.nextGaussian(); // NaN passed over
          default -> i == dim - 1 ? 7f : r.nextInt(2) == 0 ? Float.NaN : -1f; // the maximum last
        };
      }
    }
    return v;
  }

  @Test
  void cpuArgmaxAndTheSpiDefaultMatchTheDefinitionOnAwkwardRows() {
    for (int dim : new int[] {1, 7, 1000, 128256}) {
      int rows = 12;
      float[] v = awkwardRows(rows, dim, dim);
      Tensor x = cpu.allocate(rows + 1, dim);
      cpu.copyFromHost(v, x, dim); // row 0 of x is not part of the input: a view from row 1
      Tensor view = x.view(dim, (long) rows * dim);
      int[] got = new int[rows];
      cpu.argmax(view, rows, dim, got);
      List<Object[]> log = new ArrayList<>();
      int[] viaDefault = new int[rows];
      logging(cpu, log, "argmax").argmax(view, rows, dim, viaDefault);
      for (int t = 0; t < rows; t++) {
        int want = firstIndexOfMax(v, t * dim, dim);
        assertEquals(want, Backend.argmaxOf(v, t * dim, dim), "argmaxOf, dim " + dim + " row " + t);
        assertEquals(want, got[t], "CPU argmax, dim " + dim + " row " + t);
        assertEquals(want, viaDefault[t], "the SPI's default argmax, dim " + dim + " row " + t);
      }
      assertTrue(log.stream().anyMatch(c -> c[0].equals("copyToHost")), "the default copies rows to the host");
    }
    assertThrows(IllegalArgumentException.class, () -> cpu.argmax(cpu.allocate(2, 3), 2, 3, new int[1]));
  }

  @Test
  void cpuSampleAndTheSpiDefaultAreSampleOfWithTheCallersUniforms() {
    Random r = new Random(5);
    for (int dim : new int[] {1, 7, 1000}) {
      int rows = 12;
      float[] v = awkwardRows(rows, dim, dim + 1);
      Tensor x = cpu.allocate(rows, dim);
      cpu.copyFromHost(v, x, 0);
      for (float invT : new float[] {1f, 1 / 0.7f, 4f}) {
        double[] u = new double[rows];
        for (int t = 0; t < rows; t++) {
          u[t] = t == 0 ? 0 : t == 1 ? Math.nextDown(1.0) : r.nextDouble();
        }
        int[] got = new int[rows];
        cpu.sample(x, rows, dim, invT, u, got);
        int[] viaDefault = new int[rows];
        logging(cpu, new ArrayList<>(), "sample").sample(x, rows, dim, invT, u, viaDefault);
        for (int t = 0; t < rows; t++) {
          int want = Backend.sampleOf(v, t * dim, dim, invT, u[t]);
          assertEquals(want, got[t], "dim " + dim + " row " + t);
          assertEquals(want, viaDefault[t], "default, dim " + dim + " row " + t);
        }
      }
    }
    // the definition on a small row: probabilities 0.5, 0.3, 0.2 split [0, 1) into three intervals
    float[] logits = {(float) Math.log(0.5), (float) Math.log(0.3), (float) Math.log(0.2)};
    assertEquals(0, Backend.sampleOf(logits, 0, 3, 1f, 0.49));
    assertEquals(1, Backend.sampleOf(logits, 0, 3, 1f, 0.51));
    assertEquals(1, Backend.sampleOf(logits, 0, 3, 1f, 0.79));
    assertEquals(2, Backend.sampleOf(logits, 0, 3, 1f, 0.81));
    assertEquals(2, Backend.sampleOf(new float[] {0f, Float.NaN, 1f}, 0, 3, 1f, 0.1),
        "a NaN makes it the argmax of the rest");
    assertEquals(0, Backend.sampleOf(new float[] {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY}, 0, 2, 1f, 0.5));
  }

  @Test
  void spiStepDefaultsDoNothing() throws Exception {
    List<Object[]> log = new ArrayList<>();
    Backend b = logging(cpu, log, "beginStep", "endStep");
    Tensor x = b.allocate(4);
    b.copyFromHost(new float[] {1, 2, 3, 4}, x, 0);
    b.beginStep("a key");
    b.addForward(x, x, x, 1, 4);
    b.endStep(true);
    b.beginStep("a key");
    b.endStep(false);
    float[] out = new float[4];
    b.copyToHost(x, 0, out, 4);
    assertArrayEquals(new float[] {2, 4, 6, 8}, out);
  }

  @Test
  void decodePassesAreStepsKeyedByModelCacheAndRowsAndForwardArgmaxPicksTheLogitsMaximum() throws Exception {
    try (Checkpoint ckpt = Checkpoint.open(fixture("gqa-llama3-untied-f32"))) {
      int vocab = ckpt.config().vocabSize();
      List<Object[]> log = new ArrayList<>();
      Backend b = logging(cpu, log);
      Llama model = new Llama(ckpt, b, 20, 2, 64);
      KvCache cache = model.newCache(2);
      // prefill of 18 rows: more than STEP_MAX_ROWS, op by op
      int[] tokens = new int[20];
      int[] slots = new int[20];
      int[] positions = new int[20];
      for (int i = 0; i < 18; i++) {
        tokens[i] = 3 + 7 * i % (vocab - 3);
        slots[i] = i < 9 ? 0 : 1;
        positions[i] = i % 9;
      }
      float[] logits = new float[2 * vocab];
      model.forward(tokens, slots, positions, 18, cache, new int[] {8, 17}, 2, logits);
      assertFalse(log.stream().anyMatch(c -> c[0].equals("beginStep")), "a prefill of 18 rows is no step");

      // decode: two rows, then one; forwardArgmax against the logits of the same pass
      List<Object> keys = new ArrayList<>();
      for (int step = 0; step < 4; step++) {
        int rows = step < 2 ? 2 : 1;
        for (int t = 0; t < rows; t++) {
          tokens[t] = 5 + step + t;
          slots[t] = t;
          positions[t] = 9 + step;
        }
        log.clear();
        int[] picked = new int[2];
        model.forwardArgmax(tokens, slots, positions, rows, cache, new int[] {0, 1}, rows, picked);
        List<String> calls = log.stream().map(c -> (String) c[0]).toList();
        assertEquals("beginStep", calls.get(0));
        assertEquals("endStep", calls.get(calls.size() - 2));
        assertEquals(Boolean.TRUE, log.get(log.size() - 2)[1], "completed");
        assertEquals("argmax", calls.get(calls.size() - 1), "argmax after the step");
        assertFalse(calls.contains("copyToHost"), "no logits to the host");
        keys.add(log.get(0)[1]);
        // the same pass again (positions rewritten) gives the logits; argmax is their first maximum
        model.forward(tokens, slots, positions, rows, cache, new int[] {0, 1}, rows, logits);
        for (int t = 0; t < rows; t++) {
          assertEquals(firstIndexOfMax(logits, t * vocab, vocab), picked[t], "step " + step + " row " + t);
        }
      }
      assertEquals(keys.get(0), keys.get(1), "same model, cache and rows: one key");
      assertEquals(keys.get(2), keys.get(3));
      assertNotEquals(keys.get(1), keys.get(2), "rows differ");
      log.clear();
      KvCache other = model.newCache(2);
      model.forward(tokens, slots, positions, 1, other, new int[] {0}, 1, logits);
      assertNotEquals(keys.get(3), log.get(0)[1], "a new cache (new buffers) is a new key");
      log.clear();
      model.forwardLogprobs(tokens, slots, positions, 1, cache, new int[] {0}, 1, new int[] {4}, new float[1]);
      assertNotEquals(keys.get(3), log.get(0)[1], "the log-probability tail is another step");

      // an op that throws inside the step: endStep(false), and the error reaches the caller
      log.clear();
      tokens[0] = vocab + 5;
      assertThrows(IllegalArgumentException.class,
          () -> model.forwardArgmax(tokens, slots, positions, 1, cache, new int[] {0}, 1, new int[1]));
      assertEquals("endStep", log.get(log.size() - 1)[0]);
      assertEquals(Boolean.FALSE, log.get(log.size() - 1)[1]);
    }
  }

  @Test
  void greedyGenerationOnTheBackendMatchesTheHostSampler() throws Exception {
    for (String name : new String[] {"gqa-llama3-untied-f32", "gqa-llama3-tied-bf16"}) {
      try (Checkpoint ckpt = Checkpoint.open(fixture(name))) {
        List<int[]> prompts = List.of(new int[] {1, 17, 42, 99, 5}, new int[] {1, 200}, new int[] {1, 7, 7, 7});
        List<Object[]> log = new ArrayList<>();
        Llama model = new Llama(ckpt, logging(cpu, log), 5, 3, 64);
        Generator device = new Generator(model, model.newCache(3));
        List<int[]> onDevice = device.generate(prompts, Sampler.Params.greedy(), 30, (p, t, eos) -> {}).tokens();
        assertTrue(log.stream().anyMatch(c -> c[0].equals("argmax")), "greedy picks on the backend");
        assertFalse(log.stream().anyMatch(c -> c[0].equals("copyToHost")), "no logits to the host");
        Generator host = new Generator(model, model.newCache(3));
        host.pickOnBackend(false);
        log.clear();
        List<int[]> onHost = host.generate(prompts, Sampler.Params.greedy(), 30, (p, t, eos) -> {}).tokens();
        assertFalse(log.stream().anyMatch(c -> c[0].equals("argmax")), "the host sampler's path");
        int total = 0;
        for (int p = 0; p < prompts.size(); p++) {
          assertArrayEquals(onHost.get(p), onDevice.get(p), name + " prompt " + p);
          total += onDevice.get(p).length;
        }
        assertTrue(total > 10, name + ": " + total + " tokens generated");
        // temperature sampling: on the backend with the samplers' seeded uniforms, as on the host
        Sampler.Params warm = new Sampler.Params(0.8, 0, 1, 1, 42);
        log.clear();
        List<int[]> sampledOnDevice = device.generate(prompts, warm, 30, (p, t, eos) -> {}).tokens();
        assertTrue(log.stream().anyMatch(c -> c[0].equals("sample")), "sampling on the backend");
        assertFalse(log.stream().anyMatch(c -> c[0].equals("copyToHost")), "no logits to the host");
        List<int[]> sampledOnHost = host.generate(prompts, warm, 30, (p, t, eos) -> {}).tokens();
        for (int p = 0; p < prompts.size(); p++) {
          assertArrayEquals(sampledOnHost.get(p), sampledOnDevice.get(p), name + " sampled, prompt " + p);
        }
        assertFalse(java.util.Arrays.equals(sampledOnDevice.get(0), onDevice.get(0)), "sampling is not greedy here");
        // top-k stays on the host
        log.clear();
        device.generate(prompts, new Sampler.Params(0.8, 5, 1, 1, 42), 3, (p, t, eos) -> {});
        assertFalse(log.stream().anyMatch(c -> c[0].equals("sample")), "top-k samples on the host");
        // with a repetition penalty greedy needs the host's view of the history
        log.clear();
        device.generate(prompts, new Sampler.Params(0, 0, 1, 1.3, 0), 3, (p, t, eos) -> {});
        assertFalse(log.stream().anyMatch(c -> c[0].equals("argmax")), "a penalty samples on the host");
      }
    }
  }
}
