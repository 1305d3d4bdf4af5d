package dev.medtune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.data.McqQuestion;
import dev.medtune.data.McqReader;
import dev.medtune.data.PromptTemplate;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Llama;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.eval.ContinuationScorer;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import dev.medtune.model.train.LossOn;
import dev.medtune.model.train.SftExample;
import dev.medtune.model.train.TokenizedExample;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code medtune eval} end to end on models {@code init-model --preset tiny} writes and real
 * MedMCQA questions: the report against the definition computed independently (one sequence at a
 * time through the engine), skipping beyond the context, bad input, comparison, loss.
 */
class EvalCommandTest {
  @TempDir static Path models;
  @TempDir Path dir;

  static Path tiny;
  static Path tiny2;
  static Path shortContext;
  static final ObjectMapper JSON = new ObjectMapper();

  record Run(int code, String out, String err) {}

  static Run run(String... args) {
    PrintStream oldOut = System.out;
    PrintStream oldErr = System.err;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    try {
      System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
      System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
      int code = Main.execute(args);
      return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    } finally {
      System.setOut(oldOut);
      System.setErr(oldErr);
    }
  }

  static Path resource(String name) throws Exception {
    return Path.of(EvalCommandTest.class.getResource("/eval/" + name).toURI());
  }

  @BeforeAll
  static void makeModels() throws Exception {
    tiny = models.resolve("tiny");
    tiny2 = models.resolve("tiny2");
    assertEquals(0, run("init-model", "--preset", "tiny", "--output", tiny.toString()).code());
    assertEquals(0, run("init-model", "--preset", "tiny", "--seed", "1", "--output",
        tiny2.toString()).code());
    // the same model with a 256-token context, to see questions skipped for length
    shortContext = models.resolve("tiny-ctx256");
    Files.createDirectories(shortContext);
    try (var files = Files.list(tiny)) {
      for (Path f : files.toList()) {
        Files.copy(f, shortContext.resolve(f.getFileName()));
      }
    }
    ObjectNode cfg = (ObjectNode) JSON.readTree(shortContext.resolve("config.json").toFile());
    cfg.put("max_position_embeddings", 256);
    JSON.writerWithDefaultPrettyPrinter().writeValue(shortContext.resolve("config.json").toFile(), cfg);
  }

  @Test
  void loglikReportMatchesTheOneSequenceDefinition() throws Exception {
    Path data = resource("dev-choices-20.jsonl");
    Path out = dir.resolve("report");
    Run r = run("eval", "--model", tiny.toString(), "--data", data.toString(), "--output",
        out.toString(), "--device", "cpu");
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains("| questions scored | 20 of 20 |"), r.out());
    assertEquals(r.out(), Files.readString(out.resolve("report.md")));
    JsonNode run = JSON.readTree(out.resolve("report.json").toFile()).get("run");
    assertEquals(20, run.get("questions_scored").asInt());
    assertEquals(0, run.get("skipped").get("count").asInt());

    List<McqQuestion> qs = McqReader.read(data, null).questions();
    int correct = 0;
    try (Checkpoint ckpt = Checkpoint.open(tiny); LlamaTokenizer tok = LlamaTokenizer.load(tiny);
        Backend cpu = CpuBackendProvider.create(2)) {
      Llama model = new Llama(ckpt, cpu, 512, 64, 512);
      ContinuationScorer oneByOne = new ContinuationScorer(model, model.newCache(1));
      for (int i = 0; i < qs.size(); i++) {
        McqQuestion q = qs.get(i);
        JsonNode jq = run.get("questions").get(i);
        assertEquals(q.id(), jq.get("id").asText());
        int[] prompt = tok.encode(PromptTemplate.recipe().prompt(q.question()), true);
        assertEquals(ckpt.config().bosTokenId(), prompt[0]);
        int best = 0;
        double[] sums = new double[4];
        for (int k = 0; k < 4; k++) {
          String cont = q.options().get(k) + ".";
          int[] ids = tok.encode(cont, false);
          sums[k] = Arrays.stream(oneByOne.scoreOneByOne(prompt, ids)).sum();
          JsonNode opt = jq.get("options").get(k);
          assertEquals(sums[k], opt.get("logprob").asDouble(), 1e-4 * Math.max(1, Math.abs(sums[k])),
              q.id() + " option " + k);
          assertEquals(ids.length, opt.get("tokens").asInt());
          assertEquals(cont.codePointCount(0, cont.length()), opt.get("chars").asInt());
          if (sums[k] > sums[best]) {
            best = k;
          }
        }
        assertEquals(best, jq.get("choice").asInt(), q.id());
        correct += best == q.answer() ? 1 : 0;
      }
    }
    assertEquals(correct, run.get("accuracy").get("sum").get("correct").asInt());
  }

  @Test
  void medMcqaCsvGivesPerSubjectAccuracy() throws Exception {
    Run r = run("eval", "--model", tiny.toString(), "--data",
        resource("validation-12.csv").toString(), "--output", dir.resolve("o").toString());
    assertEquals(0, r.code(), r.err());
    JsonNode run = JSON.readTree(dir.resolve("o/report.json").toFile()).get("run");
    assertEquals(12, run.get("questions_scored").asInt());
    JsonNode subjects = run.get("per_subject");
    assertEquals(7, subjects.size());
    int total = 0;
    for (JsonNode s : subjects) {
      total += s.get("total").asInt();
    }
    assertEquals(12, total);
    assertTrue(r.out().contains("| Medicine | 4 |"), r.out());
  }

  @Test
  void aQuestionLongerThanTheContextIsSkippedAndCounted() throws Exception {
    List<String> lines = Files.readAllLines(resource("dev-choices-20.jsonl"));
    ObjectNode longOne = (ObjectNode) JSON.readTree(lines.get(2));
    longOne.put("question", longOne.get("question").asText().repeat(8));
    Path data = dir.resolve("with-long.jsonl");
    Files.writeString(data, lines.get(0) + "\n" + lines.get(1) + "\n" + JSON.writeValueAsString(longOne)
        + "\n" + lines.get(3) + "\n");
    Run r = run("eval", "--model", shortContext.toString(), "--data", data.toString(), "--output",
        dir.resolve("o").toString());
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().contains(
        "| questions scored | 3 of 4 (skipped: 1 longer than the context (256 tokens)) |"), r.out());
    JsonNode skipped = JSON.readTree(dir.resolve("o/report.json").toFile()).get("run").get("skipped");
    assertEquals(1, skipped.get("count").asInt());
    assertEquals("with-long.jsonl:3", skipped.get("questions").get(0).get("id").asText());
  }

  @Test
  void badInput() throws Exception {
    Path empty = dir.resolve("empty.jsonl");
    Files.writeString(empty, "");
    Run r = run("eval", "--model", tiny.toString(), "--data", empty.toString());
    assertEquals(1, r.code());
    assertEquals("medtune: " + empty + ": no questions (the file is empty)\n", r.err());

    // a record whose answer is out of range is counted as skipped, with why; the rest are scored
    List<String> lines = Files.readAllLines(resource("dev-choices-20.jsonl"));
    Path bad = dir.resolve("bad.jsonl");
    Files.writeString(bad, lines.get(0) + "\n" + lines.get(1).replace("\"answer\": 0", "\"answer\": 9")
        + "\n" + lines.get(2).replace("\"choices\"", "\"options\"") + "\n");
    r = run("eval", "--model", tiny.toString(), "--data", bad.toString(), "--output",
        dir.resolve("o").toString());
    assertEquals(0, r.code(), r.err());
    assertTrue(r.err().startsWith("medtune: 2 record(s) of " + bad + " are not usable questions"),
        r.err());
    JsonNode reasons = JSON.readTree(dir.resolve("o/report.json").toFile()).get("run")
        .get("skipped").get("reasons");
    assertEquals(1, reasons.get("not a usable question: answer 9 is out of range (expected 0 to 3)")
        .asInt(), reasons.toString());
    assertTrue(r.out().contains("| questions scored | 1 of 3 (skipped: "), r.out());

    // an existing report is kept unless --overwrite
    String before = Files.readString(dir.resolve("o/report.json"));
    r = run("eval", "--model", tiny.toString(), "--data", bad.toString(), "--output",
        dir.resolve("o").toString());
    assertEquals(1, r.code());
    assertEquals("medtune: " + dir.resolve("o/report.json")
        + ": already exists (pass --overwrite to replace it)\n", r.err());
    assertEquals(before, Files.readString(dir.resolve("o/report.json")));

    r = run("eval", "--model", dir.resolve("nope").toString(), "--data",
        resource("dev-choices-20.jsonl").toString());
    assertEquals(1, r.code());
    assertTrue(r.err().startsWith("medtune: " + dir.resolve("nope") + ": not a model folder"), r.err());
    assertEquals(1, r.err().lines().count());

    Path data = resource("dev-choices-20.jsonl");
    assertEquals(2, run("eval", "--model", tiny.toString(), "--data", data.toString(),
        "--method", "vibes").code());
    assertEquals(2, run("eval", "--model", tiny.toString(), "--data", data.toString(),
        "--limit", "0").code());
    r = run("eval", "--model", tiny.toString(), "--data", data.toString(), "--method", "loss",
        "--compare", tiny2.toString());
    assertEquals(2, r.code());
    assertTrue(r.err().startsWith("medtune: --compare works with --method loglik or generate"), r.err());
  }

  @Test
  void help() {
    Run r = run("eval", "--help");
    assertEquals(0, r.code());
    assertTrue(r.out().contains("Usage: medtune eval"), r.out());
    assertTrue(r.out().contains("95% Wilson"), r.out());
    assertEquals("", r.err()); // no picocli format warnings
  }

  @Test
  void compareIsPairedOnTheSameQuestions() throws Exception {
    Run r = run("eval", "--model", tiny.toString(), "--compare", tiny2.toString(), "--data",
        resource("dev-choices-20.jsonl").toString(), "--limit", "10", "--output",
        dir.resolve("c").toString());
    assertEquals(0, r.code(), r.err());
    JsonNode root = JSON.readTree(dir.resolve("c/report.json").toFile());
    JsonNode p = root.get("paired");
    assertEquals(10, p.get("questions").asInt());
    int ca = root.get("a").get("accuracy").get("sum").get("correct").asInt();
    int cb = root.get("b").get("accuracy").get("sum").get("correct").asInt();
    assertEquals((cb - ca) / 10.0, p.get("sum").get("difference").asDouble(), 1e-12);
    assertEquals(cb - ca, p.get("sum").get("only_b_correct").asInt()
        - p.get("sum").get("only_a_correct").asInt());
    assertTrue(r.out().contains("| 10 in both |"), r.out());
  }

  /**
   * The loss is training's: {@code TokenizedExample} with completion masking; the expected value
   * here sums -log p over its non-ignored targets from one forward pass of the whole sequence.
   */
  @Test
  void lossIsTrainingsCompletionMaskedMean() throws Exception {
    Path data = resource("val-5.jsonl");
    Run r = run("eval", "--model", tiny.toString(), "--method", "loss", "--data", data.toString(),
        "--output", dir.resolve("l").toString());
    assertEquals(0, r.code(), r.err());
    JsonNode rep = JSON.readTree(dir.resolve("l/report.json").toFile());
    double nll = 0;
    long counted = 0;
    try (Checkpoint ckpt = Checkpoint.open(tiny); LlamaTokenizer tok = LlamaTokenizer.load(tiny);
        Backend cpu = CpuBackendProvider.create(2)) {
      Llama model = new Llama(ckpt, cpu, 512, 512, 512);
      ContinuationScorer oneByOne = new ContinuationScorer(model, model.newCache(1));
      assertEquals(tok.tokenId("<|end_of_text|>"), tok.eosId());
      for (SftExample ex : SftExample.readJsonl(data, LossOn.COMPLETION)) {
        TokenizedExample t = TokenizedExample.of(ex, tok::encode, tok.bosId(), tok.eosId(),
            LossOn.COMPLETION, 4096);
        int[] ids = t.tokens();
        // log p(ids[i] | ids[<i]) for i >= 1, one pass over the whole sequence
        double[] lp = oneByOne.scoreOneByOne(new int[] {ids[0]}, Arrays.copyOfRange(ids, 1, ids.length));
        for (int i = 0; i + 1 < ids.length; i++) {
          if (t.targets()[i] != TokenizedExample.IGNORE) {
            nll -= lp[i];
            counted++;
          }
        }
        // completion masking: the counted tokens decode to the completion, then EOS
        int[] countedIds = Arrays.stream(t.targets()).filter(x -> x != TokenizedExample.IGNORE).toArray();
        assertEquals(ex.completion() + "<|end_of_text|>", tok.decode(countedIds));
      }
    }
    assertEquals(counted, rep.get("counted_tokens").asLong());
    assertEquals(nll / counted, rep.get("mean_loss").asDouble(), 1e-5);
    assertEquals(Math.exp(nll / counted), rep.get("perplexity").asDouble(), 1e-3);
  }

  @Test
  void generateMatchesGreedyAnswers() throws Exception {
    Run r = run("eval", "--model", tiny.toString(), "--method", "generate", "--max-new-tokens", "6",
        "--data", resource("dev-choices-20.jsonl").toString(), "--limit", "3", "--output",
        dir.resolve("g").toString());
    assertEquals(0, r.code(), r.err());
    JsonNode run = JSON.readTree(dir.resolve("g/report.json").toFile()).get("run");
    JsonNode m = run.get("matching");
    assertEquals(3, m.get("exact").asInt() + m.get("normalised").asInt() + m.get("unmatched").asInt());
    for (JsonNode q : run.get("questions")) {
      assertTrue(q.has("generated"));
      assertEquals(q.get("choice").asInt() == q.get("answer").asInt(), q.get("correct").asBoolean());
    }
  }
}
