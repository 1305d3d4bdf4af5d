package dev.medtune.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.Checkpoint;
import dev.medtune.model.KvCache;
import dev.medtune.model.Llama;
import dev.medtune.model.LoraLlama;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.LoraConfig;
import dev.medtune.model.lora.LoraTarget;
import dev.medtune.model.train.MicroBatch;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The whole LoRA training model on a small random Llama (transformers' fixture
 * {@code gqa-llama3-untied-f32}: 2 layers, GQA 4/2, llama3 rope scaling): its forward against the
 * inference forward, packing against separate rows, and every LoRA gradient direction against
 * finite differences of the float32 loss. The loss is summed over ~20 tokens in double; with
 * {@code h = 3e-3} the central difference has truncation error ~1e-4 (1e-2 was too coarse with dropout and rsLoRA scale 4), so
 * {@code |backward - fd| <= 2e-3 + 2e-2 |fd|}.
 */
class LoraLlamaTest {

  private static final Backend cpu = CpuBackendProvider.create(2);

  @AfterAll
  static void close() {
    cpu.close();
  }

  private static Path fixture() throws Exception {
    return Path.of(LoraLlamaTest.class.getResource("/fixtures/gqa-llama3-untied-f32/config.json").toURI()).getParent();
  }

  /** Row 0 holds two packed examples (5 and 4 tokens), row 1 one example of 6 tokens and padding. */
  static MicroBatch packedBatch() {
    int length = 9;
    int[] ids = {1, 17, 40, 99, 7, 1, 250, 3, 60, /* row 1 */ 1, 5, 8, 13, 21, 34, 0, 0, 0};
    int[] pos = {0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 0, 0, 0};
    int[] seq = {0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, -1, -1, -1};
    int[] tgt = new int[ids.length];
    int counted = 0;
    int real = 0;
    for (int i = 0; i < ids.length; i++) {
      boolean lastOfSeq = i + 1 >= ids.length || seq[i + 1] != seq[i] || (i + 1) % length == 0;
      tgt[i] = seq[i] < 0 || lastOfSeq || pos[i] == 0 ? -100 : ids[i + 1]; // position 0: a prompt token
      if (tgt[i] != -100) {
        counted++;
      }
      if (seq[i] >= 0) {
        real++;
      }
    }
    return new MicroBatch(2, length, ids, tgt, pos, seq, counted, real);
  }

  private static LoraAdapter randomAdapter(Checkpoint ck, LoraConfig cfg, long seed) {
    LoraAdapter a = LoraAdapter.initialize(ck.config(), cfg, seed);
    Random r = new Random(seed);
    for (LoraAdapter.Tensor t : a.tensors()) {
      if (!t.isA()) {
        for (int i = 0; i < t.data().length; i++) {
          t.data()[i] = (float) (r.nextGaussian() * 0.3);
        }
      }
    }
    return a;
  }

  @Test
  void zeroAdapterGivesTheInferenceLogitsAndPackedExamplesDoNotSeeEachOther() throws Exception {
    try (Checkpoint ck = Checkpoint.open(fixture())) {
      LoraConfig cfg = LoraConfig.recipe();
      LoraLlama model = new LoraLlama(ck, cpu, cfg, 32, 16, true);
      model.loadAdapter(LoraAdapter.initialize(ck.config(), cfg, 1)); // B = 0: a no-op
      MicroBatch b = packedBatch();
      float[] got = model.logits(b);
      int vocab = ck.config().vocabSize();
      // the inference model, each sequence on its own
      Llama llama = new Llama(ck, cpu, 16, 16, 16);
      int[][] seqs = {{1, 17, 40, 99, 7}, {1, 250, 3, 60}, {1, 5, 8, 13, 21, 34}};
      int at = 0;
      for (int[] s : seqs) {
        KvCache cache = llama.newCache(1);
        int[] pos = new int[s.length];
        int[] rows = new int[s.length];
        for (int i = 0; i < s.length; i++) {
          pos[i] = i;
          rows[i] = i;
        }
        float[] want = new float[s.length * vocab];
        llama.forward(s, new int[s.length], pos, s.length, cache, rows, s.length, want);
        for (int i = 0; i < want.length; i++) {
          assertEquals(want[i], got[at * vocab + i], 2e-5, "logit " + i + " of sequence at " + at);
        }
        at += s.length;
      }
      assertEquals(at, model.rows());
    }
  }

  @Test
  void loraGradientsMatchFiniteDifferencesWithAndWithoutCheckpointingAndDropout() throws Exception {
    try (Checkpoint ck = Checkpoint.open(fixture())) {
      for (double dropout : new double[] {0, 0.25}) {
        LoraConfig cfg = new LoraConfig(4, 8, dropout, List.of(LoraTarget.values()), dropout > 0);
        LoraAdapter adapter = randomAdapter(ck, cfg, 11);
        MicroBatch b = packedBatch();
        float gradScale = 1f / b.countedTokens();
        long seed = 99;
        float[][] grads = null;
        for (boolean checkpointing : new boolean[] {true, false}) {
          LoraLlama model = new LoraLlama(ck, cpu, cfg, 32, 16, checkpointing);
          model.loadAdapter(adapter);
          model.zeroGradients();
          model.forwardBackward(b, gradScale, seed);
          float[][] g = gradients(model, ck, cfg);
          if (grads == null) {
            grads = g;
          } else {
            for (int i = 0; i < g.length; i++) {
              assertArrayEquals(grads[i], g[i], "checkpointing changes no gradient bit, tensor " + i);
            }
          }
        }
        // finite differences on the loss with the same dropout masks
        LoraLlama model = new LoraLlama(ck, cpu, cfg, 32, 16, true);
        Random pick = new Random(5);
        List<LoraAdapter.Tensor> ts = adapter.tensors();
        int checked = 0;
        for (int trial = 0; trial < 40; trial++) {
          int ti = pick.nextInt(ts.size());
          float[] d = ts.get(ti).data();
          int i = pick.nextInt(d.length);
          float keep = d[i];
          double h = 3e-3;
          d[i] = (float) (keep + h);
          double up = lossWithDropout(model, adapter, b, seed) * gradScale;
          d[i] = (float) (keep - h);
          double down = lossWithDropout(model, adapter, b, seed) * gradScale;
          d[i] = keep;
          double fd = (up - down) / (2 * h);
          double got = grads[ti][i];
          assertTrue(Math.abs(got - fd) <= 2e-3 + 2e-2 * Math.abs(fd),
              "dropout " + dropout + ", " + ts.get(ti).name() + "[" + i + "]: backward " + got + ", fd " + fd);
          if (Math.abs(fd) > 1e-2) {
            checked++;
          }
        }
        assertTrue(checked >= 10, "only " + checked + " sizeable gradients checked");
      }
    }
  }

  /**
   * The loss head's chunk (the backend's {@code preferredLossChunkFloats}) changes neither the
   * loss nor the gradients beyond float rounding: 3-row chunks (5 lm_head products for the 15
   * tokens, the last one partial) against one chunk of every row. The gradient norm (one
   * {@code squaredNorm} over every gradient) equals the norm of the gradients read back.
   */
  @Test
  void lossAndGradientsDoNotDependOnTheLossChunk() throws Exception {
    CpuBackend backend = (CpuBackend) cpu;
    try (Checkpoint ck = Checkpoint.open(fixture())) {
      LoraConfig cfg = new LoraConfig(4, 8, 0.1, List.of(LoraTarget.values()), false);
      LoraAdapter adapter = randomAdapter(ck, cfg, 21);
      MicroBatch b = packedBatch();
      float gradScale = 1f / b.countedTokens();
      int vocab = ck.config().vocabSize();
      double[] loss = new double[2];
      double[] norm = new double[2];
      float[][][] grads = new float[2][][];
      int[] chunkRows = new int[2];
      long[] floats = {3L * vocab, 1L << 25};
      try {
        for (int i = 0; i < 2; i++) {
          backend.lossChunkFloats(floats[i]);
          LoraLlama model = new LoraLlama(ck, cpu, cfg, 32, 16, true);
          chunkRows[i] = model.lossChunkRows();
          model.loadAdapter(adapter);
          model.zeroGradients();
          loss[i] = model.forwardBackward(b, gradScale, 5);
          norm[i] = model.gradientNorm();
          grads[i] = gradients(model, ck, cfg);
        }
      } finally {
        backend.lossChunkFloats(1L << 25);
      }
      assertEquals(3, chunkRows[0]);
      assertEquals(32, chunkRows[1]);
      assertTrue(loss[0] > 1, "a real loss, found " + loss[0]);
      assertEquals(loss[1], loss[0], 1e-6 * loss[1], "summed loss, 3-row chunks against one chunk");
      double sq = 0;
      double diff = 0;
      for (int t = 0; t < grads[0].length; t++) {
        for (int j = 0; j < grads[0][t].length; j++) {
          sq += (double) grads[1][t][j] * grads[1][t][j];
          diff = Math.max(diff, Math.abs(grads[0][t][j] - grads[1][t][j]));
          assertEquals(grads[1][t][j], grads[0][t][j], 1e-6 + 1e-4 * Math.abs(grads[1][t][j]),
              "gradient " + t + "[" + j + "]");
        }
      }
      assertTrue(sq > 0, "some gradient is non-zero");
      assertEquals(Math.sqrt(sq), norm[1], 1e-9 * Math.sqrt(sq), "gradientNorm against the gradients read back");
      assertEquals(norm[1], norm[0], 1e-5 * norm[1]);
    }
  }

  /** The training loss (dropout on, same seed) without keeping the gradient: a step with scale 0. */
  private static double lossWithDropout(LoraLlama model, LoraAdapter adapter, MicroBatch b, long seed) {
    model.loadAdapter(adapter);
    return model.forwardBackward(b, 0f, seed);
  }

  /** The gradients in {@link LoraAdapter#tensors()} order and layout (B as [out, r]). */
  private static float[][] gradients(LoraLlama model, Checkpoint ck, LoraConfig cfg) {
    // the gradients leave the device through an AdamW-free path: a step of SGD with lr 1 on a zero adapter
    LoraAdapter zero = LoraAdapter.zeros(ck.config(), cfg);
    LoraAdapter before = LoraAdapter.zeros(ck.config(), cfg);
    model.storeAdapter(before);
    model.loadAdapter(zero);
    // p = p*decay - stepSize * m / (sqrt(v)/bc + eps) with m = g, v = g^2, bc = 1, eps = 0 gives -sign(g);
    // to read g itself, use the moments: one AdamW step with beta1 = 0 leaves m = g
    List<float[]> m = new ArrayList<>();
    List<float[]> v = new ArrayList<>();
    for (LoraAdapter.Tensor t : zero.tensors()) {
      m.add(new float[t.data().length]);
      v.add(new float[t.data().length]);
    }
    model.transferMoments(m, v, true);
    model.adamwStep(1f, 1f, 0f, 1f, 0f, 1f, 1f);
    model.transferMoments(m, v, false);
    model.loadAdapter(before);
    return m.toArray(new float[0][]);
  }
}
