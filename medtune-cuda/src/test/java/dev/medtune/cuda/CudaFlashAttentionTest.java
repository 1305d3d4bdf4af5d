package dev.medtune.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The flash-attention kernels ({@code flash_attention.cu}: forward, and the backward's D, dK/dV
 * and dq kernels) against the CPU backend on fresh random inputs: head dims 64 and 128 (the two
 * compiled variants), 32/8, 4/1 and 8/8 query/KV heads, and the row layouts the host cuts into
 * work items - one 300-row sequence (not a multiple of the 64-row tiles), a packed batch of
 * sequences of 1, 17, 64, 65 and 130 rows, a prefill into caches that already hold earlier
 * positions, the packed rows in a shuffled order (items of one row), and decode (one row: the
 * per-row kernel writing the log-sum-exp). Cache rows past each slot's last position are NaN, and
 * every output is poisoned with NaN first: a kernel that reads a row it must not, or leaves an
 * output unwritten, fails (NaN never passes).
 *
 * <p>Tolerances. q, k, v, dout and the probabilities enter the tensor-core products as bf16 (unit
 * roundoff 2^-9), products accumulate in float32. Each output element is a sum of rounded
 * products whose errors are independent and of random sign, so its error is a few 2^-9 of a
 * typical element; the gradients' sums cancel (dS sums to zero per row), which raises their error
 * relative to their size. The kernels run on the CPU emulator ({@code cuda/emulate}, the same
 * bf16 roundings) gave 2.2e-3 to 7.5e-3 of max|ref| on these layouts; an indexing or masking error
 * is of the order of max|ref| itself. So out, dq, dK and dV are held to {@code 2e-2 max|ref|}
 * (max over the tensor; dK and dV compared by what was added to their random initial values).
 * lse is checked against the log-sum-exp of the scores computed in double on the host, absolute:
 * {@code 2e-2 + 2e-3 |ref|} (the emulator: up to 7.8e-3). Skipped, with the reason, without a GPU.
 */
class CudaFlashAttentionTest {

  private static CudaBackend cuda;
  private static Backend cpu;
  private final Random random = new Random(System.nanoTime());

  @BeforeAll
  static void open() {
    if (CudaBackendProvider.check() != null) {
      System.err.println("CUDA tests skipped: " + CudaBackendProvider.check());
      return;
    }
    cuda = CudaBackendProvider.open();
    cpu = CpuBackendProvider.create(Math.min(8, Runtime.getRuntime().availableProcessors()));
  }

  @BeforeEach
  void needsAGpu() {
    assumeTrue(cuda != null, () -> "CUDA tests skipped: " + CudaBackendProvider.check());
    assumeTrue(cuda.flashAttentionFor(64), "flash attention is off (MEDTUNE_CUDA_ATTENTION=tiled) or the GPU is"
        + " older than compute capability 8.0");
  }

  @AfterAll
  static void close() {
    if (cuda != null) {
      cuda.close();
      cpu.close();
    }
  }

  /** Rows with their slot and position; maxLength positions per slot. */
  private record Layout(String name, int slots, int maxLength, int[] slot, int[] position) {
    int rows() {
      return slot.length;
    }
  }

  private static Layout sequences(String name, int maxLength, int[] firsts, int[] lengths) {
    List<int[]> rows = new ArrayList<>();
    for (int s = 0; s < lengths.length; s++) {
      for (int i = 0; i < lengths[s]; i++) {
        rows.add(new int[] {s, firsts[s] + i});
      }
    }
    return new Layout(name, lengths.length, maxLength, rows.stream().mapToInt(r -> r[0]).toArray(),
        rows.stream().mapToInt(r -> r[1]).toArray());
  }

  private Layout shuffled(Layout l) {
    int[] order = new int[l.rows()];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
    }
    for (int i = order.length - 1; i > 0; i--) {
      int j = random.nextInt(i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    int[] slot = new int[order.length];
    int[] position = new int[order.length];
    for (int i = 0; i < order.length; i++) {
      slot[i] = l.slot()[order[i]];
      position[i] = l.position()[order[i]];
    }
    return new Layout(l.name() + ", rows shuffled", l.slots(), l.maxLength(), slot, position);
  }

  private List<Layout> layouts(boolean all) {
    List<Layout> out = new ArrayList<>();
    out.add(sequences("1 sequence of 300", 300, new int[] {0}, new int[] {300}));
    Layout packed = sequences("packed 1+17+64+65+130", 130, new int[] {0, 0, 0, 0, 0}, new int[] {1, 17, 64, 65, 130});
    out.add(packed);
    out.add(sequences("prefill at 100 and 37 (cached before)", 230, new int[] {100, 37}, new int[] {130, 63}));
    if (all) {
      out.add(shuffled(packed));
      out.add(new Layout("decode, 1 row at position 77", 2, 130, new int[] {1}, new int[] {77}));
    }
    return out;
  }

  @Test
  void flashAttentionForwardAndBackwardMatchTheCpu() {
    // {heads, kvHeads}; the 32-head shape (Llama 3 8B's grouping) on the first three layouts only,
    // to keep the CPU reference's time down
    int[][] heads = {{32, 8}, {4, 1}, {8, 8}};
    for (int headDim : new int[] {64, 128}) {
      for (int[] hk : heads) {
        for (Layout l : layouts(hk[0] < 32)) {
          check(l, hk[0], hk[1], headDim);
        }
      }
    }
  }

  private float[] randoms(int n) {
    float[] f = new float[n];
    for (int i = 0; i < n; i++) {
      f[i] = (float) random.nextGaussian();
    }
    return f;
  }

  private static Tensor upload(Backend b, float[] values, long... shape) {
    Tensor t = b.allocate(shape);
    b.copyFromHost(values, t, 0);
    return t;
  }

  private static float[] read(Backend b, Tensor t) {
    float[] f = new float[(int) t.size()];
    b.copyToHost(t, 0, f, f.length);
    return f;
  }

  private static float[] nans(int n) {
    float[] f = new float[n];
    Arrays.fill(f, Float.NaN);
    return f;
  }

  private void check(Layout l, int heads, int kvHeads, int headDim) {
    int rows = l.rows();
    int kvDim = kvHeads * headDim;
    int maxLength = l.maxLength();
    int cache = l.slots() * maxLength * kvDim;
    String what = String.format("%s, %d/%d heads of %d", l.name(), heads, kvHeads, headDim);
    // the caches: random up to each slot's last position, NaN past it (never to be read)
    int[] slotLast = new int[l.slots()];
    Arrays.fill(slotLast, -1);
    for (int t = 0; t < rows; t++) {
      slotLast[l.slot()[t]] = Math.max(slotLast[l.slot()[t]], l.position()[t]);
    }
    float[] k = randoms(cache);
    float[] v = randoms(cache);
    for (int s = 0; s < l.slots(); s++) {
      int from = (s * maxLength + slotLast[s] + 1) * kvDim;
      int to = (s + 1) * maxLength * kvDim;
      Arrays.fill(k, from, to, Float.NaN);
      Arrays.fill(v, from, to, Float.NaN);
    }
    float[] q = randoms(rows * heads * headDim);
    float[] dout = randoms(rows * heads * headDim);
    float[] dk0 = randoms(cache); // accumulated into
    float[] dv0 = randoms(cache);

    // the CPU reference: probabilities as state
    Tensor qc = upload(cpu, q, rows, heads * headDim);
    Tensor kc = upload(cpu, k, l.slots(), maxLength, kvDim);
    Tensor vc = upload(cpu, v, l.slots(), maxLength, kvDim);
    Tensor outC = cpu.allocate(rows, heads * headDim);
    Tensor attC = cpu.allocate(cpu.attentionStateFloats(rows, heads, headDim, maxLength));
    cpu.attentionForward(outC, attC, qc, kc, vc, l.slot(), l.position(), rows, heads, kvHeads, headDim, maxLength);
    Tensor dqC = cpu.allocate(rows, heads * headDim);
    Tensor dkC = upload(cpu, dk0, l.slots(), maxLength, kvDim);
    Tensor dvC = upload(cpu, dv0, l.slots(), maxLength, kvDim);
    cpu.attentionBackward(dqC, dkC, dvC, upload(cpu, dout, rows, heads * headDim), outC, qc, kc, vc, attC, l.slot(),
        l.position(), rows, heads, kvHeads, headDim, maxLength);

    // the GPU: one log-sum-exp per (row, head) as state
    assertEquals((long) rows * heads, cuda.attentionStateFloats(rows, heads, headDim, maxLength),
        "the flash layout's state");
    Tensor qg = upload(cuda, q, rows, heads * headDim);
    Tensor kg = upload(cuda, k, l.slots(), maxLength, kvDim);
    Tensor vg = upload(cuda, v, l.slots(), maxLength, kvDim);
    Tensor outG = upload(cuda, nans(rows * heads * headDim), rows, heads * headDim);
    Tensor lseG = upload(cuda, nans(rows * heads), rows * heads);
    cuda.attentionForward(outG, lseG, qg, kg, vg, l.slot(), l.position(), rows, heads, kvHeads, headDim, maxLength);
    Tensor dqG = upload(cuda, nans(rows * heads * headDim), rows, heads * headDim);
    Tensor dkG = upload(cuda, dk0, l.slots(), maxLength, kvDim);
    Tensor dvG = upload(cuda, dv0, l.slots(), maxLength, kvDim);
    cuda.attentionBackward(dqG, dkG, dvG, upload(cuda, dout, rows, heads * headDim), outG, qg, kg, vg, lseG,
        l.slot(), l.position(), rows, heads, kvHeads, headDim, maxLength);

    compareToMax("flash attention out", what, read(cpu, outC), read(cuda, outG));
    float[] lseRef = logSumExp(q, k, l, rows, heads, kvHeads, headDim);
    float[] lseGot = read(cuda, lseG);
    double worst = 0;
    int bad = -1;
    for (int i = 0; i < lseRef.length; i++) {
      double err = Math.abs((double) lseGot[i] - lseRef[i]);
      worst = Double.isNaN(err) || Double.isNaN(worst) ? Double.NaN : Math.max(worst, err);
      if (!(err <= 2e-2 + 2e-3 * Math.abs(lseRef[i])) && bad < 0) {
        bad = i;
      }
    }
    CheckTable.row("flash attention lse", what, worst, "2e-2 + 2e-3 |ref|", bad < 0);
    int b = bad;
    assertTrue(bad < 0, () -> "lse " + what + ": (row, head) " + b + " expected " + lseRef[b] + " got " + lseGot[b]);
    compareToMax("flash attention dq", what, read(cpu, dqC), read(cuda, dqG));
    // dK and dV are accumulated into random values: compare what was added (an overwrite fails)
    compareToMax("flash attention dK", what + " (+=)", minus(read(cpu, dkC), dk0), minus(read(cuda, dkG), dk0));
    compareToMax("flash attention dV", what + " (+=)", minus(read(cpu, dvC), dv0), minus(read(cuda, dvG), dv0));
  }

  private static float[] minus(float[] a, float[] b) {
    float[] d = new float[a.length];
    for (int i = 0; i < a.length; i++) {
      d[i] = a[i] - b[i];
    }
    return d;
  }

  /** lse[t,h] = log sum_{j <= position} exp(q . k_j / sqrt(headDim)), in double. */
  private static float[] logSumExp(float[] q, float[] k, Layout l, int rows, int heads, int kvHeads, int headDim) {
    int kvDim = kvHeads * headDim;
    int group = heads / kvHeads;
    double scale = 1 / Math.sqrt(headDim);
    float[] out = new float[rows * heads];
    double[] s = new double[l.maxLength()];
    for (int t = 0; t < rows; t++) {
      for (int h = 0; h < heads; h++) {
        int qi = (t * heads + h) * headDim;
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j <= l.position()[t]; j++) {
          int ki = (l.slot()[t] * l.maxLength() + j) * kvDim + (h / group) * headDim;
          double dot = 0;
          for (int d = 0; d < headDim; d++) {
            dot += (double) q[qi + d] * k[ki + d];
          }
          s[j] = dot * scale;
          max = Math.max(max, s[j]);
        }
        double sum = 0;
        for (int j = 0; j <= l.position()[t]; j++) {
          sum += Math.exp(s[j] - max);
        }
        out[t * heads + h] = (float) (max + Math.log(sum));
      }
    }
    return out;
  }

  private static void compareToMax(String op, String what, float[] want, float[] got) {
    assertEquals(want.length, got.length);
    double max = 0;
    for (float w : want) {
      max = Math.max(max, Math.abs(w));
    }
    double tol = 2e-2 * max;
    double worst = 0;
    int bad = -1;
    for (int i = 0; i < want.length; i++) {
      double err = Math.abs((double) got[i] - want[i]);
      worst = Double.isNaN(err) || Double.isNaN(worst) ? Double.NaN : Math.max(worst, err);
      if (!(err <= tol) && bad < 0) {
        bad = i;
      }
    }
    CheckTable.row(op, what, worst, String.format("2e-2 max|ref| (%.1e)", tol), bad < 0);
    int b = bad;
    assertTrue(max > 0, op + " " + what + ": the reference is all zero");
    assertTrue(bad < 0, () -> op + " " + what + ": element " + b + " expected " + want[b] + " got " + got[b]
        + " (tolerance " + tol + ")");
  }
}
