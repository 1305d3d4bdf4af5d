package dev.medtune.cuda;

import dev.medtune.model.backend.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Attention alone, forward and backward, on the Llama 3.1 8B training shape (4 sequences of 2048
 * rows, 32 query heads, 8 KV heads, head dim 128): the flash-attention kernels and the tiled
 * kernels (the baseline) in the same run, on the same inputs. Each op is timed by waiting for the
 * stream before and after it (median of 5 after one warm-up); prints milliseconds and TFLOP/s and
 * appends a line per path to the results file.
 *
 * <p>FLOPs count the causal half of the score matrix: forward {@code 4 T^2/2 d} per head and
 * sequence (QK^T and PV), backward 2.5 times that (FlashAttention-2's count: five products of the
 * forward's two, recomputation included).
 *
 * <p>Usage: {@code CudaAttentionBench <results file> <commit> [sequences (4)] [rows per sequence (2048)]}.
 */
public final class CudaAttentionBench {

  private CudaAttentionBench() {}

  public static void main(String[] args) throws IOException {
    String why = CudaBackendProvider.check();
    if (why != null) {
      System.err.println("CudaAttentionBench: the CUDA backend is not usable here: " + why);
      System.exit(1);
    }
    Path results = Path.of(args[0]);
    String commit = args[1];
    int sequences = args.length > 2 ? Integer.parseInt(args[2]) : 4;
    int seq = args.length > 3 ? Integer.parseInt(args[3]) : 2048;
    int heads = 32;
    int kvHeads = 8;
    int headDim = 128;
    int rows = sequences * seq;
    int kvDim = kvHeads * headDim;
    int[] slots = new int[rows];
    int[] positions = new int[rows];
    for (int t = 0; t < rows; t++) {
      slots[t] = t / seq;
      positions[t] = t % seq;
    }
    double flopsForward = 4.0 * seq * seq / 2 * headDim * heads * sequences;
    double flopsBackward = 2.5 * flopsForward;
    Random random = new Random(1);
    try (CudaBackend cuda = CudaBackendProvider.open()) {
      String card = cuda.deviceName();
      Tensor q = filled(cuda, random, (long) rows * heads * headDim);
      Tensor dout = filled(cuda, random, (long) rows * heads * headDim);
      Tensor kCache = filled(cuda, random, (long) sequences * seq * kvDim);
      Tensor vCache = filled(cuda, random, (long) sequences * seq * kvDim);
      Tensor out = cuda.allocate((long) rows * heads * headDim);
      Tensor dq = cuda.allocate((long) rows * heads * headDim);
      Tensor dk = cuda.allocate((long) sequences * seq * kvDim);
      Tensor dv = cuda.allocate((long) sequences * seq * kvDim);
      System.out.printf("%s; %d x %d rows, %d/%d heads of %d%n", cuda.description(), sequences, seq, heads, kvHeads,
          headDim);
      double[][] figures = new double[2][];
      // a row in the middle of the third sequence: both paths must agree there (bf16 bound)
      float[] sample = new float[heads * headDim];
      long sampleAt = (long) (2 * seq + seq / 2 + 7) * heads * headDim;
      float[][] outs = new float[2][];
      for (int path = 0; path < 2; path++) {
        boolean flash = path == 0;
        cuda.flashAttention(flash);
        Tensor att = cuda.allocate(cuda.attentionStateFloats(rows, heads, headDim, seq));
        List<Double> forward = new ArrayList<>();
        List<Double> backward = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
          cuda.synchronize();
          long t0 = System.nanoTime();
          cuda.attentionForward(out, att, q, kCache, vCache, slots, positions, rows, heads, kvHeads, headDim, seq);
          cuda.synchronize();
          long t1 = System.nanoTime();
          cuda.zero(dk, dk.size());
          cuda.zero(dv, dv.size());
          cuda.synchronize();
          long t2 = System.nanoTime();
          cuda.attentionBackward(dq, dk, dv, dout, out, q, kCache, vCache, att, slots, positions, rows, heads, kvHeads,
              headDim, seq);
          cuda.synchronize();
          long t3 = System.nanoTime();
          if (i > 0) {
            forward.add((t1 - t0) / 1e9);
            backward.add((t3 - t2) / 1e9);
          }
        }
        cuda.copyToHost(out, sampleAt, sample, sample.length);
        outs[path] = sample.clone();
        forward.sort(null);
        backward.sort(null);
        figures[path] = new double[] {forward.get(2), backward.get(2)};
        System.out.printf("%s: forward %.2f ms (%.1f TFLOP/s), backward %.2f ms (%.1f TFLOP/s)%n",
            flash ? "flash" : "tiled", 1e3 * forward.get(2), flopsForward / forward.get(2) / 1e12,
            1e3 * backward.get(2), flopsBackward / backward.get(2) / 1e12);
      }
      cuda.flashAttention(true);
      double diff = 0;
      double max = 0;
      for (int i = 0; i < sample.length; i++) {
        diff = Math.max(diff, Math.abs(outs[0][i] - outs[1][i]));
        max = Math.max(max, Math.abs(outs[1][i]));
      }
      if (!(diff <= 2e-2 * max)) {
        throw new IllegalStateException("the two paths disagree: max |flash - tiled| " + diff + " of max " + max);
      }
      for (int path = 0; path < 2; path++) {
        double f = figures[path][0];
        double b = figures[path][1];
        String line = String.format("| %s | %s | %s | attention forward + backward (CudaAttentionBench), %s kernels, "
                + "%d x %d rows, 32/8 heads of 128 | forward %.2f ms, %.1f TFLOP/s | backward %.2f ms, %.1f TFLOP/s | "
                + "%.1fx the tiled kernels (same run) |",
            Instant.now().toString().substring(0, 10), card, commit, path == 0 ? "flash" : "tiled", sequences, seq,
            1e3 * f, flopsForward / f / 1e12, 1e3 * b, flopsBackward / b / 1e12,
            (figures[1][0] + figures[1][1]) / (f + b));
        System.out.println(line);
        Files.writeString(results, line + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
      }
    }
  }

  private static Tensor filled(CudaBackend cuda, Random random, long n) {
    Tensor t = cuda.allocate(n);
    float[] chunk = new float[1 << 20];
    for (long at = 0; at < n; at += chunk.length) {
      int len = (int) Math.min(chunk.length, n - at);
      for (int i = 0; i < len; i++) {
        chunk[i] = (float) random.nextGaussian();
      }
      cuda.copyFromHost(len == chunk.length ? chunk : java.util.Arrays.copyOf(chunk, len), t, at);
    }
    return t;
  }
}
