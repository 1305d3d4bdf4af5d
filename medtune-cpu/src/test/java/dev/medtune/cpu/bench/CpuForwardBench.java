package dev.medtune.cpu.bench;

import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Generator;
import dev.medtune.model.Llama;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.Sampler;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.safetensors.TensorInfo;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.ZonedDateTime;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.DoubleAdder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Decode and prefill speed of the CPU backend on a real checkpoint (the {@code llama-3.2-1b}
 * shape with bf16 weights), against the machine's own limits measured in the same run: memory
 * bandwidth (a large array copy on all cores, bytes read + written per second) bounds decode,
 * which reads every weight once per token; the float32 FMA rate (a Vector API FMA loop on all
 * cores) bounds prefill. Run through {@code bench/cpu-forward.sh}; appends to bench/RESULTS.md.
 *
 * <p>Arguments: MODEL_DIR RESULTS_MD COMMIT [PROMPT_TOKENS [DECODE_TOKENS]].
 */
public final class CpuForwardBench {

  private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
  private static final com.sun.management.OperatingSystemMXBean OS =
      (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
  private static final java.lang.management.ThreadMXBean THREADS = java.lang.management.ManagementFactory.getThreadMXBean();

  /**
   * A rate measured two ways: per second of wall time, and per second of CPU time spread over
   * the threads ({@code work / (cpu seconds / threads)}), which is what the run would reach with
   * the cores to itself. The second makes a run on shared, busy cores readable.
   */
  record Rate(double wall, double cpu) {}

  public static void main(String[] args) throws Exception {
    Path modelDir = Path.of(args[0]);
    Path results = Path.of(args[1]);
    String commit = args[2];
    int promptTokens = args.length > 3 ? Integer.parseInt(args[3]) : 128;
    int decodeTokens = args.length > 4 ? Integer.parseInt(args[4]) : 8;
    int threads = Runtime.getRuntime().availableProcessors();

    Rate bandwidth = bandwidth(threads);
    System.out.printf("memory bandwidth (copy, read+written): %.2f GB/s wall, %.2f GB/s per CPU time%n",
        bandwidth.wall() / 1e9, bandwidth.cpu() / 1e9);
    Rate fma = fmaRate(threads);
    System.out.printf("float32 FMA rate: %.1f GFLOP/s wall, %.1f GFLOP/s per CPU time (%d threads, %d-lane vectors)%n",
        fma.wall() / 1e9, fma.cpu() / 1e9, threads, F.length());

    StringBuilder rows = new StringBuilder();
    LlamaConfig c = null;
    long weightBytes = 0;
    double flopsPerPrefillToken = 0;
    for (boolean resident : new boolean[] {false, true}) {
      String mode = resident ? "resident" : "mapped";
      double prefillWall = 0, prefillCpu = 0, decodeWall = 0, decodeCpu = 0;
      try (Checkpoint ckpt = Checkpoint.open(modelDir); Backend cpu = CpuBackendProvider.create(threads, resident)) {
        c = ckpt.config();
        weightBytes = weightBytesPerToken(ckpt);
        Llama model = new Llama(ckpt, cpu, promptTokens, 1, promptTokens + decodeTokens + 1);
        Generator generator = new Generator(model, model.newCache(1));
        Random random = new Random(1);
        int[] prompt = new int[promptTokens];
        for (int i = 0; i < promptTokens; i++) {
          prompt[i] = random.nextInt(c.vocabSize());
        }
        Sampler.Params greedy = Sampler.Params.greedy();
        generator.generate(List.of(java.util.Arrays.copyOf(prompt, 16)), greedy, 4, (p, t, e) -> {}); // JIT warm-up
        for (int rep = 0; rep < 2; rep++) { // best of two: the cores are shared
          long[] cpuAtFirstToken = {-1};
          long c0 = OS.getProcessCpuTime();
          Generator.Result r = generator.generate(List.of(prompt), greedy, decodeTokens, (p, t, e) -> {
            if (cpuAtFirstToken[0] < 0) {
              cpuAtFirstToken[0] = OS.getProcessCpuTime(); // prefill ends with the first token
            }
          });
          long c1 = OS.getProcessCpuTime();
          double pCpu = r.prefillTokens() / ((cpuAtFirstToken[0] - c0) / 1e9 / threads);
          double dCpu = r.decodeTokens() / ((c1 - cpuAtFirstToken[0]) / 1e9 / threads);
          prefillWall = Math.max(prefillWall, r.prefillTokensPerSecond());
          prefillCpu = Math.max(prefillCpu, pCpu);
          if (r.decodeTokens() >= 4) { // a random model may end early on an EOS id
            decodeWall = Math.max(decodeWall, r.decodeTokensPerSecond());
            decodeCpu = Math.max(decodeCpu, dCpu);
          }
          System.out.printf("%s weights, run %d: prefill %.2f tokens/s wall (%.2f per CPU time), decode %.3f tokens/s wall (%.3f per CPU time, %d tokens)%n",
              mode, rep + 1, r.prefillTokensPerSecond(), pCpu, r.decodeTokensPerSecond(), dCpu, r.decodeTokens());
        }
      }
      long layerMatmulParams = (long) c.numLayers() * ((long) c.hiddenSize() * c.numHeads() * c.headDim() * 2
          + (long) c.hiddenSize() * c.kvDim() * 2 + 3L * c.hiddenSize() * c.intermediateSize());
      double avgContext = (promptTokens + 1) / 2.0;
      double attention = 4.0 * avgContext * c.numHeads() * c.headDim() * c.numLayers();
      double lmHead = 2.0 * c.vocabSize() * c.hiddenSize() / promptTokens; // logits of the last token only
      flopsPerPrefillToken = 2.0 * layerMatmulParams + attention + lmHead;
      double decodeLimitWall = bandwidth.wall() / weightBytes;
      double decodeLimitCpu = bandwidth.cpu() / weightBytes;
      double prefillLimitWall = fma.wall() / flopsPerPrefillToken;
      double prefillLimitCpu = fma.cpu() / flopsPerPrefillToken;
      System.out.printf("%s: decode %.3f tokens/s wall of a %.2f limit -> %.0f%%; per CPU time %.3f of %.2f -> %.0f%%%n",
          mode, decodeWall, decodeLimitWall, 100 * decodeWall / decodeLimitWall, decodeCpu, decodeLimitCpu, 100 * decodeCpu / decodeLimitCpu);
      System.out.printf("%s: prefill %.2f tokens/s wall of a %.2f limit -> %.0f%%; per CPU time %.2f of %.2f -> %.0f%%%n",
          mode, prefillWall, prefillLimitWall, 100 * prefillWall / prefillLimitWall, prefillCpu, prefillLimitCpu, 100 * prefillCpu / prefillLimitCpu);
      rows.append(String.format(java.util.Locale.ROOT,
          "| decode, batch 1, %d new tokens, %s weights (tokens/s) | %.3f / %.2f | %.0f%% | %.3f / %.2f | %.0f%% | 70%% |%n",
          decodeTokens, mode, decodeWall, decodeLimitWall, 100 * decodeWall / decodeLimitWall,
          decodeCpu, decodeLimitCpu, 100 * decodeCpu / decodeLimitCpu));
      rows.append(String.format(java.util.Locale.ROOT,
          "| prefill, %d-token prompt, %s weights (tokens/s) | %.2f / %.2f | %.0f%% | %.2f / %.2f | %.0f%% | 50%% |%n",
          promptTokens, mode, prefillWall, prefillLimitWall, 100 * prefillWall / prefillLimitWall,
          prefillCpu, prefillLimitCpu, 100 * prefillCpu / prefillLimitCpu));
    }

    String date = ZonedDateTime.now(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'"));
    String entry = String.format(java.util.Locale.ROOT, """

        ## cpu-forward: %s, commit %s

        Machine: %s, %d cores shared with other jobs (load average %.1f at the end: wall-clock
        figures are noisy; the CPU-time columns divide the work by the CPU time the run actually
        got, spread over its %d threads), Java %s, float32 x%d vectors. Model: `%s` (`%s`
        weights, %.2f GB read per decoded token). Same-run baselines: memory bandwidth (array copy
        on all cores, bytes read + written) %.2f GB/s wall, %.2f GB/s per CPU time; float32 FMA
        rate (Vector API FMA loop on all cores) %.1f GFLOP/s wall, %.1f GFLOP/s per CPU time.

        | figure | wall clock: measured / limit | fraction | per CPU time: measured / limit | fraction | target |
        | --- | --- | --- | --- | --- | --- |
        %s

        Limits: decode = bandwidth / bytes of weights per token; prefill = FMA rate / %.2f GFLOP per
        token (2 x matmul parameters + attention; lm_head for the last token only). Weights
        "mapped" are read from the memory-mapped file (the default); "resident" are copied once,
        in bf16, into process memory (`MEDTUNE_CPU_WEIGHTS=resident`).
        """, date, commit, cpuModel(), threads, OS.getSystemLoadAverage(), threads, Runtime.version(),
        F.length(), modelDir.getFileName(), c.torchDtype(), weightBytes / 1e9,
        bandwidth.wall() / 1e9, bandwidth.cpu() / 1e9, fma.wall() / 1e9, fma.cpu() / 1e9,
        rows.toString().strip(), flopsPerPrefillToken / 1e9);
    Files.writeString(results, entry, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    System.out.println("appended to " + results);
  }

  /** Bytes of the weights a decoded token reads: every projection and the lm_head (the embedding when tied). */
  static long weightBytesPerToken(Checkpoint ckpt) {
    long bytes = 0;
    for (String name : ckpt.tensorNames()) {
      TensorInfo t = ckpt.tensor(name);
      boolean embedding = name.equals("model.embed_tokens.weight");
      if (t.shape().length == 2 && (!embedding || !ckpt.has("lm_head.weight"))) {
        bytes += t.data().byteSize();
      }
    }
    return bytes;
  }

  /** Best of five copies of 256 MiB per direction split over all threads: (read + written bytes) / s. */
  public static Rate bandwidth(int threads) throws InterruptedException {
    int n = 64 << 20; // floats: 256 MiB
    float[] src = new float[n];
    float[] dst = new float[n];
    java.util.Arrays.fill(src, 1f);
    java.util.Arrays.fill(dst, 2f);
    double best = 0, bestCpu = 0;
    for (int rep = 0; rep < 5; rep++) {
      Thread[] ts = new Thread[threads];
      int chunk = n / threads;
      java.util.concurrent.atomic.AtomicLong cpu = new java.util.concurrent.atomic.AtomicLong();
      long t0 = System.nanoTime();
      for (int i = 0; i < threads; i++) {
        int from = i * chunk;
        int len = i == threads - 1 ? n - from : chunk;
        ts[i] = Thread.ofPlatform().start(() -> {
          long c0 = THREADS.getCurrentThreadCpuTime();
          System.arraycopy(src, from, dst, from, len);
          cpu.addAndGet(THREADS.getCurrentThreadCpuTime() - c0);
        });
      }
      for (Thread t : ts) {
        t.join();
      }
      long dt = System.nanoTime() - t0;
      best = Math.max(best, 2.0 * 4 * n / (dt / 1e9));
      bestCpu = Math.max(bestCpu, 2.0 * 4 * n / (cpu.get() / 1e9 / threads));
    }
    return new Rate(best, bestCpu);
  }

  /** Best of five: every thread runs 12 independent FMA chains on registers. */
  public static Rate fmaRate(int threads) throws InterruptedException {
    long iterations = 20_000_000;
    double best = 0, bestCpu = 0;
    DoubleAdder sink = new DoubleAdder();
    for (int rep = 0; rep < 5; rep++) {
      Thread[] ts = new Thread[threads];
      java.util.concurrent.atomic.AtomicLong cpu = new java.util.concurrent.atomic.AtomicLong();
      long t0 = System.nanoTime();
      for (int i = 0; i < threads; i++) {
        ts[i] = Thread.ofPlatform().start(() -> {
          long c0 = THREADS.getCurrentThreadCpuTime();
          sink.add(fmaLoop(iterations));
          cpu.addAndGet(THREADS.getCurrentThreadCpuTime() - c0);
        });
      }
      for (Thread t : ts) {
        t.join();
      }
      long dt = System.nanoTime() - t0;
      double flops = threads * iterations * 12.0 * 2 * F.length();
      best = Math.max(best, flops / (dt / 1e9));
      bestCpu = Math.max(bestCpu, flops / (cpu.get() / 1e9 / threads));
    }
    if (sink.sum() == 42) {
      System.out.println(); // keeps the loop's result alive
    }
    return new Rate(best, bestCpu);
  }

  private static float fmaLoop(long iterations) {
    FloatVector a = FloatVector.broadcast(F, 0.999f);
    FloatVector b = FloatVector.broadcast(F, 1e-7f);
    FloatVector s0 = FloatVector.broadcast(F, 1f), s1 = s0.add(1), s2 = s0.add(2), s3 = s0.add(3);
    FloatVector s4 = s0.add(4), s5 = s0.add(5), s6 = s0.add(6), s7 = s0.add(7);
    FloatVector s8 = s0.add(8), s9 = s0.add(9), s10 = s0.add(10), s11 = s0.add(11);
    for (long i = 0; i < iterations; i++) {
      s0 = s0.fma(a, b); s1 = s1.fma(a, b); s2 = s2.fma(a, b); s3 = s3.fma(a, b);
      s4 = s4.fma(a, b); s5 = s5.fma(a, b); s6 = s6.fma(a, b); s7 = s7.fma(a, b);
      s8 = s8.fma(a, b); s9 = s9.fma(a, b); s10 = s10.fma(a, b); s11 = s11.fma(a, b);
    }
    return s0.add(s1).add(s2).add(s3).add(s4).add(s5).add(s6).add(s7).add(s8).add(s9).add(s10).add(s11)
        .reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
  }

  static String cpuModel() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
        if (line.startsWith("model name")) {
          return line.substring(line.indexOf(':') + 1).strip();
        }
      }
    } catch (IOException e) {
      // not Linux
    }
    return System.getProperty("os.arch");
  }
}
