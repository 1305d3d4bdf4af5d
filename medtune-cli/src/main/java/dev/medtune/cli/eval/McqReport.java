package dev.medtune.cli.eval;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.medtune.data.McqQuestion;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * The multiple-choice report: accuracy with its 95% Wilson interval (under each choice rule for
 * the log-likelihood method), per-subject accuracy, skipped questions and why, throughput; for two
 * runs on the same questions, both side by side with the paired difference and its interval. As
 * JSON ({@code report.json}) and as a Markdown table ({@code report.md}, also printed).
 */
public final class McqReport {
  static final ObjectMapper JSON = new ObjectMapper();

  private final String data;
  private final McqRun a;
  private final McqRun b;
  private final List<QuestionResult> pairedA = new ArrayList<>();
  private final List<QuestionResult> pairedB = new ArrayList<>();

  /** The report of one run. */
  public McqReport(String data, McqRun run) {
    this(data, run, null);
  }

  /**
   * The report of two runs on the same question list: the comparison counts only questions both
   * scored (a question one of them skipped is listed as skipped for the comparison).
   */
  public McqReport(String data, McqRun a, McqRun b) {
    this.data = data;
    this.a = a;
    this.b = b;
    if (b != null) {
      Map<McqQuestion, QuestionResult> inB = new IdentityHashMap<>();
      b.results().forEach(r -> inB.put(r.question(), r));
      for (QuestionResult ra : a.results()) {
        QuestionResult rb = inB.get(ra.question());
        if (rb != null) {
          pairedA.add(ra);
          pairedB.add(rb);
        }
      }
    }
  }

  /** The rules reported: all three for log-likelihood, the matched option for generate. */
  List<ChoiceRule> rules() {
    return a.method().equals("generate") ? List.of(ChoiceRule.SUM) : List.of(ChoiceRule.values());
  }

  /** The headline rule: the plain summed log-likelihood (or the matched answer). */
  static final ChoiceRule HEADLINE = ChoiceRule.SUM;

  // ------------------------------------------------------------------ JSON

  public ObjectNode json(Map<String, String> provenance) {
    ObjectNode root = JSON.createObjectNode();
    ObjectNode prov = root.putObject("medtune");
    provenance.forEach(prov::put);
    root.put("method", a.method());
    root.put("data", data);
    if (b == null) {
      root.set("run", runJson(a));
    } else {
      root.set("a", runJson(a));
      root.set("b", runJson(b));
      root.set("paired", pairedJson());
    }
    return root;
  }

  private ObjectNode runJson(McqRun run) {
    ObjectNode o = JSON.createObjectNode();
    o.put("model", run.model());
    o.put("device", run.device());
    o.put("questions_scored", run.results().size());
    ObjectNode skipped = o.putObject("skipped");
    skipped.put("count", run.skipped().size());
    ObjectNode reasons = skipped.putObject("reasons");
    reasonCounts(run.skipped()).forEach(reasons::put);
    ArrayNode ids = skipped.putArray("questions");
    run.skipped().forEach(s -> ids.addObject().put("id", s.id()).put("reason", s.reason()));
    ObjectNode acc = o.putObject("accuracy");
    for (ChoiceRule rule : rules()) {
      acc.set(rule.key(), accuracyJson(run.correct(rule), run.results().size()));
    }
    if (run.method().equals("generate")) {
      ObjectNode m = o.putObject("matching");
      for (AnswerMatcher.Kind k : AnswerMatcher.Kind.values()) {
        m.put(k.name().toLowerCase(Locale.ROOT),
            run.results().stream().filter(r -> r.match().kind() == k).count());
      }
    }
    ArrayNode subjects = o.putArray("per_subject");
    bySubject(run.results()).forEach((subject, rs) -> {
      long c = rs.stream().filter(r -> r.correct(HEADLINE)).count();
      ObjectNode s = accuracyJson(c, rs.size());
      s.put("subject", subject);
      subjects.add(s);
    });
    ObjectNode t = o.putObject("throughput");
    t.put("seconds", run.seconds());
    t.put("tokens", run.tokens());
    t.put("tokens_per_s", run.tokens() / run.seconds());
    t.put("questions_per_s", run.results().size() / run.seconds());
    ArrayNode qs = o.putArray("questions");
    for (QuestionResult r : run.results()) {
      ObjectNode q = qs.addObject();
      q.put("id", r.question().id());
      if (r.question().subject() != null) {
        q.put("subject", r.question().subject());
      }
      q.put("answer", r.question().answer());
      q.put("choice", r.choice(HEADLINE));
      q.put("correct", r.correct(HEADLINE));
      if (r.generated() != null) {
        q.put("generated", r.generated());
        q.put("match", r.match().kind().name().toLowerCase(Locale.ROOT));
      } else {
        ArrayNode opts = q.putArray("options");
        for (OptionScore s : r.options()) {
          opts.addObject().put("logprob", s.logprob()).put("tokens", s.tokens())
              .put("chars", s.chars());
        }
      }
    }
    return o;
  }

  private ObjectNode pairedJson() {
    ObjectNode o = JSON.createObjectNode();
    o.put("questions", pairedA.size());
    o.put("method", "mean of per-question differences (B - A) with a normal-approximation 95%"
        + " interval; for 0/1 correctness the Wald interval for dependent proportions"
        + " (Agresti, Categorical Data Analysis, 2002, section 10.1.1)");
    for (ChoiceRule rule : rules()) {
      ObjectNode r = o.putObject(rule.key());
      Statistics.PairedDifference d = Statistics.paired(differences(rule));
      r.put("difference", d.mean());
      r.put("standard_error", d.standardError());
      r.putArray("ci95").add(d.ci95().low()).add(d.ci95().high());
      r.put("only_a_correct", discordant(rule, true));
      r.put("only_b_correct", discordant(rule, false));
    }
    return o;
  }

  private double[] differences(ChoiceRule rule) {
    double[] d = new double[pairedA.size()];
    for (int i = 0; i < d.length; i++) {
      d[i] = (pairedB.get(i).correct(rule) ? 1 : 0) - (pairedA.get(i).correct(rule) ? 1 : 0);
    }
    return d;
  }

  private long discordant(ChoiceRule rule, boolean onlyA) {
    long n = 0;
    for (int i = 0; i < pairedA.size(); i++) {
      boolean ca = pairedA.get(i).correct(rule);
      boolean cb = pairedB.get(i).correct(rule);
      if (onlyA ? ca && !cb : cb && !ca) {
        n++;
      }
    }
    return n;
  }

  private static ObjectNode accuracyJson(long correct, long total) {
    ObjectNode o = JSON.createObjectNode();
    o.put("correct", correct);
    o.put("total", total);
    o.put("accuracy", total == 0 ? Double.NaN : (double) correct / total);
    Statistics.Interval ci = Statistics.wilson95(correct, total);
    o.putArray("ci95").add(ci.low()).add(ci.high());
    o.put("interval", "Wilson score");
    return o;
  }

  static Map<String, Long> reasonCounts(List<Skip> skips) {
    Map<String, Long> m = new TreeMap<>();
    skips.forEach(s -> m.merge(s.reason(), 1L, Long::sum));
    return m;
  }

  /** Results by subject, in first-seen order; empty when no question has a subject. */
  static Map<String, List<QuestionResult>> bySubject(List<QuestionResult> results) {
    Map<String, List<QuestionResult>> m = new LinkedHashMap<>();
    for (QuestionResult r : results) {
      if (r.question().subject() != null) {
        m.computeIfAbsent(r.question().subject(), k -> new ArrayList<>()).add(r);
      }
    }
    return new TreeMap<>(m);
  }

  // ------------------------------------------------------------------ Markdown

  public String markdown() {
    StringBuilder md = new StringBuilder();
    md.append("## medtune eval: ").append(a.method()).append(" on ").append(data).append("\n\n");
    if (b == null) {
      md.append("| measure | value |\n| --- | --- |\n");
      row(md, "model", a.model());
      row(md, "questions scored", scoredLine(a));
      for (ChoiceRule rule : rules()) {
        row(md, accuracyLabel(rule), accuracyCell(a.correct(rule), a.results().size()));
      }
      if (a.method().equals("generate")) {
        row(md, "answers matched exactly / normalised / unmatched", matchLine(a));
      }
      row(md, "tokens/s", fmt("%.1f", a.tokens() / a.seconds()));
      row(md, "questions/s", fmt("%.2f", a.results().size() / a.seconds()));
      row(md, "device", a.device());
    } else {
      md.append("| measure | A | B | B - A (paired, 95% CI) |\n| --- | --- | --- | --- |\n");
      md.append("| model | ").append(cell(a.model())).append(" | ").append(cell(b.model()))
          .append(" |  |\n");
      md.append("| questions scored | ").append(cell(scoredLine(a))).append(" | ")
          .append(cell(scoredLine(b))).append(" | ").append(pairedA.size()).append(" in both |\n");
      for (ChoiceRule rule : rules()) {
        long ca = pairedA.stream().filter(r -> r.correct(rule)).count();
        long cb = pairedB.stream().filter(r -> r.correct(rule)).count();
        Statistics.PairedDifference d = Statistics.paired(differences(rule));
        md.append("| ").append(accuracyLabel(rule)).append(" | ")
            .append(accuracyCell(ca, pairedA.size())).append(" | ")
            .append(accuracyCell(cb, pairedB.size())).append(" | ")
            .append(fmt("%+.1f points [%+.1f, %+.1f]; only A right %d, only B right %d",
                100 * d.mean(), 100 * d.ci95().low(), 100 * d.ci95().high(),
                discordant(rule, true), discordant(rule, false)))
            .append(" |\n");
      }
      if (a.method().equals("generate")) {
        md.append("| answers matched exactly / normalised / unmatched | ").append(matchLine(a))
            .append(" | ").append(matchLine(b)).append(" |  |\n");
      }
      md.append("| tokens/s | ").append(fmt("%.1f", a.tokens() / a.seconds())).append(" | ")
          .append(fmt("%.1f", b.tokens() / b.seconds())).append(" |  |\n");
      md.append("| questions/s | ").append(fmt("%.2f", a.results().size() / a.seconds()))
          .append(" | ").append(fmt("%.2f", b.results().size() / b.seconds())).append(" |  |\n");
    }
    Map<String, List<QuestionResult>> subjects = bySubject(b == null ? a.results() : pairedA);
    if (!subjects.isEmpty()) {
      Map<String, List<QuestionResult>> subjectsB = b == null ? Map.of() : bySubject(pairedB);
      md.append(b == null ? "\n| subject | questions | accuracy | 95% CI |\n| --- | --- | --- | --- |\n"
          : "\n| subject | questions | accuracy A | 95% CI A | accuracy B | 95% CI B |\n"
              + "| --- | --- | --- | --- | --- | --- |\n");
      subjects.forEach((subject, rs) -> {
        md.append("| ").append(cell(subject)).append(" | ").append(rs.size());
        subjectCells(md, rs);
        if (b != null) {
          subjectCells(md, subjectsB.get(subject));
        }
        md.append(" |\n");
      });
    }
    return md.toString();
  }

  private static void subjectCells(StringBuilder md, List<QuestionResult> rs) {
    long c = rs.stream().filter(r -> r.correct(HEADLINE)).count();
    Statistics.Interval ci = Statistics.wilson95(c, rs.size());
    md.append(" | ").append(fmt("%.1f%%", 100.0 * c / rs.size())).append(" | ")
        .append(fmt("%.1f-%.1f%%", 100 * ci.low(), 100 * ci.high()));
  }

  private String accuracyLabel(ChoiceRule rule) {
    return a.method().equals("generate") ? "accuracy (greedy answer matched to an option)"
        : "accuracy (choice by " + rule.label() + ")";
  }

  private static String scoredLine(McqRun run) {
    String s = run.results().size() + " of " + (run.results().size() + run.skipped().size());
    if (run.skipped().isEmpty()) {
      return s;
    }
    StringBuilder why = new StringBuilder();
    reasonCounts(run.skipped()).forEach((reason, n) ->
        why.append(why.isEmpty() ? "" : ", ").append(n).append(" ").append(reason));
    return s + " (skipped: " + why + ")";
  }

  private static String matchLine(McqRun run) {
    long[] n = new long[3];
    run.results().forEach(r -> n[r.match().kind().ordinal()]++);
    return n[0] + " / " + n[1] + " / " + n[2];
  }

  static String accuracyCell(long correct, long total) {
    if (total == 0) {
      return "n/a (no questions)";
    }
    Statistics.Interval ci = Statistics.wilson95(correct, total);
    return fmt("%.1f%% (%d/%d), 95%% CI %.1f-%.1f%%", 100.0 * correct / total, correct, total,
        100 * ci.low(), 100 * ci.high());
  }

  private static void row(StringBuilder md, String k, String v) {
    md.append("| ").append(cell(k)).append(" | ").append(cell(v)).append(" |\n");
  }

  static String cell(String s) {
    return s.replace("|", "\\|").replace("\n", " ");
  }

  static String fmt(String f, Object... args) {
    return String.format(Locale.ROOT, f, args);
  }
}
