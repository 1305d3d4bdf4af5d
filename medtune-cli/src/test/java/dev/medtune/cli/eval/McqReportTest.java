package dev.medtune.cli.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.medtune.data.McqQuestion;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class McqReportTest {
  @TempDir Path dir;

  static McqQuestion q(int i, String subject) {
    return new McqQuestion("q" + i, "question " + i, List.of("w", "x", "y", "z"), i % 4, subject);
  }

  /** Scores that make the sum rule choose {@code choice}, the per-char rule option 3. */
  static QuestionResult chose(McqQuestion q, int choice) {
    List<OptionScore> s = new ArrayList<>();
    for (int k = 0; k < 4; k++) {
      // option 3 is long: lowest sum, best per character, unless it is the sum's choice
      s.add(k == choice ? new OptionScore(-1, 1, 2)
          : k == 3 ? new OptionScore(-5, 10, 100) : new OptionScore(-3, 1, 2));
    }
    return QuestionResult.loglik(q, s);
  }

  @Test
  void singleRunAccuracySubjectsAndSkips() throws Exception {
    List<QuestionResult> rs = new ArrayList<>();
    // 10 questions: 6 Anatomy (4 right), 4 Physiology (1 right) -> 5/10 under the sum rule
    for (int i = 0; i < 10; i++) {
      McqQuestion q = q(i, i < 6 ? "Anatomy" : "Physiology");
      boolean right = i < 4 || i == 6;
      rs.add(chose(q, right ? q.answer() : (q.answer() + 1) % 4));
    }
    McqRun run = new McqRun("m", "loglik", rs,
        List.of(new Skip("q10", "longer than the context (64 tokens)"),
            new Skip("q11", "longer than the context (64 tokens)")), 1000, 2.0, "cpu");
    McqReport report = new McqReport("d.jsonl", run);
    ObjectNode json = report.json(Map.of("version", "test"));
    JsonNode r = json.get("run");
    assertEquals(10, r.get("questions_scored").asInt());
    assertEquals(2, r.get("skipped").get("count").asInt());
    assertEquals(2, r.get("skipped").get("reasons").get("longer than the context (64 tokens)").asInt());
    JsonNode sum = r.get("accuracy").get("sum");
    assertEquals(5, sum.get("correct").asInt());
    assertEquals(0.5, sum.get("accuracy").asDouble());
    assertEquals(Statistics.wilson95(5, 10).low(), sum.get("ci95").get(0).asDouble(), 1e-15);
    // per character, option 3 (-0.05/char) beats the rest (-0.5/char): right when the answer is 3
    long answer3 = rs.stream().filter(x -> x.question().answer() == 3).count();
    assertEquals(answer3, r.get("accuracy").get("per_char").get("correct").asLong());
    JsonNode subj = r.get("per_subject");
    assertEquals("Anatomy", subj.get(0).get("subject").asText());
    assertEquals(4, subj.get(0).get("correct").asInt());
    assertEquals(6, subj.get(0).get("total").asInt());
    assertEquals(1, subj.get(1).get("correct").asInt());
    assertEquals(500.0, r.get("throughput").get("tokens_per_s").asDouble());
    assertEquals(5.0, r.get("throughput").get("questions_per_s").asDouble());
    String md = report.markdown();
    assertTrue(md.contains("| questions scored | 10 of 12 (skipped: 2 longer than the context (64 tokens)) |"), md);
    assertTrue(md.contains("| accuracy (choice by Σ log p) | 50.0% (5/10), 95% CI 23.7-76.3% |"), md);
    assertTrue(md.contains("| Anatomy | 6 | 66.7% |"), md);

    ReportFiles.checkWritable(dir.resolve("out"), false);
    ReportFiles.write(dir.resolve("out"), json, md);
    assertEquals(md, Files.readString(dir.resolve("out/report.md")));
    assertEquals(json.toString(), McqReport.JSON.readTree(dir.resolve("out/report.json").toFile()).toString());
    var e = assertThrows(IllegalArgumentException.class,
        () -> ReportFiles.checkWritable(dir.resolve("out"), false));
    assertEquals(dir.resolve("out/report.json") + ": already exists (pass --overwrite to replace it)",
        e.getMessage());
    ReportFiles.checkWritable(dir.resolve("out"), true);
    try (var files = Files.list(dir.resolve("out"))) {
      assertEquals(2, files.count()); // no temporary files left
    }
  }

  @Test
  void pairedComparisonOnlyCountsQuestionsBothScored() {
    List<McqQuestion> qs = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      qs.add(q(i, null));
    }
    // A right on 0..3, B right on 2..6; B skipped question 7
    List<QuestionResult> ra = new ArrayList<>();
    List<QuestionResult> rb = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      McqQuestion q = qs.get(i);
      ra.add(chose(q, i < 4 ? q.answer() : (q.answer() + 1) % 4));
      if (i < 7) {
        rb.add(chose(q, i >= 2 ? q.answer() : (q.answer() + 1) % 4));
      }
    }
    McqRun a = new McqRun("base", "loglik", ra, List.of(), 10, 1, "cpu");
    McqRun b = new McqRun("tuned", "loglik", rb, List.of(new Skip("q7", "longer than the context")),
        10, 1, "cpu");
    JsonNode p = new McqReport("d", a, b).json(Map.of()).get("paired");
    assertEquals(7, p.get("questions").asInt());
    JsonNode sum = p.get("sum");
    // d = B - A over q0..q6: q0,q1 -1; q2,q3 0; q4,q5,q6 +1 -> mean 1/7
    assertEquals(1.0 / 7, sum.get("difference").asDouble(), 1e-15);
    assertEquals(Statistics.paired(new double[] {-1, -1, 0, 0, 1, 1, 1}).standardError(),
        sum.get("standard_error").asDouble(), 1e-15);
    assertEquals(2, sum.get("only_a_correct").asInt());
    assertEquals(3, sum.get("only_b_correct").asInt());
    String md = new McqReport("d", a, b).markdown();
    assertTrue(md.contains("| 7 in both |"), md);
    assertTrue(md.contains("57.1% (4/7)"), md); // A on the shared 7
    assertFalse(md.contains("| subject |"), md); // no subjects known
  }

  @Test
  void comparisonPerSubjectShowsBothOnTheSharedQuestions() {
    List<QuestionResult> ra = new ArrayList<>();
    List<QuestionResult> rb = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      McqQuestion q = q(i, i < 2 ? "Anatomy" : "Surgery");
      ra.add(chose(q, q.answer()));                              // A right on all 4
      rb.add(chose(q, i == 0 ? q.answer() : (q.answer() + 1) % 4)); // B right on q0 only
    }
    String md = new McqReport("d", new McqRun("a", "loglik", ra, List.of(), 1, 1, "cpu"),
        new McqRun("b", "loglik", rb, List.of(), 1, 1, "cpu")).markdown();
    assertTrue(md.contains("| subject | questions | accuracy A | 95% CI A | accuracy B | 95% CI B |"), md);
    assertTrue(md.contains("| Anatomy | 2 | 100.0% | 34.2-100.0% | 50.0% | 9.5-90.5% |"), md);
    assertTrue(md.contains("| Surgery | 2 | 100.0% | 34.2-100.0% | 0.0% | 0.0-65.8% |"), md);
  }
}
