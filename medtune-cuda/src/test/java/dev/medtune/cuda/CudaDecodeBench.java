package dev.medtune.cuda;

import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Generator;
import dev.medtune.model.Llama;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.Sampler;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Decode speed, batch 1, of a model of the Llama 3.2 1B shape with bf16 weights (random values,
 * written here: 2.5 GB), on the GPU, as a fraction of the card's memory bandwidth measured in the
 * same run (a device-to-device copy, bytes read plus written). A decode step must read every
 * weight once (tied embeddings: the table is read again as lm_head), so
 * {@code bytes per token / bandwidth} is the floor. The CPU backend decodes a few tokens of the
 * same model as the same-run baseline.
 *
 * <p>Four decode paths in the same run, each a warm-up then the median of 3: the decode step op by
 * op or as a CUDA graph ({@code CudaBackend.cudaGraphs}), and greedy picking on the host (the
 * logits row copied, {@code Sampler}) or on the GPU ({@code argmax_rows}, one int back). The
 * first (graphs off, host sampling) is the previous version and the baseline of the ratios; all
 * four must produce the same tokens (checked and printed). A fifth path adds the decode product
 * kernel ({@code gemv_16}, off by default): graphs on, GPU argmax, gemv; its tokens may differ
 * from cuBLASLt's where the summation order decides a near-tie of the random model, so it reports
 * how many tokens agree instead.
 *
 * <p>Usage: {@code CudaDecodeBench <work dir> <results file> [new tokens] [commit] [shape]}, shape
 * {@code llama-3.2-1b} (default) or {@code llama-3.1-8b} (16 GB, untied head); the results file
 * gets markdown lines for bench/RESULTS.md. Run by {@code cuda/run-on-gpu.sh}.
 */
public final class CudaDecodeBench {

  private CudaDecodeBench() {}

  public static void main(String[] args) throws IOException {
    String why = CudaBackendProvider.check();
    if (why != null) { // before writing gigabytes
      System.err.println("CudaDecodeBench: the CUDA backend is not usable here: " + why);
      System.exit(1);
    }
    Path dir = Path.of(args[0]);
    Path results = Path.of(args[1]);
    int newTokens = args.length > 2 ? Integer.parseInt(args[2]) : 256;
    String commit = args.length > 3 ? args[3] : "unknown";
    String shape = args.length > 4 ? args[4] : "llama-3.2-1b";
    // the shapes of init-model's presets of the same names
    LlamaConfig config = switch (shape) {
      case "llama-3.2-1b" -> new LlamaConfig(2048, 8192, 16, 32, 8, 64, 128256, 131072, 1e-5, 500000.0,
          new LlamaConfig.RopeScaling(32.0, 1.0, 4.0, 8192), true, 128000, new int[] {128001}, "bfloat16");
      case "llama-3.1-8b" -> new LlamaConfig(4096, 14336, 32, 32, 8, 128, 128256, 131072, 1e-5, 500000.0,
          new LlamaConfig.RopeScaling(8.0, 1.0, 4.0, 8192), false, 128000, new int[] {128001}, "bfloat16");
      default -> throw new IllegalArgumentException("shape " + shape + ": expected llama-3.2-1b or llama-3.1-8b");
    };
    long t0 = System.nanoTime();
    long weightBytes = writeModel(config, dir);
    System.out.printf("wrote the %s-shaped model (%.2f GB of bf16 weights) in %.1f s%n",
        shape, weightBytes / 1e9, (System.nanoTime() - t0) / 1e9);

    List<int[]> prompt = List.of(new int[] {128000, 791, 6460, 315, 279, 4851, 374, 11, 304, 4689, 3878, 11, 264, 1403, 30, 198});
    List<String> lines = new ArrayList<>();
    try (Checkpoint ckpt = Checkpoint.open(dir); CudaBackend cuda = CudaBackendProvider.open()) {
      String card = cuda.deviceName();
      double bandwidth = cuda.copyBandwidth(1L << 30, 20);
      t0 = System.nanoTime();
      Llama model = new Llama(ckpt, cuda, 64, 1, 1024);
      System.out.printf("uploaded the weights in %.1f s; %s%n", (System.nanoTime() - t0) / 1e9, cuda.description());
      Generator gen = new Generator(model, model.newCache(1));
      String[] paths = {"graphs off, host sampling", "graphs off, GPU argmax", "graphs on, host sampling",
          "graphs on, GPU argmax", "graphs on, GPU argmax, gemv_16", "graphs on, GPU argmax, gemv_rows 1 per warp",
          "graphs on, GPU argmax, gemv_rows 2 per warp", "graphs on, GPU argmax, gemv_rows 4 per warp"};
      int[] agree = new int[paths.length];
      double[] medians = new double[paths.length];
      List<int[]> first = null;
      boolean sameTokens = true;
      for (int c = 0; c < paths.length; c++) {
        cuda.cudaGraphs(c >= 2);
        gen.pickOnBackend(c % 2 == 1 || c >= 4);
        cuda.gemv(c == 4);
        cuda.gemvRows(c >= 5 ? 1 << (c - 5) : 0);
        StepGraphs.Stats before = cuda.graphStats();
        gen.generate(prompt, Sampler.Params.greedy(), 16, (p, t, eos) -> {}); // warm-up: plans, module, graph
        List<Double> runs = new ArrayList<>();
        for (int r = 0; r < 3; r++) {
          Generator.Result res = gen.generate(prompt, Sampler.Params.greedy(), newTokens, (p, t, eos) -> {});
          runs.add(res.decodeTokensPerSecond());
          System.out.printf("%s, run %d: %d tokens decoded, %.1f tokens/s; prefill %.0f tokens/s%n", paths[c], r,
              res.decodeTokens(), res.decodeTokensPerSecond(), res.prefillTokensPerSecond());
          if (first == null) {
            first = res.tokens();
          } else if (c < 4) {
            sameTokens &= java.util.Arrays.equals(first.get(0), res.tokens().get(0));
          } else {
            int[] a = first.get(0);
            int[] b = res.tokens().get(0);
            int same = 0;
            while (same < Math.min(a.length, b.length) && a[same] == b[same]) {
              same++;
            }
            agree[c] = same;
          }
        }
        runs.sort(null);
        medians[c] = runs.get(1);
        StepGraphs.Stats after = cuda.graphStats();
        System.out.printf("%s: median %.1f tokens/s; graphs: %d recorded, %d captured, %d replayed, %d fallbacks%s%n",
            paths[c], medians[c], after.recorded() - before.recorded(), after.captured() - before.captured(),
            after.replayed() - before.replayed(), after.fallbacks() - before.fallbacks(),
            after.fallbacks() > before.fallbacks() ? " (" + after.lastFallback() + ")" : "");
      }
      cuda.gemv(false);
      cuda.gemvRows(0);
      System.out.println("the four cuBLASLt paths produced " + (sameTokens ? "the same tokens" : "DIFFERENT TOKENS")
          + "; the first tokens as theirs, of " + first.get(0).length + ": gemv_16 " + agree[4] + ", gemv_rows "
          + agree[5] + " / " + agree[6] + " / " + agree[7]);
      // bytes a decode step must read: every weight but the embedding table, of which one row is
      // read; a tied table is read whole as lm_head
      long embed = (long) config.vocabSize() * config.hiddenSize() * 2;
      long perToken = config.tieWordEmbeddings() ? weightBytes : weightBytes - embed;
      double floorTps = bandwidth / perToken;

      double cpuTps;
      try (Backend cpu = CpuBackendProvider.create(Runtime.getRuntime().availableProcessors())) {
        Llama cpuModel = new Llama(ckpt, cpu, 64, 1, 1024);
        Generator cpuGen = new Generator(cpuModel, cpuModel.newCache(1));
        int cpuTokens = config.numLayers() > 16 ? 3 : 8;
        cpuGen.generate(prompt, Sampler.Params.greedy(), 2, (p, t, eos) -> {});
        cpuTps = cpuGen.generate(prompt, Sampler.Params.greedy(), cpuTokens, (p, t, eos) -> {}).decodeTokensPerSecond();
      }
      String head = "| date | card | commit | model | decode path | decode tokens/s (median of 3, " + newTokens
          + " tokens) | ms/token | x graphs off + host sampling (same run) | GB/s of weights read | copy bandwidth GB/s (same run) | fraction | bandwidth floor tokens/s | CPU backend, same run, "
          + Runtime.getRuntime().availableProcessors() + " threads |";
      lines.add(head);
      lines.add("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
      for (int c = 0; c < paths.length; c++) {
        double achieved = medians[c] * perToken;
        lines.add(String.format("| %s | %s | %s | %s shape, bf16, batch 1, float32 activations | %s%s | %.1f | %.2f | %.2fx | %.0f | %.0f | %.1f%% | %.0f | %.2f tokens/s (GPU %.0fx) |",
            Instant.now().toString().substring(0, 10), card, commit, shape, paths[c],
            c >= 4 ? " (" + agree[c] + "/" + first.get(0).length + " tokens as cuBLASLt)"
                : sameTokens ? "" : " (TOKENS DIFFER between paths)", medians[c], 1000 / medians[c], medians[c] / medians[0],
            achieved / 1e9, bandwidth / 1e9, 100 * achieved / bandwidth, floorTps, cpuTps, medians[c] / cpuTps));
      }
    }
    for (String l : lines) {
      System.out.println(l);
    }
    Files.write(results, lines, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
  }

  /** Writes config.json and model.safetensors with random bf16 weights; returns the weight bytes. */
  static long writeModel(LlamaConfig c, Path dir) {
    config(c, dir);
    long biggest = (long) c.vocabSize() * c.hiddenSize() * 2;
    Arena arena = Arena.ofShared();
    MemorySegment block = arena.allocate(biggest, 64);
    // one 16 MiB block of N(0, 0.02) values, repeated: random-looking to the hardware, fast to make
    Random r = new Random(7);
    ValueLayout.OfShort le = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    long blockElems = 8L << 20;
    for (long i = 0; i < blockElems; i++) {
      block.set(le, 2 * i, (short) (Float.floatToRawIntBits((float) (r.nextGaussian() * 0.02)) >>> 16));
    }
    for (long at = 2 * blockElems; at < biggest; at += 2 * blockElems) {
      MemorySegment.copy(block, 0, block, at, Math.min(2 * blockElems, biggest - at));
    }
    int h = c.hiddenSize();
    int q = c.numHeads() * c.headDim();
    SafetensorsWriter w = new SafetensorsWriter();
    w.add("model.embed_tokens.weight", DType.BF16, new long[] {c.vocabSize(), h}, block.asSlice(0, biggest));
    float[] ones = new float[h];
    java.util.Arrays.fill(ones, 1f);
    for (int l = 0; l < c.numLayers(); l++) {
      String p = "model.layers." + l + ".";
      w.add(p + "input_layernorm.weight", DType.BF16, new long[] {h}, ones);
      w.add(p + "post_attention_layernorm.weight", DType.BF16, new long[] {h}, ones);
      long[][] shapes = {{q, h}, {c.kvDim(), h}, {c.kvDim(), h}, {h, q}, {c.intermediateSize(), h},
          {c.intermediateSize(), h}, {h, c.intermediateSize()}};
      String[] names = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
      for (int i = 0; i < names.length; i++) {
        long bytes = shapes[i][0] * shapes[i][1] * 2;
        // start each at another offset so that the layers do not share one pattern
        long off = ((long) (l * 7 + i) * 4096 * 2) % (biggest - bytes);
        w.add(p + names[i] + ".weight", DType.BF16, shapes[i], block.asSlice(off, bytes));
      }
    }
    w.add("model.norm.weight", DType.BF16, new long[] {h}, ones);
    if (!c.tieWordEmbeddings()) {
      w.add("lm_head.weight", DType.BF16, new long[] {c.vocabSize(), h}, block.asSlice(0, biggest));
    }
    long bytes = w.dataBytes();
    w.write(dir.resolve("model.safetensors"));
    return bytes;
  }

  private static void config(LlamaConfig c, Path dir) {
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    c.write(dir.resolve("config.json"));
  }
}
