package dev.medtune.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Generator;
import dev.medtune.model.KvCache;
import dev.medtune.model.Llama;
import dev.medtune.model.Sampler;
import dev.medtune.model.backend.Backend;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The whole model against Hugging Face transformers: the fixtures of
 * {@code reference/make_llama_fixtures.py} (random Llama models with GQA, llama3 rope scaling,
 * tied and untied embeddings, bf16 and f16 weights) with transformers' float32 logits at every
 * prompt position and its greedy continuations. Logits must match to 1e-4 max absolute error;
 * continuations must be identical.
 */
class LlamaReferenceTest {

  private static final Backend cpu = CpuBackendProvider.create(2);
  private static final double TOLERANCE = 1e-4;

  @AfterAll
  static void close() {
    cpu.close();
  }

  private static Path fixture(String name) throws URISyntaxException {
    return Path.of(LlamaReferenceTest.class.getResource("/fixtures/" + name + "/config.json").toURI()).getParent();
  }

  private static List<int[]> intLists(JsonNode node) {
    List<int[]> out = new ArrayList<>();
    for (JsonNode row : node) {
      int[] ids = new int[row.size()];
      for (int i = 0; i < ids.length; i++) {
        ids[i] = row.get(i).asInt();
      }
      out.add(ids);
    }
    return out;
  }

  @ParameterizedTest
  @ValueSource(strings = {"gqa-llama3-untied-f32", "mha-tied-f32", "gqa-llama3-tied-bf16", "mqa-headdim-untied-f16"})
  void logitsMatchTransformersForABatchOfPromptsAndForChunkedPrefill(String name) throws Exception {
    Path dir = fixture(name);
    JsonNode expected = new ObjectMapper().readTree(dir.resolve("expected.json").toFile());
    List<int[]> prompts = intLists(expected.get("prompts"));
    try (Checkpoint ckpt = Checkpoint.open(dir)) {
      int vocab = ckpt.config().vocabSize();
      int total = prompts.stream().mapToInt(p -> p.length).sum();

      // all prompts in one pass, each in its own cache slot
      Llama model = new Llama(ckpt, cpu, total, total, 48);
      KvCache cache = model.newCache(prompts.size());
      int[] tokens = new int[total], slots = new int[total], positions = new int[total], rows = new int[total];
      int r = 0;
      for (int p = 0; p < prompts.size(); p++) {
        for (int i = 0; i < prompts.get(p).length; i++, r++) {
          tokens[r] = prompts.get(p)[i];
          slots[r] = p;
          positions[r] = i;
          rows[r] = r;
        }
      }
      float[] logits = new float[total * vocab];
      model.forward(tokens, slots, positions, total, cache, rows, total, logits);
      double batchErr = compareBatch(expected.get("logits"), prompts, logits, vocab);

      // each prompt alone, in passes of 4 tokens against the cache (chunked prefill)
      Llama chunked = new Llama(ckpt, cpu, 4, 4, 48);
      KvCache cache2 = chunked.newCache(1);
      double chunkErr = 0;
      for (int p = 0; p < prompts.size(); p++) {
        int[] prompt = prompts.get(p);
        float[] out = new float[prompt.length * vocab];
        float[] part = new float[4 * vocab];
        for (int s = 0; s < prompt.length; s += 4) {
          int n = Math.min(4, prompt.length - s);
          int[] t = new int[n], sl = new int[n], pos = new int[n], lr = new int[n];
          for (int i = 0; i < n; i++) {
            t[i] = prompt[s + i];
            pos[i] = s + i;
            lr[i] = i;
          }
          chunked.forward(t, sl, pos, n, cache2, lr, n, part);
          System.arraycopy(part, 0, out, s * vocab, n * vocab);
        }
        chunkErr = Math.max(chunkErr, compare(expected.get("logits").get(p), prompt.length, out, vocab, name + " prompt " + p));
      }
      System.out.printf("%s: max |logit - transformers| batch %.2e, chunked %.2e%n", name, batchErr, chunkErr);
    }
  }

  private static double compareBatch(JsonNode expectedLogits, List<int[]> prompts, float[] logits, int vocab) {
    double worst = 0;
    int row = 0;
    for (int p = 0; p < prompts.size(); p++) {
      float[] slice = new float[prompts.get(p).length * vocab];
      System.arraycopy(logits, row * vocab, slice, 0, slice.length);
      worst = Math.max(worst, compare(expectedLogits.get(p), prompts.get(p).length, slice, vocab, "prompt " + p));
      row += prompts.get(p).length;
    }
    return worst;
  }

  private static double compare(JsonNode expected, int rows, float[] logits, int vocab, String what) {
    assertEquals(rows, expected.size(), what + ": rows of expected logits");
    double worst = 0;
    for (int t = 0; t < rows; t++) {
      JsonNode row = expected.get(t);
      assertEquals(vocab, row.size());
      for (int i = 0; i < vocab; i++) {
        double err = Math.abs(row.get(i).asDouble() - logits[t * vocab + i]);
        worst = Math.max(worst, err);
        assertTrue(err <= TOLERANCE, what + " position " + t + " token " + i + ": expected "
            + row.get(i).asDouble() + ", got " + logits[t * vocab + i]);
      }
    }
    return worst;
  }

  @ParameterizedTest
  @ValueSource(strings = {"gqa-llama3-untied-f32", "mha-tied-f32", "gqa-llama3-tied-bf16", "mqa-headdim-untied-f16"})
  void greedyContinuationsAreIdenticalToTransformersGenerate(String name) throws Exception {
    Path dir = fixture(name);
    JsonNode expected = new ObjectMapper().readTree(dir.resolve("expected.json").toFile());
    List<int[]> prompts = intLists(expected.get("prompts"));
    int maxNew = expected.get("max_new_tokens").asInt();
    try (Checkpoint ckpt = Checkpoint.open(dir)) {
      // 5 rows per pass: prompts are split across and packed into prefill passes
      Llama model = new Llama(ckpt, cpu, 5, prompts.size(), 48);
      Generator generator = new Generator(model, model.newCache(prompts.size()));
      List<String> streamed = new ArrayList<>();
      Generator.Result greedy = generator.generate(prompts, Sampler.Params.greedy(), maxNew,
          (p, token, eos) -> streamed.add(p + ":" + token));
      List<int[]> want = intLists(expected.get("greedy"));
      for (int p = 0; p < prompts.size(); p++) {
        assertArrayEquals(want.get(p), greedy.tokens().get(p), name + " greedy, prompt " + p);
      }
      assertEquals(want.stream().mapToInt(a -> a.length).sum(), streamed.size(), "every token streamed");

      double penalty = expected.get("repetition_penalty").asDouble();
      Generator.Result rep = generator.generate(prompts, new Sampler.Params(0, 0, 1, penalty, 0), maxNew,
          (p, token, eos) -> {});
      List<int[]> wantRep = intLists(expected.get("greedy_repetition_penalty"));
      for (int p = 0; p < prompts.size(); p++) {
        assertArrayEquals(wantRep.get(p), rep.tokens().get(p), name + " repetition penalty, prompt " + p);
      }
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"mqa-headdim-untied-f16"})
  void contextOverflowIsAClearError(String name) throws Exception {
    try (Checkpoint ckpt = Checkpoint.open(fixture(name))) {
      // max_position_embeddings is 64 for this fixture
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> new Llama(ckpt, cpu, 4, 1, 65));
      assertTrue(e.getMessage().contains("max_position_embeddings"), e.getMessage());
      Llama model = new Llama(ckpt, cpu, 4, 1, 64);
      Generator generator = new Generator(model, model.newCache(1));
      e = assertThrows(IllegalArgumentException.class,
          () -> generator.generate(List.of(new int[60]), Sampler.Params.greedy(), 5, (p, t, eos) -> {}));
      assertTrue(e.getMessage().contains("60 tokens + 5 new tokens = 65 exceeds the model's context of 64"),
          e.getMessage());
    }
  }
}
