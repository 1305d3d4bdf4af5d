package dev.medtune.cuda;

import dev.medtune.model.backend.Tensor;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.TensorInfo;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The decode products alone: one row of float32 activations against each bf16 weight shape of
 * Llama 3.1 8B (q/o, k/v, gate/up, down, lm_head), through cuBLASLt (the activation cast to bf16
 * first, as before gemv.cu: the baseline) and through gemv.cu with 1, 2 and 4 weight rows per
 * warp, and through gemv.cu's split-K gemv_16 (on the cast activation), in the same run on the same data. Each product is repeated 200 times between two waits
 * for the stream (after a warm-up); prints microseconds and the weight bytes read per second
 * against the device's copy bandwidth measured in the same run, and appends a line per shape and
 * path to the results file.
 *
 * <p>Usage: {@code CudaGemvBench <results file> <commit>}.
 */
public final class CudaGemvBench {

  private CudaGemvBench() {}

  public static void main(String[] args) throws IOException {
    String why = CudaBackendProvider.check();
    if (why != null) {
      System.err.println("CudaGemvBench: the CUDA backend is not usable here: " + why);
      System.exit(1);
    }
    Path results = Path.of(args[0]);
    String commit = args[1];
    int[][] shapes = {{4096, 4096}, {1024, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
    String[] names = {"q/o_proj", "k/v_proj", "gate/up_proj", "down_proj", "lm_head"};
    int reps = 200;
    Random random = new Random(7);
    List<String> lines = new ArrayList<>();
    try (CudaBackend cuda = CudaBackendProvider.open(); Arena arena = Arena.ofConfined()) {
      double bandwidth = cuda.copyBandwidth(1L << 30, 20);
      System.out.printf("%s; copy bandwidth %.0f GB/s%n", cuda.description(), bandwidth / 1e9);
      for (int s = 0; s < shapes.length; s++) {
        int n = shapes[s][0];
        int k = shapes[s][1];
        MemorySegment seg = arena.allocate(2L * n * k, 16);
        for (long i = 0; i < (long) n * k; i++) {
          seg.set(ValueLayout.JAVA_SHORT_UNALIGNED, 2 * i, (short) (Float.floatToRawIntBits((float) random.nextGaussian() * 0.02f) >>> 16));
        }
        Tensor w = cuda.weight(new TensorInfo("bench.weight", DType.BF16, new long[] {n, k}, seg));
        Tensor a = cuda.allocate(k);
        float[] av = new float[k];
        for (int i = 0; i < k; i++) {
          av[i] = (float) random.nextGaussian();
        }
        cuda.copyFromHost(av, a, 0);
        Tensor c = cuda.allocate(n);
        double bytes = 2.0 * n * k;
        double baseUs = 0;
        for (int path = 0; path < 5; path++) {
          cuda.gemvRows(path == 0 || path == 4 ? 0 : path == 1 ? 1 : path == 2 ? 2 : 4);
          cuda.gemv(path == 4);
          String label = path == 0 ? "cuBLASLt (cast + product)" : path == 4 ? "gemv.cu gemv_16 (cast + split-K product)"
              : "gemv_rows.cu, " + cuda.gemvRows() + " row(s) per warp";
          double best = Double.MAX_VALUE;
          for (int round = 0; round < 4; round++) {
            cuda.synchronize();
            long t0 = System.nanoTime();
            for (int r = 0; r < reps; r++) {
              cuda.matmul(c, a, false, w, true, 1, n, k, 1f, 0f);
            }
            cuda.synchronize();
            double us = (System.nanoTime() - t0) / 1e3 / reps;
            if (round > 0) {
              best = Math.min(best, us);
            }
          }
          if (path == 0) {
            baseUs = best;
          }
          double gbs = bytes / (best * 1e-6) / 1e9;
          System.out.printf("%-13s %6d x %5d  %-32s %8.1f us  %6.0f GB/s  %4.1f%% of copy  %.2fx cuBLASLt%n", names[s], n, k,
              label, best, gbs, 100 * gbs * 1e9 / bandwidth, baseUs / best);
          lines.add(String.format("| %s | %s | %s | decode product %s, 1 x %d x %d, bf16 weight (CudaGemvBench, best of 3 x %d) | %s | %.1f us | %.0f GB/s (%.1f%% of the same-run copy bandwidth %.0f GB/s) | %.2fx cuBLASLt (same run) |",
              Instant.now().toString().substring(0, 10), cuda.deviceName(), commit, names[s], n, k, reps, label, best, gbs,
              100 * gbs * 1e9 / bandwidth, bandwidth / 1e9, baseUs / best));
        }
      }
    }
    Files.write(results, lines, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
  }
}
