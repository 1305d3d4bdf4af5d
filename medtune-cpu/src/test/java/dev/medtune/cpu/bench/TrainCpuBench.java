package dev.medtune.cpu.bench;

import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.LoraLlama;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.LoraConfig;
import dev.medtune.model.lora.LoraTarget;
import dev.medtune.model.train.AdamW;
import dev.medtune.model.train.MicroBatch;
import dev.medtune.model.train.SftTrainer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * LoRA training speed on the CPU (the recipe's adapter: r 16 on the seven projections, AdamW),
 * for models given on the command line, against the float32 FMA rate measured in the same run
 * ({@link CpuForwardBench#fmaRate}). One warm-up step, then the best of the measured steps.
 *
 * <p>Useful FLOPs per token (recomputation by gradient checkpointing not counted, so it shows as
 * lost efficiency): {@code 4 P} for the frozen matrix products (forward {@code 2P}, input gradient
 * {@code 2P}; P = every projection and the lm_head), {@code 12 r (in + out)} per adapted projection
 * (forward, input gradient, A and B gradients), and attention {@code 12 L heads headDim ctx} with
 * {@code ctx} the mean number of keys a query sees (forward QK and PV 4, backward 8).
 *
 * <p>Arguments: RESULTS_MD COMMIT (MODEL_DIR ROWS SEQ_LEN STEPS)+
 */
public final class TrainCpuBench {

  public static void main(String[] args) throws Exception {
    Path results = Path.of(args[0]);
    String commit = args[1];
    int threads = Runtime.getRuntime().availableProcessors();
    // main's CpuForwardBench gives wall-clock and CPU-time rates; the wall-clock one is the FMA rate here
    double fma = CpuForwardBench.fmaRate(threads).wall();
    System.out.printf("float32 FMA rate: %.1f GFLOP/s (%d threads)%n", fma / 1e9, threads);
    StringBuilder rows = new StringBuilder();
    for (int a = 2; a + 3 < args.length; a += 4) {
      Path model = Path.of(args[a]);
      int batchRows = Integer.parseInt(args[a + 1]);
      int seqLen = Integer.parseInt(args[a + 2]);
      int steps = Integer.parseInt(args[a + 3]);
      for (boolean checkpointing : new boolean[] {true, false}) {
        double[] r = run(model, batchRows, seqLen, steps, threads, checkpointing);
        double tps = r[0];
        double flopPerToken = r[1];
        double gflops = tps * flopPerToken / 1e9;
        String line = String.format("| %s | %d x %d | %s | %.1f tokens/s | %.1f GFLOP/s | %.0f%% |%n",
            model.getFileName(), batchRows, seqLen, checkpointing ? "on" : "off", tps, gflops, 100 * gflops * 1e9 / fma);
        System.out.print(line);
        rows.append(line);
      }
    }
    String date = ZonedDateTime.now(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'"));
    String entry = String.format("""

        ## train-cpu: %s, commit %s

        Machine: %s, %d cores (shared with other jobs: CPU figures are noisy, read the ratios), Java %s.
        LoRA r 16, alpha 16, the seven projections, AdamW; random tokens, every target counted; best
        measured step after one warm-up step. Same-run baseline: float32 FMA rate %.1f GFLOP/s
        (CpuForwardBench's Vector API FMA loop on all cores). Useful FLOP per token = 4 x (projection
        and lm_head parameters) + 12 r (in + out) per adapted projection + 12 x layers x heads x
        head_dim x mean keys per query; gradient checkpointing's recomputation is not counted.
        Target: 40%% of the FMA rate on the 1B shape.

        | model | rows x tokens | checkpointing | training speed | useful GFLOP/s | of FMA rate |
        | --- | --- | --- | --- | --- | --- |
        %s""", date, commit, CpuForwardBench.cpuModel(), threads, Runtime.version(), fma / 1e9, rows);
    Files.writeString(results, entry, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    System.out.println("appended to " + results);
  }

  /** Returns {tokens per second, useful FLOP per token}. */
  static double[] run(Path modelDir, int rows, int seqLen, int steps, int threads, boolean checkpointing) {
    try (Checkpoint ck = Checkpoint.open(modelDir); Backend cpu = CpuBackendProvider.create(threads)) {
      LlamaConfig c = ck.config();
      LoraConfig lora = LoraConfig.recipe();
      LoraLlama model = new LoraLlama(ck, cpu, lora, rows * seqLen, seqLen, checkpointing);
      model.loadAdapter(LoraAdapter.initialize(c, lora, 1));
      Random random = new Random(7);
      int n = rows * seqLen;
      int[] ids = new int[n];
      int[] targets = new int[n];
      int[] pos = new int[n];
      int[] seq = new int[n];
      for (int i = 0; i < n; i++) {
        ids[i] = random.nextInt(c.vocabSize());
        pos[i] = i % seqLen;
      }
      for (int i = 0; i < n; i++) {
        targets[i] = pos[i] == seqLen - 1 ? -100 : ids[i + 1];
      }
      MicroBatch mb = new MicroBatch(rows, seqLen, ids, targets, pos, seq, n - rows, n);
      double best = 0;
      for (int s = 0; s <= steps; s++) {
        long t0 = System.nanoTime();
        SftTrainer.StepResult r = SftTrainer.optimizerStep(model, List.of(mb), mb.countedTokens(), s + 1, 1e-4, 1.0,
            AdamW.Hyperparameters.recipe(), i -> 0);
        double sec = (System.nanoTime() - t0) / 1e9;
        System.out.printf("%s, checkpointing %s, step %d%s: %.2f s, %.1f tokens/s, loss %.3f%n",
            modelDir.getFileName(), checkpointing ? "on" : "off", s, s == 0 ? " (warm-up)" : "", sec, n / sec, r.loss());
        if (s > 0) {
          best = Math.max(best, n / sec);
        }
      }
      long p = 0;
      int q = c.numHeads() * c.headDim();
      p += (long) c.numLayers() * ((long) c.hiddenSize() * q * 2 + (long) c.hiddenSize() * c.kvDim() * 2
          + 3L * c.hiddenSize() * c.intermediateSize());
      p += (long) c.vocabSize() * c.hiddenSize();
      long loraPerToken = 0;
      for (LoraTarget t : lora.targets()) {
        loraPerToken += 12L * lora.r() * (t.inFeatures(c) + t.outFeatures(c));
      }
      loraPerToken *= c.numLayers();
      double ctx = (seqLen + 1) / 2.0;
      double attention = 12.0 * c.numLayers() * q * ctx;
      return new double[] {best, 4.0 * p + loraPerToken + attention};
    }
  }
}
