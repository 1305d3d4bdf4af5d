package dev.medtune.cuda;

import dev.medtune.model.Checkpoint;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.LoraLlama;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.LoraConfig;
import dev.medtune.model.lora.LoraTarget;
import dev.medtune.model.train.AdamW;
import dev.medtune.model.train.MicroBatch;
import dev.medtune.model.train.SftTrainer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * LoRA training speed on the GPU: the optimizer step {@code medtune train} runs
 * ({@code SftTrainer.optimizerStep}: forward, chunked loss, backward, gradient norm and clipping,
 * AdamW on the device) on a model of the Llama 3.1 8B shape with random bf16 weights (16 GB,
 * written here), LoRA r=16 alpha=16 on the seven projections, sequences of {@code seq} tokens,
 * every token counted (as PEFT's baseline, {@code bench/peft_baseline.py}, run in the same device
 * call). Prints tokens/s (median of the timed steps), peak device memory and MFU, and appends a
 * line for bench/RESULTS.md per setting; then a profile of one more step.
 *
 * <p>MFU counts issue 5's 33.5 GFLOP per token at 2048 tokens (forward and backward of the frozen
 * 8B with LoRA, attention included, recomputation not counted) against 989 TFLOP/s, the dense
 * bf16 peak of an H100 SXM and of an H200 (the output says so; other cards get no MFU).
 *
 * <p>Usage: {@code CudaTrainBench <work dir> <results file> <commit> <batches> <seq>
 * <checkpointing> [layers (default 32)] [timed steps (default 3)]}, where {@code batches} and
 * {@code checkpointing} are comma lists of the same length, one setting each (e.g. {@code 4,2}
 * and {@code true,false}: PEFT's two baselines), each run with a fresh backend in this JVM; a
 * checkpointing entry may end in {@code /float32} to run that setting's float32 products without
 * TF32 (the same step with and without it, e.g. {@code 4,2,4} and {@code true,false,true/float32});
 * a setting that runs out of device memory is reported as not fitting and the next one runs.
 * Batch 0 only writes the model.
 */
public final class CudaTrainBench {

  /** Issue 5's FLOPs per token of the 8B shape at 2048 tokens (forward + backward, LoRA, attention). */
  static final double FLOPS_PER_TOKEN_8B = 33.5e9;
  /** Dense bf16 tensor-core peak of an H100 SXM and of an H200 (NVIDIA's datasheets, without sparsity). */
  static final double PEAK_BF16_H100_H200 = 989e12;

  private CudaTrainBench() {}

  public static void main(String[] args) throws IOException {
    String why = CudaBackendProvider.check();
    if (why != null) {
      System.err.println("CudaTrainBench: the CUDA backend is not usable here: " + why);
      System.exit(1);
    }
    Path dir = Path.of(args[0]);
    Path results = Path.of(args[1]);
    String commit = args[2];
    String[] batches = args[3].split(",");
    int seq = Integer.parseInt(args[4]);
    String[] checkpointings = args[5].split(",");
    int layers = args.length > 6 ? Integer.parseInt(args[6]) : 32;
    int timed = args.length > 7 ? Integer.parseInt(args[7]) : 3;
    if (batches.length != checkpointings.length) {
      throw new IllegalArgumentException("batches " + args[3] + " and checkpointing " + args[5]
          + " must list the same number of settings");
    }
    LlamaConfig config = new LlamaConfig(4096, 14336, layers, 32, 8, 128, 128256, 131072, 1e-5, 500000.0,
        new LlamaConfig.RopeScaling(8.0, 1.0, 4.0, 8192), false, 128000, new int[] {128001}, "bfloat16");
    long t0 = System.nanoTime();
    if (!Files.isRegularFile(dir.resolve("model.safetensors"))) {
      long bytes = CudaDecodeBench.writeModel(config, dir);
      System.out.printf("wrote the llama-3.1-8b-shaped model (%d layers, %.2f GB of bf16 weights) in %.1f s%n",
          layers, bytes / 1e9, (System.nanoTime() - t0) / 1e9);
    }
    for (int i = 0; i < batches.length; i++) {
      int batch = Integer.parseInt(batches[i].strip());
      if (batch == 0) { // only write the model (cuda/run-on-gpu.sh does it while the baseline runs)
        continue;
      }
      String[] setting = checkpointings[i].strip().split("/");
      boolean checkpointing = Boolean.parseBoolean(setting[0]);
      boolean noTf32 = setting.length > 1 && setting[1].equals("float32");
      try {
        run(dir, results, commit, config, batch, seq, checkpointing, noTf32, layers, timed);
      } catch (CudaException e) {
        if (!String.valueOf(e.getMessage()).contains("OUT_OF_MEMORY")) {
          throw e;
        }
        String line = String.format("| %s | %s | %s | medtune `train` step, llama-3.1-8b shape%s | %d x %d | %s | does not fit: %s | | |",
            Instant.now().toString().substring(0, 10), deviceName(), commit, layers == 32 ? "" : " (" + layers + " of 32 layers)",
            batch, seq, checkpointing ? "on" : "off", e.getMessage());
        System.out.println(line);
        Files.writeString(results, line + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
      }
    }
  }

  private static String deviceName() {
    try (CudaBackend cuda = CudaBackendProvider.open()) {
      return cuda.deviceName();
    }
  }

  private static void run(Path dir, Path results, String commit, LlamaConfig config, int batch, int seq,
      boolean checkpointing, boolean noTf32, int layers, int timed) throws IOException {
    System.out.printf("== batch %d x %d, gradient checkpointing %s%s%n", batch, seq, checkpointing ? "on" : "off",
        noTf32 ? ", float32 products without TF32" : "");
    LoraConfig lora = new LoraConfig(16, 16, 0.0, List.of(LoraTarget.values()), false);
    AdamW.Hyperparameters h = AdamW.Hyperparameters.recipe();
    try (Checkpoint ckpt = Checkpoint.open(dir); CudaBackend cuda = CudaBackendProvider.open()) {
      String card = cuda.deviceName();
      if (noTf32) {
        cuda.tf32(false);
      }
      long[] mem0 = cuda.memoryInfo();
      long contextBytes = mem0[1] - mem0[0];
      long t0 = System.nanoTime();
      LoraLlama model = new LoraLlama(ckpt, cuda, lora, batch * seq, seq, checkpointing);
      model.loadAdapter(LoraAdapter.initialize(ckpt.config(), lora, 3407));
      System.out.printf("uploaded the weights and planned the buffers in %.1f s; %s; loss head %d rows a product%n",
          (System.nanoTime() - t0) / 1e9, cuda.description(), model.lossChunkRows());
      MicroBatch mb = batch(batch, seq, config.vocabSize(), new Random(1));
      List<Double> times = new ArrayList<>();
      int warmup = 1;
      for (int step = 1; step <= warmup + timed; step++) {
        long s0 = System.nanoTime();
        SftTrainer.StepResult r = SftTrainer.optimizerStep(model, List.of(mb), mb.countedTokens(), step, 2e-4,
            1.0, h, i -> 0);
        cuda.synchronize();
        double sec = (System.nanoTime() - s0) / 1e9;
        System.out.printf("step %d: %.2f s, %.0f tokens/s, loss %.4f, grad norm %.4f%n", step, sec,
            mb.realTokens() / sec, r.loss(), r.gradNorm());
        if (!Double.isFinite(r.loss())) {
          throw new IllegalStateException("loss " + r.loss() + " at step " + step);
        }
        if (step > warmup) {
          times.add(sec);
        }
      }
      times.sort(null);
      double median = times.get(times.size() / 2);
      double tps = mb.realTokens() / median;
      long[] mem = cuda.memoryInfo();
      long used = mem[1] - mem[0];
      // buffers are planned once and never freed, so the memory in use after the steps is the peak
      double flopsPerToken = FLOPS_PER_TOKEN_8B * layers / 32;
      boolean knownPeak = card.contains("H100") || card.contains("H200");
      double mfu = knownPeak ? tps * flopsPerToken / PEAK_BF16_H100_H200 : Double.NaN;
      System.out.printf("median step %.3f s: %.0f tokens/s; peak device memory %.1f GiB (%.1f GiB with the CUDA context); %s%n",
          median, tps, (used - contextBytes) / (double) (1L << 30), used / (double) (1L << 30),
          knownPeak ? String.format("MFU %.1f%% (%.1f GFLOP a token x %.0f tokens/s over 989 TFLOP/s, the dense bf16 peak of"
              + " an H100/H200 SXM)", 100 * mfu, flopsPerToken / 1e9, tps)
              : "MFU not given: the bf16 peak of " + card + " is not known here (989 TFLOP/s is the H100/H200 SXM's)");
      String line = String.format("| %s | %s | %s | medtune `train` step (SftTrainer.optimizerStep), llama-3.1-8b shape%s, bf16 weights, float32 activations, %s LoRA products, LoRA r=16 a=16 x7, AdamW | %d x %d | %s | %.0f | %.1f GiB (%.1f GiB with the CUDA context) | %s |",
          Instant.now().toString().substring(0, 10), card, commit, layers == 32 ? "" : " (" + layers + " of 32 layers)",
          cuda.tf32() ? "TF32" : "float32", batch, seq, checkpointing ? "on" : "off", tps,
          (used - contextBytes) / (double) (1L << 30), used / (double) (1L << 30),
          knownPeak ? String.format("%.1f%% (of 989 TFLOP/s bf16)", 100 * mfu) : "n/a");
      System.out.println(line);
      Files.writeString(results, line + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);

      // one more step with a wait after every op: where the time goes
      cuda.profile(true);
      long p0 = System.nanoTime();
      SftTrainer.optimizerStep(model, List.of(mb), mb.countedTokens(), warmup + timed + 1, 2e-4, 1.0, h, i -> 0);
      cuda.synchronize();
      double profiled = (System.nanoTime() - p0) / 1e9;
      cuda.profile(false);
      List<java.util.Map.Entry<String, double[]>> rowsByTime = new ArrayList<>(cuda.profileTable().entrySet());
      rowsByTime.sort((a, b) -> Double.compare(b.getValue()[0], a.getValue()[0]));
      StringBuilder table = new StringBuilder(String.format(
          "%nProfile of one step (%s, commit %s, %s, batch %d x %d, checkpointing %s): %.2f s with a wait after every op (%.2f s without)%n%n"
          + "| op | calls | seconds | share |%n|---|---|---|---|%n", card, commit, layers + " layers", batch, seq,
          checkpointing ? "on" : "off", profiled, median));
      double listed = 0;
      for (var e : rowsByTime) {
        if (e.getValue()[0] < 0.005 * profiled) {
          continue;
        }
        listed += e.getValue()[0];
        table.append(String.format("| %s | %.0f | %.3f | %.1f%% |%n", e.getKey(), e.getValue()[1], e.getValue()[0],
            100 * e.getValue()[0] / profiled));
      }
      table.append(String.format("| (ops under 0.5%% each) | | %.3f | %.1f%% |%n", profiled - listed,
          100 * (profiled - listed) / profiled));
      System.out.print(table);
      Files.writeString(results.resolveSibling("train-profile.md"), table, StandardOpenOption.CREATE,
          StandardOpenOption.APPEND);
    }
  }

  /** {@code rows} sequences of {@code seq} random tokens, every next token a target. */
  static MicroBatch batch(int rows, int seq, int vocab, Random r) {
    int n = rows * seq;
    int[] tok = new int[n];
    int[] tgt = new int[n];
    int[] pos = new int[n];
    int[] ids = new int[n];
    for (int i = 0; i < n; i++) {
      tok[i] = i % seq == 0 ? 128000 : r.nextInt(vocab - 1000);
    }
    int counted = 0;
    for (int i = 0; i < n; i++) {
      pos[i] = i % seq;
      tgt[i] = pos[i] + 1 < seq ? tok[i + 1] : -100;
      counted += tgt[i] == -100 ? 0 : 1;
    }
    return new MicroBatch(rows, seq, tok, tgt, pos, ids, counted, n);
  }
}
