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

  public static void main(String[] args) throws Exception {
    Path modelDir = Path.of(args[0]);
    Path results = Path.of(args[1]);
    String commit = args[2];
    int promptTokens = args.length > 3 ? Integer.parseInt(args[3]) : 128;
    int decodeTokens = args.length > 4 ? Integer.parseInt(args[4]) : 16;
    int threads = Runtime.getRuntime().availableProcessors();

    double bandwidth = bandwidth(threads);
    System.out.printf("memory bandwidth (copy, read+written): %.2f GB/s%n", bandwidth / 1e9);
    double fma = fmaRate(threads);
    System.out.printf("float32 FMA rate: %.1f GFLOP/s (%d threads, %d-lane vectors)%n", fma / 1e9, threads, F.length());

    double prefill = 0, decode = 0;
    long weightBytes;
    double flopsPerPrefillToken;
    LlamaConfig c;
    try (Checkpoint ckpt = Checkpoint.open(modelDir); Backend cpu = CpuBackendProvider.create(threads)) {
      c = ckpt.config();
      weightBytes = weightBytesPerToken(ckpt);
      Llama model = new Llama(ckpt, cpu, promptTokens, 1, promptTokens + decodeTokens + 1);
      Generator generator = new Generator(model, model.newCache(1));
      Random random = new Random(1);
      int[] prompt = new int[promptTokens];
      for (int i = 0; i < promptTokens; i++) {
        prompt[i] = random.nextInt(c.vocabSize());
      }
      // stop only on the token limit: a random model may emit an EOS id early
      Sampler.Params greedy = Sampler.Params.greedy();
      generator.generate(List.of(java.util.Arrays.copyOf(prompt, 16)), greedy, 4, (p, t, e) -> {}); // JIT warm-up
      for (int rep = 0; rep < 3; rep++) {
        Generator.Result r = generator.generate(List.of(prompt), greedy, decodeTokens, (p, t, e) -> {});
        prefill = Math.max(prefill, r.prefillTokensPerSecond());
        if (r.decodeTokens() >= 4) {
          decode = Math.max(decode, r.decodeTokensPerSecond());
        }
        System.out.printf("run %d: prefill %.1f tokens/s, decode %.2f tokens/s (%d tokens)%n", rep + 1,
            r.prefillTokensPerSecond(), r.decodeTokensPerSecond(), r.decodeTokens());
      }
      long layerMatmulParams = (long) c.numLayers() * ((long) c.hiddenSize() * c.numHeads() * c.headDim() * 2
          + (long) c.hiddenSize() * c.kvDim() * 2 + 3L * c.hiddenSize() * c.intermediateSize());
      double avgContext = (promptTokens + 1) / 2.0;
      double attention = 4.0 * avgContext * c.numHeads() * c.headDim() * c.numLayers();
      double lmHead = 2.0 * c.vocabSize() * c.hiddenSize() / promptTokens; // logits of the last token only
      flopsPerPrefillToken = 2.0 * layerMatmulParams + attention + lmHead;
    }
    double decodeLimit = bandwidth / weightBytes;
    double prefillLimit = fma / flopsPerPrefillToken;
    System.out.printf("decode: %.2f tokens/s; bandwidth limit %.2f tokens/s (%.2f GB per token) -> %.0f%%%n",
        decode, decodeLimit, weightBytes / 1e9, 100 * decode / decodeLimit);
    System.out.printf("prefill: %.1f tokens/s = %.1f GFLOP/s; FMA limit %.1f tokens/s -> %.0f%%%n",
        prefill, prefill * flopsPerPrefillToken / 1e9, prefillLimit, 100 * prefill / prefillLimit);

    String cpuName = cpuModel();
    String date = ZonedDateTime.now(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'"));
    String entry = String.format("""

        ## cpu-forward: %s, commit %s

        Machine: %s, %d cores (shared with other jobs: CPU figures are noisy, read the ratios), Java %s,
        float32 x%d vectors. Model: `%s` (%s), %.2f GB of weights read per decoded token.
        Same-run baselines: memory bandwidth %.2f GB/s (array copy on all cores, bytes read + written),
        float32 FMA rate %.1f GFLOP/s (Vector API FMA loop on all cores).

        | figure | measured | limit (same run) | fraction | target |
        | --- | --- | --- | --- | --- |
        | decode, batch 1, %d new tokens | %.2f tokens/s | %.2f tokens/s (bandwidth / bytes per token) | %.0f%% | 70%% |
        | prefill, %d-token prompt | %.1f tokens/s (%.1f GFLOP/s) | %.1f tokens/s (FMA rate / FLOP per token) | %.0f%% | 50%% |
        """, date, commit, cpuName, Runtime.getRuntime().availableProcessors(), Runtime.version(), F.length(),
        modelDir.getFileName(), c.torchDtype(), weightBytes / 1e9, bandwidth / 1e9, fma / 1e9,
        decodeTokens, decode, decodeLimit, 100 * decode / decodeLimit,
        promptTokens, prefill, prefill * flopsPerPrefillToken / 1e9, prefillLimit, 100 * prefill / prefillLimit);
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
  public static double bandwidth(int threads) throws InterruptedException {
    int n = 64 << 20; // floats: 256 MiB
    float[] src = new float[n];
    float[] dst = new float[n];
    java.util.Arrays.fill(src, 1f);
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
      Thread[] ts = new Thread[threads];
      int chunk = n / threads;
      long t0 = System.nanoTime();
      for (int i = 0; i < threads; i++) {
        int from = i * chunk;
        int len = i == threads - 1 ? n - from : chunk;
        ts[i] = Thread.ofPlatform().start(() -> System.arraycopy(src, from, dst, from, len));
      }
      for (Thread t : ts) {
        t.join();
      }
      long dt = System.nanoTime() - t0;
      best = Math.max(best, 2.0 * 4 * n / (dt / 1e9));
    }
    return best;
  }

  /** Best of five: every thread runs 12 independent FMA chains on registers. */
  public static double fmaRate(int threads) throws InterruptedException {
    long iterations = 20_000_000;
    double best = 0;
    DoubleAdder sink = new DoubleAdder();
    for (int rep = 0; rep < 5; rep++) {
      Thread[] ts = new Thread[threads];
      long t0 = System.nanoTime();
      for (int i = 0; i < threads; i++) {
        ts[i] = Thread.ofPlatform().start(() -> sink.add(fmaLoop(iterations)));
      }
      for (Thread t : ts) {
        t.join();
      }
      long dt = System.nanoTime() - t0;
      best = Math.max(best, threads * iterations * 12.0 * 2 * F.length() / (dt / 1e9));
    }
    if (sink.sum() == 42) {
      System.out.println(); // keeps the loop's result alive
    }
    return best;
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
