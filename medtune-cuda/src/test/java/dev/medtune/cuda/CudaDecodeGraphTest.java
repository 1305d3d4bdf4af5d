package dev.medtune.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Generator;
import dev.medtune.model.KvCache;
import dev.medtune.model.Llama;
import dev.medtune.model.Sampler;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.TensorInfo;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Decode steps as CUDA graphs ({@link StepGraphs}) and greedy picking on the GPU
 * ({@code argmax_rows}): graphs must change nothing, bit for bit, and a step that differs from
 * its record (or cannot be in a graph, or throws) must run op by op with the direct results.
 */
class CudaDecodeGraphTest {

  private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final Arena arena = Arena.ofShared();
  private static CudaBackend cuda;
  private static Backend cpu;

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
    cuda.cudaGraphs(true);
  }

  @AfterAll
  static void close() {
    if (cuda != null) {
      cuda.close();
      cpu.close();
    }
  }

  private static Path fixture(String name) throws URISyntaxException {
    return Path.of(CudaDecodeGraphTest.class.getResource("/fixtures/" + name + "/config.json").toURI()).getParent();
  }

  // ---------------------------------------------------------------- argmax

  /** Rows with distinct values, many ties, -inf, all -inf, NaN, and the maximum last among NaN. */
  private static float[] awkwardRows(int rows, int dim, long seed) {
    Random r = new Random(seed);
    float[] v = new float[rows * dim];
    for (int t = 0; t < rows; t++) {
      for (int i = 0; i < dim; i++) {
        v[t * dim + i] = switch (t % 7) {
          case 0 -> (float) r.nextGaussian() * 5;
          case 1 -> r.nextInt(4);
          case 2 -> r.nextInt(3) == 0 ? Float.NEGATIVE_INFINITY : (float) r.nextGaussian();
          case 3 -> Float.NEGATIVE_INFINITY;
          case 4 -> r.nextInt(5) == 0 ? Float.NaN : (float) r.nextGaussian();
          case 5 -> i == dim - 1 ? 7f : r.nextInt(2) == 0 ? Float.NaN : -1f;
          default -> Float.NaN;
        };
      }
    }
    return v;
  }

  @Test
  void argmaxMatchesTheCpuOnAwkwardRows() {
    for (int dim : new int[] {1, 31, 1000, 4097, 128256}) {
      int rows = 14;
      float[] v = awkwardRows(rows, dim, dim);
      Tensor g = cuda.allocate(rows, dim);
      Tensor c = cpu.allocate(rows, dim);
      cuda.copyFromHost(v, g, 0);
      cpu.copyFromHost(v, c, 0);
      int[] got = new int[rows];
      Arrays.fill(got, -7);
      cuda.argmax(g, rows, dim, got);
      int[] want = new int[rows];
      cpu.argmax(c, rows, dim, want);
      int wrong = 0;
      for (int t = 0; t < rows; t++) {
        wrong += got[t] == want[t] ? 0 : 1;
      }
      CheckTable.row("argmax", rows + " rows of " + dim + " (ties, -inf, NaN) vs CPU", wrong, "0 rows differ", wrong == 0);
      assertArrayEquals(want, got, "dim " + dim);
    }
  }

  /**
   * Whether tokens {@code a} and {@code b} of a draw with uniform {@code u} are both right within
   * rounding: the cumulative sum (double, index order) at the boundary between them is within
   * 1e-12 of {@code r = u * total} and the tokens between carry no mass above that, or the draw
   * ran off the end ({@code r} within 1e-12 of the total) and one of them is the argmax fallback.
   */
  private static boolean nearBoundary(float[] v, int offset, int dim, float invT, double u, int a, int b) {
    float max = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < dim; i++) {
      max = Math.max(max, v[offset + i] * invT);
    }
    double[] cumulative = new double[dim];
    double run = 0;
    for (int i = 0; i < dim; i++) {
      run += Math.exp(v[offset + i] * invT - max);
      cumulative[i] = run;
    }
    double r = u * run;
    double tol = 1e-12 * run;
    int lo = Math.min(a, b);
    int hi = Math.max(a, b);
    if (Math.abs(run - r) <= tol) {
      return true;
    }
    return Math.abs(cumulative[lo] - r) <= tol && cumulative[hi - 1] - cumulative[lo] <= tol;
  }

  @Test
  void sampleMatchesTheCpuExceptWithinRoundingOfABoundary() {
    Random r = new Random(21);
    int draws = 0;
    int nearTies = 0;
    for (int dim : new int[] {1, 31, 1000, 128256}) {
      int rows = 14;
      float[] v = awkwardRows(rows, dim, dim + 3);
      for (int i = 0; i < rows * dim; i++) {
        if (r.nextInt(4) == 0 && !Float.isNaN(v[i]) && !Float.isInfinite(v[i])) {
          v[i] = (float) (r.nextGaussian() * 3); // spread the rows of ties a little
        }
      }
      Tensor g = cuda.allocate(rows, dim);
      cuda.copyFromHost(v, g, 0);
      int wrong = 0;
      for (float invT : new float[] {1f, 1 / 0.7f, 0.25f}) {
        for (int rep = 0; rep < 12; rep++) {
          double[] u = new double[rows];
          for (int t = 0; t < rows; t++) {
            u[t] = rep == 0 ? 0 : rep == 1 ? Math.nextDown(1.0) : r.nextDouble();
          }
          int[] got = new int[rows];
          Arrays.fill(got, -7);
          cuda.sample(g, rows, dim, invT, u, got);
          for (int t = 0; t < rows; t++) {
            draws++;
            int want = Backend.sampleOf(v, t * dim, dim, invT, u[t]);
            if (got[t] != want) {
              if (got[t] >= 0 && got[t] < dim && nearBoundary(v, t * dim, dim, invT, u[t], got[t], want)) {
                nearTies++;
              } else {
                wrong++;
              }
            }
          }
        }
      }
      CheckTable.row("sample", rows + " rows of " + dim + " x 3 temperatures x 12 uniforms vs CPU", wrong,
          "0 (" + nearTies + " ties within 1e-12 so far)", wrong == 0);
      assertEquals(0, wrong, "dim " + dim + ": draws that differ from the CPU's beyond rounding");
    }
    assertTrue(draws > 2000);
  }

  @Test
  void generationPicksOnTheGpuAsTheHostSamplerDoes() throws Exception {
    try (Checkpoint ckpt = Checkpoint.open(fixture("gqa-llama3-tied-bf16"))) {
      Llama model = new Llama(ckpt, cuda, 8, 2, 128);
      List<int[]> prompts = List.of(new int[] {1, 17, 42, 99, 5}, new int[] {1, 33, 8});
      for (Sampler.Params params : new Sampler.Params[] {Sampler.Params.greedy(), new Sampler.Params(0.8, 0, 1, 1, 99),
          new Sampler.Params(1.5, 0, 1, 1, 5)}) {
        Generator gpu = new Generator(model, model.newCache(2));
        Generator host = new Generator(model, model.newCache(2));
        host.pickOnBackend(false);
        List<int[]> a = gpu.generate(prompts, params, 30, (p, t, eos) -> {}).tokens();
        List<int[]> b = host.generate(prompts, params, 30, (p, t, eos) -> {}).tokens();
        boolean same = true;
        for (int p = 0; p < 2; p++) {
          same &= Arrays.equals(a.get(p), b.get(p));
        }
        // deterministic (fixed seeds, fixed kernels): a difference is a bug, or a draw within ~1e-16 of
        // a boundary of the cumulative sum, which sampleMatchesTheCpu... would show as a tie
        CheckTable.row("generate on the GPU", "temperature " + params.temperature() + ": tokens as the host Sampler's",
            same ? 0 : 1, "identical", same);
        for (int p = 0; p < 2; p++) {
          assertArrayEquals(b.get(p), a.get(p), "temperature " + params.temperature() + ", prompt " + p);
        }
      }
    }
  }

  // ---------------------------------------------------------------- the step machinery on small ops

  private static float[] host(Tensor t, int n) {
    float[] out = new float[n];
    cuda.copyToHost(t, 0, out, n);
    return out;
  }

  @Test
  void aStepIsRecordedCapturedAndReplayedWithNewIntsEachTime() {
    Tensor table = cuda.allocate(10, 4);
    float[] values = new float[40];
    for (int i = 0; i < 40; i++) {
      values[i] = i;
    }
    cuda.copyFromHost(values, table, 0);
    Tensor out = cuda.allocate(2, 4);
    Tensor acc = cuda.allocate(2, 4);
    StepGraphs.Stats before = cuda.graphStats();
    float[] sum = new float[8];
    Object key = "embedding and add " + System.nanoTime();
    for (int step = 0; step < 6; step++) {
      int[] tokens = {step, 9 - step}; // a new array each time, as a caller may pass
      cuda.beginStep(key);
      cuda.embeddingForward(out, table, tokens, 2, 4);
      cuda.addForward(acc, acc, out, 2, 4);
      cuda.endStep(true);
      float[] got = host(out, 8);
      for (int i = 0; i < 8; i++) {
        sum[i] += values[tokens[i / 4] * 4 + i % 4];
        assertEquals(values[tokens[i / 4] * 4 + i % 4], got[i], "step " + step + " element " + i);
      }
      assertArrayEquals(sum, host(acc, 8), "step " + step);
    }
    StepGraphs.Stats after = cuda.graphStats();
    assertEquals(1, after.recorded() - before.recorded());
    assertEquals(1, after.captured() - before.captured());
    assertEquals(4, after.replayed() - before.replayed());
    assertEquals(0, after.fallbacks() - before.fallbacks(), () -> "fell back: " + after.lastFallback());

    // the same key with another op: detected, run directly, recorded again next time
    cuda.beginStep(key);
    cuda.addForward(acc, out, out, 2, 4);
    cuda.endStep(true);
    float[] twice = host(out, 8);
    for (int i = 0; i < 8; i++) {
      twice[i] *= 2;
    }
    assertArrayEquals(twice, host(acc, 8));
    StepGraphs.Stats mismatched = cuda.graphStats();
    assertEquals(1, mismatched.fallbacks() - after.fallbacks());
    assertTrue(mismatched.lastFallback().contains("add_forward"), mismatched.lastFallback());
    cuda.beginStep(key);
    cuda.embeddingForward(out, table, new int[] {3, 3}, 2, 4);
    cuda.endStep(true);
    assertEquals(values[12], host(out, 8)[4]);
    assertEquals(mismatched.replayed(), cuda.graphStats().replayed(), "after a fallback the key is recorded again");
    assertEquals(mismatched.recorded() + 1, cuda.graphStats().recorded());
  }

  @Test
  void aStepCutShortRunsItsOpsSoFarAndAStepThatCopiesFallsBack() {
    Tensor one = cuda.allocate(4);
    cuda.copyFromHost(new float[] {1, 1, 1, 1}, one, 0);
    Tensor acc = cuda.allocate(4);
    Tensor table = cuda.allocate(3, 4);
    Tensor out = cuda.allocate(4);
    Object key = "cut short " + System.nanoTime();
    for (int step = 0; step < 4; step++) {
      int[] tokens = {step == 3 ? 5 : step % 3}; // 5 is outside the table: the embedding throws
      cuda.beginStep(key);
      boolean completed = false;
      try {
        cuda.addForward(acc, acc, one, 1, 4);
        cuda.embeddingForward(out, table, tokens, 1, 4);
        completed = true;
      } catch (IllegalArgumentException e) {
        assertEquals(3, step, e.getMessage());
      } finally {
        cuda.endStep(completed);
      }
      // the add ran in every step, the one cut short (a replay) included
      assertEquals(step + 1, host(acc, 4)[0], "step " + step);
    }
    StepGraphs.Stats s = cuda.graphStats();
    // the key still replays after a step was cut short
    cuda.beginStep(key);
    cuda.addForward(acc, acc, one, 1, 4);
    cuda.embeddingForward(out, table, new int[] {1}, 1, 4);
    cuda.endStep(true);
    assertEquals(5, host(acc, 4)[0]);
    assertEquals(s.replayed() + 1, cuda.graphStats().replayed());

    // a copy to the host inside a replayed step: the step so far runs, then the copy sees it
    cuda.beginStep(key);
    cuda.addForward(acc, acc, one, 1, 4);
    float[] inside = new float[4];
    cuda.copyToHost(acc, 0, inside, 4);
    cuda.embeddingForward(out, table, new int[] {2}, 1, 4);
    cuda.endStep(true);
    assertEquals(6, inside[0]);
    assertEquals(s.fallbacks() + 1, cuda.graphStats().fallbacks());
    assertTrue(cuda.graphStats().lastFallback().contains("copyToHost"), cuda.graphStats().lastFallback());
  }

  @Test
  void aScratchBufferThatMovesCostsOneFallbackThenTheStepIsCapturedAgain() {
    // a bf16 product inside the step reads the 16-bit operand buffer; a large product outside the
    // step makes that buffer grow (a new address): the next replay differs from its record.
    // cuBLASLt products only: gemv_rows.cu (the default at one row) needs no cast and no buffer.
    int gemvRows = cuda.gemvRows();
    cuda.gemvRows(0);
    try {
      scratchMoves();
    } finally {
      cuda.gemvRows(gemvRows);
    }
  }

  private void scratchMoves() {
    int k = 64, n = 48;
    MemorySegment seg = arena.allocate(2L * n * k, 16);
    Random r = new Random(3);
    for (int i = 0; i < n * k; i++) {
      seg.set(SHORT_LE, 2L * i, (short) (Float.floatToRawIntBits((float) r.nextGaussian()) >>> 16));
    }
    Tensor w = cuda.weight(new TensorInfo("w", DType.BF16, new long[] {n, k}, seg));
    Tensor table = cuda.allocate(8, k);
    float[] tv = new float[8 * k];
    for (int i = 0; i < tv.length; i++) {
      tv[i] = (float) r.nextGaussian();
    }
    cuda.copyFromHost(tv, table, 0);
    Tensor x = cuda.allocate(1, k);
    Tensor y = cuda.allocate(1, n);
    Object key = "moving scratch " + System.nanoTime();
    float[][] want = new float[8][];
    for (int t = 0; t < 8; t++) { // the direct results, token by token
      cuda.embeddingForward(x, table, new int[] {t}, 1, k);
      cuda.matmul(y, x, false, w, true, 1, n, k, 1f, 0f);
      want[t] = host(y, n);
    }
    int big = 4096;
    Tensor bigA = cuda.allocate(big, k * 16);
    MemorySegment bigSeg = arena.allocate(2L * 8 * k * 16, 16);
    Tensor bigW = cuda.weight(new TensorInfo("big", DType.BF16, new long[] {8, k * 16}, bigSeg));
    Tensor bigC = cuda.allocate(big, 8);
    StepGraphs.Stats before = cuda.graphStats();
    for (int round = 0; round < 14; round++) {
      int t = round % 8;
      if (round == 6) {
        // 4096 x 1024 16-bit values: 8 MB, more than the buffer holds so far
        cuda.matmul(bigC, bigA, false, bigW, true, big, 8, k * 16, 1f, 0f);
      }
      cuda.beginStep(key);
      cuda.embeddingForward(x, table, new int[] {t}, 1, k);
      cuda.matmul(y, x, false, w, true, 1, n, k, 1f, 0f);
      cuda.endStep(true);
      assertArrayEquals(want[t], host(y, n), "round " + round);
    }
    StepGraphs.Stats after = cuda.graphStats();
    // rounds 0-2: record, capture, replay ... 6: fallback; 7: record, 8: capture, 9-13: replay
    assertEquals(1, after.fallbacks() - before.fallbacks(), () -> "fallbacks: " + after.lastFallback());
    assertEquals(2, after.captured() - before.captured());
    assertEquals(4 + 5, after.replayed() - before.replayed());
  }

  // ---------------------------------------------------------------- whole decode, graphs on and off

  /** The logits of every pass and the greedy tokens of a decode script (see the test). */
  private record Decoded(List<float[]> logits, List<Integer> tokens, List<int[]> generated) {}

  private static int[] pass(Llama model, KvCache cache, int[] tokens, int[] slots, int[] positions, int rows,
      List<float[]> logitsOut) {
    int vocab = model.config().vocabSize();
    int[] rowsWanted = new int[rows];
    int[] rowIds = new int[rows];
    for (int i = 0; i < rows; i++) {
      rowIds[i] = i;
    }
    // the last row of each slot's tokens gives its next token
    int n = 0;
    for (int t = 0; t < rows; t++) {
      if (t == rows - 1 || slots[t + 1] != slots[t]) {
        rowsWanted[n++] = t;
      }
    }
    float[] logits = new float[n * vocab];
    // fresh int arrays each pass (as a caller may), the values the step must pick up
    model.forward(tokens.clone(), slots.clone(), positions.clone(), rows, cache, Arrays.copyOf(rowsWanted, n), n, logits);
    logitsOut.add(logits);
    int[] next = new int[n];
    for (int i = 0; i < n; i++) {
      next[i] = Backend.argmaxOf(logits, i * vocab, vocab);
    }
    return next;
  }

  /**
   * Prompt A in slot 0 then 40 greedy steps; prompt B in slot 1 then 10 steps; both slots
   * together for 5 steps (two rows); a new cache with prompt A and 10 steps; then the Generator
   * (greedy on the GPU) on both prompts.
   */
  private static Decoded decode(Checkpoint ckpt, boolean graphs, boolean gemv) {
    cuda.cudaGraphs(graphs);
    cuda.gemv(gemv);
    try {
      int maxLength = Math.min(128, ckpt.config().maxPositionEmbeddings());
      Llama model = new Llama(ckpt, cuda, 16, 2, maxLength);
      List<float[]> logits = new ArrayList<>();
      List<Integer> tokens = new ArrayList<>();
      int[] a = {1, 17, 42, 99, 5};
      int[] b = {1, 33, 8};
      for (int round = 0; round < 2; round++) {
        KvCache cache = model.newCache(2);
        int[] pos = new int[2];
        int[] last = new int[2];
        last[0] = pass(model, cache, a, new int[5], new int[] {0, 1, 2, 3, 4}, 5, logits)[0];
        pos[0] = 5;
        int aSteps = round == 0 ? 40 : 10;
        for (int s = 0; s < aSteps; s++, pos[0]++) {
          tokens.add(last[0]);
          last[0] = pass(model, cache, new int[] {last[0]}, new int[] {0}, new int[] {pos[0]}, 1, logits)[0];
        }
        if (round == 1) {
          break;
        }
        last[1] = pass(model, cache, b, new int[] {1, 1, 1}, new int[] {0, 1, 2}, 3, logits)[0];
        pos[1] = 3;
        for (int s = 0; s < 10; s++, pos[1]++) {
          tokens.add(last[1]);
          last[1] = pass(model, cache, new int[] {last[1]}, new int[] {1}, new int[] {pos[1]}, 1, logits)[0];
        }
        for (int s = 0; s < 5; s++, pos[0]++, pos[1]++) {
          tokens.add(last[0]);
          tokens.add(last[1]);
          last = pass(model, cache, last, new int[] {0, 1}, pos, 2, logits);
        }
      }
      Generator gen = new Generator(model, model.newCache(2));
      List<int[]> generated = new ArrayList<>(gen.generate(List.of(a, b), Sampler.Params.greedy(), 20,
          (p, t, eos) -> {}).tokens());
      // temperature sampling on the GPU (sample_rows) after the graph, seeded
      generated.addAll(gen.generate(List.of(a, b), new Sampler.Params(0.9, 0, 1, 1, 7), 20, (p, t, eos) -> {}).tokens());
      return new Decoded(logits, tokens, generated);
    } finally {
      cuda.cudaGraphs(true);
      cuda.gemv(false);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"gqa-llama3-untied-f32", "gqa-llama3-tied-bf16", "mqa-headdim-untied-f16"})
  void greedyDecodeWithGraphsIsBitForBitTheDirectDecode(String name) throws Exception {
    for (boolean gemv : new boolean[] {false, true}) {
      graphsOnAndOff(name + (gemv ? " (gemv_16)" : ""), fixture(name), gemv);
    }
  }

  private static void graphsOnAndOff(String name, Path dir, boolean gemv) throws Exception {
    try (Checkpoint ckpt = Checkpoint.open(dir)) {
      Decoded off = decode(ckpt, false, gemv);
      Decoded again = decode(ckpt, false, gemv);
      // the precondition: the direct decode is deterministic, so any difference below is the graphs'
      assertEquals(off.tokens(), again.tokens(), name + ": two direct runs differ");
      for (int i = 0; i < off.logits().size(); i++) {
        assertArrayEquals(off.logits().get(i), again.logits().get(i), name + ": two direct runs differ at pass " + i);
      }
      StepGraphs.Stats before = cuda.graphStats();
      Decoded on = decode(ckpt, true, gemv);
      StepGraphs.Stats after = cuda.graphStats();
      int differing = 0;
      double maxDiff = 0;
      for (int i = 0; i < off.logits().size(); i++) {
        float[] x = off.logits().get(i);
        float[] y = on.logits().get(i);
        if (!Arrays.equals(x, y)) {
          differing++;
        }
        for (int j = 0; j < x.length; j++) {
          maxDiff = Math.max(maxDiff, Float.isNaN(y[j]) ? Double.POSITIVE_INFINITY : Math.abs(x[j] - y[j]));
        }
      }
      long replayed = after.replayed() - before.replayed();
      long fallbacks = after.fallbacks() - before.fallbacks();
      boolean pass = differing == 0 && off.tokens().equals(on.tokens()) && replayed >= 55 && fallbacks == 0;
      CheckTable.row("cuda graphs", name + ": " + off.logits().size() + " passes, " + replayed + " replayed, "
          + fallbacks + " fallbacks", maxDiff, "0 (bit for bit)", pass);
      assertEquals(0, fallbacks, () -> name + ": " + after.lastFallback());
      assertTrue(replayed >= 55, name + ": only " + replayed + " steps replayed");
      assertEquals(off.tokens(), on.tokens(), name + ": greedy tokens");
      assertEquals(0, differing, name + ": passes whose logits differ; max |difference| " + maxDiff);
      for (int p = 0; p < off.generated().size(); p++) {
        assertArrayEquals(off.generated().get(p), on.generated().get(p), name + ": Generator, run and prompt " + p);
      }
    }
  }
}
