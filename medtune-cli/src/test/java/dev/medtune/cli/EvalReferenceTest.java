package dev.medtune.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.medtune.data.McqQuestion;
import dev.medtune.data.McqReader;
import dev.medtune.data.PromptTemplate;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import java.net.URL;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code medtune eval}'s log-likelihoods and loss against Hugging Face transformers: the fixture
 * of {@code reference/make_eval_fixtures.py} (a small random Llama with GQA and llama3 rope
 * scaling, the tiny tokenizer, and transformers' per-option summed log-probabilities for 20 real
 * MedMCQA dev questions and the completion loss of 5 prepared examples). Token ids must be
 * identical; sums within 1e-4 (relative to their size, at least absolute), mean loss within 1e-5.
 */
class EvalReferenceTest {
  static final ObjectMapper JSON = new ObjectMapper();
  @TempDir Path dir;

  static Path fixture() throws Exception {
    URL u = EvalReferenceTest.class.getResource("/eval/fixture/expected.json");
    assumeTrue(u != null, "no fixture in medtune-cli/src/test/resources/eval/fixture: run"
        + " reference/make_eval_fixtures.py where transformers is installed (see its docstring)");
    return Path.of(u.toURI()).getParent();
  }

  static Path resource(String name) throws Exception {
    return Path.of(EvalReferenceTest.class.getResource("/eval/" + name).toURI());
  }

  @Test
  void tokensAndOptionLogLikelihoodsMatchTransformers() throws Exception {
    Path fx = fixture();
    JsonNode expected = JSON.readTree(fx.resolve("expected.json").toFile());
    Path data = resource(expected.get("questions_file").asText());
    List<McqQuestion> qs = McqReader.read(data, null).questions();
    Path model = fx.resolve("model");
    try (LlamaTokenizer tok = LlamaTokenizer.load(model)) {
      for (int i = 0; i < qs.size(); i++) {
        JsonNode eq = expected.get("questions").get(i);
        assertArrayEquals(ints(eq.get("prompt_ids")),
            tok.encode(PromptTemplate.recipe().prompt(qs.get(i).question()), true), "prompt " + i);
        for (int k = 0; k < 4; k++) {
          JsonNode eo = eq.get("options").get(k);
          assertEquals(eo.get("text").asText(), qs.get(i).options().get(k));
          assertArrayEquals(ints(eo.get("ids")), tok.encode(qs.get(i).options().get(k) + ".", false));
        }
      }
    }
    EvalCommandTest.Run r = EvalCommandTest.run("eval", "--model", model.toString(), "--data",
        data.toString(), "--output", dir.resolve("o").toString(), "--device", "cpu");
    assertEquals(0, r.code(), r.err());
    JsonNode got = JSON.readTree(dir.resolve("o/report.json").toFile()).get("run").get("questions");
    assertEquals(qs.size(), got.size());
    double worst = 0;
    for (int i = 0; i < qs.size(); i++) {
      for (int k = 0; k < 4; k++) {
        double e = expected.get("questions").get(i).get("options").get(k).get("logprob").asDouble();
        double g = got.get(i).get("options").get(k).get("logprob").asDouble();
        assertEquals(e, g, 1e-4 * Math.max(1, Math.abs(e)), "question " + i + " option " + k);
        worst = Math.max(worst, Math.abs(e - g));
      }
    }
    System.out.println("worst |Σ log p - transformers| = " + worst);
  }

  @Test
  void completionLossMatchesTransformers() throws Exception {
    Path fx = fixture();
    JsonNode expected = JSON.readTree(fx.resolve("expected.json").toFile());
    Path data = resource(expected.get("val_file").asText());
    EvalCommandTest.Run r = EvalCommandTest.run("eval", "--model", fx.resolve("model").toString(),
        "--method", "loss", "--data", data.toString(), "--output", dir.resolve("l").toString());
    assertEquals(0, r.code(), r.err());
    JsonNode got = JSON.readTree(dir.resolve("l/report.json").toFile());
    assertEquals(expected.get("counted_tokens").asLong(), got.get("counted_tokens").asLong());
    double e = expected.get("mean_loss").asDouble();
    assertEquals(e, got.get("mean_loss").asDouble(), 1e-5 * Math.max(1, e));
  }

  private static int[] ints(JsonNode a) {
    int[] out = new int[a.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = a.get(i).asInt();
    }
    return out;
  }
}
