package dev.medtune.model.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.KvCache;
import dev.medtune.model.Llama;
import dev.medtune.model.backend.Backend;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Batched, prompt-shared scoring equals the definition computed one sequence at a time (prompt
 * and continuation in one forward pass, log-softmax of its logits), on the engine's Hugging Face
 * fixture models (GQA with llama3 rope scaling in float32; tied bf16). Lives with the CPU backend
 * because it needs one; the scorer itself is in medtune-model.
 */
class ContinuationScorerTest {
  private static final Backend cpu = CpuBackendProvider.create(2);

  @AfterAll
  static void close() {
    cpu.close();
  }

  static Path fixture(String name) throws Exception {
    return Path.of(ContinuationScorerTest.class.getResource("/fixtures/" + name + "/config.json")
        .toURI()).getParent();
  }

  /** Requests like four-option questions: prompts of 5-30 tokens, 1-9 token continuations. */
  static List<ContinuationScorer.Request> requests(int n, int vocab, long seed) {
    Random r = new Random(seed);
    List<ContinuationScorer.Request> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int[] prompt = r.ints(5 + r.nextInt(26), 0, vocab).toArray();
      List<int[]> cs = new ArrayList<>();
      int k = i % 5 == 4 ? 1 : 4; // some with a single continuation (the loss method's shape)
      for (int j = 0; j < k; j++) {
        cs.add(r.ints(1 + r.nextInt(9), 0, vocab).toArray());
      }
      out.add(new ContinuationScorer.Request(prompt, cs));
    }
    return out;
  }

  @ParameterizedTest
  @ValueSource(strings = {"gqa-llama3-untied-f32", "gqa-llama3-tied-bf16"})
  void batchedSharedPrefixEqualsOneSequenceAtATime(String name) throws Exception {
    try (Checkpoint ckpt = Checkpoint.open(fixture(name))) {
      int vocab = ckpt.config().vocabSize();
      List<ContinuationScorer.Request> reqs = requests(13, vocab, 7);

      // one sequence at a time: the definition
      Llama single = new Llama(ckpt, cpu, 64, 16, 48);
      ContinuationScorer reference = new ContinuationScorer(single, single.newCache(1));
      List<double[][]> expected = new ArrayList<>();
      for (ContinuationScorer.Request q : reqs) {
        double[][] lp = new double[q.continuations().size()][];
        for (int k = 0; k < lp.length; k++) {
          lp[k] = reference.scoreOneByOne(q.prompt(), q.continuations().get(k));
        }
        expected.add(lp);
      }

      // batched: limits small enough that the 13 requests take several batches
      Llama batched = new Llama(ckpt, cpu, 96, 64, 48);
      KvCache cache = batched.newCache(12);
      ContinuationScorer scorer = new ContinuationScorer(batched, cache);
      List<double[][]> got = scorer.score(reqs);
      assertEquals(reqs.size(), got.size());
      double worst = 0;
      for (int i = 0; i < reqs.size(); i++) {
        for (int k = 0; k < expected.get(i).length; k++) {
          assertEquals(expected.get(i)[k].length, got.get(i)[k].length);
          for (int t = 0; t < expected.get(i)[k].length; t++) {
            double e = expected.get(i)[k][t];
            assertTrue(e < 0 && Double.isFinite(e));
            worst = Math.max(worst, Math.abs(e - got.get(i)[k][t]));
          }
        }
      }
      // float32 forward; the same math in another batch layout
      assertTrue(worst < 1e-4, name + ": worst token log-prob difference " + worst);

      // each prompt ran once: prompts plus continuations without their last token
      long promptTokens = reqs.stream().mapToLong(q -> q.prompt().length).sum();
      long contTokens = reqs.stream().flatMap(q -> q.continuations().stream())
          .mapToLong(c -> c.length - 1).sum();
      assertEquals(promptTokens + contTokens, scorer.forwardTokens());
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"gqa-llama3-untied-f32"})
  void aRequestThatCannotFitIsRefused(String name) throws Exception {
    try (Checkpoint ckpt = Checkpoint.open(fixture(name))) {
      Llama model = new Llama(ckpt, cpu, 64, 16, 20);
      ContinuationScorer scorer = new ContinuationScorer(model, model.newCache(4));
      var tooLong = new ContinuationScorer.Request(new int[18], List.of(new int[] {1, 2, 3}));
      assertTrue(!scorer.fits(tooLong));
      var e = assertThrows(IllegalArgumentException.class, () -> scorer.score(List.of(tooLong)));
      assertTrue(e.getMessage().startsWith("request 0 (21 tokens, 1 continuations) does not fit"),
          e.getMessage());
    }
  }
}
