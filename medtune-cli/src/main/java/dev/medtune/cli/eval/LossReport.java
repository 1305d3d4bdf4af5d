package dev.medtune.cli.eval;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Map;

/** The report of the loss method: mean loss per counted token and perplexity. */
public final class LossReport {
  private final String data;
  private final LossRun run;

  public LossReport(String data, LossRun run) {
    this.data = data;
    this.run = run;
  }

  public ObjectNode json(Map<String, String> provenance) {
    ObjectNode root = McqReport.JSON.createObjectNode();
    ObjectNode prov = root.putObject("medtune");
    provenance.forEach(prov::put);
    root.put("method", "loss");
    root.put("data", data);
    root.put("model", run.model());
    root.put("device", run.device());
    root.put("loss_masking", "completion tokens and EOS (the prompt is not counted)");
    root.put("examples_scored", run.exampleNll().length);
    ObjectNode skipped = root.putObject("skipped");
    skipped.put("count", run.skipped().size());
    ObjectNode reasons = skipped.putObject("reasons");
    McqReport.reasonCounts(run.skipped()).forEach(reasons::put);
    var ids = skipped.putArray("examples");
    run.skipped().forEach(s -> ids.addObject().put("id", s.id()).put("reason", s.reason()));
    root.put("counted_tokens", run.countedTokens());
    root.put("mean_loss", run.meanLoss());
    root.put("perplexity", run.perplexity());
    ObjectNode t = root.putObject("throughput");
    t.put("seconds", run.seconds());
    t.put("tokens", run.forwardTokens());
    t.put("tokens_per_s", run.forwardTokens() / run.seconds());
    t.put("examples_per_s", run.exampleNll().length / run.seconds());
    return root;
  }

  public String markdown() {
    StringBuilder md = new StringBuilder();
    md.append("## medtune eval: loss on ").append(data).append("\n\n");
    md.append("| measure | value |\n| --- | --- |\n");
    row(md, "model", run.model());
    int total = run.exampleNll().length + run.skipped().size();
    StringBuilder why = new StringBuilder();
    McqReport.reasonCounts(run.skipped()).forEach((reason, n) ->
        why.append(why.isEmpty() ? "" : ", ").append(n).append(" ").append(reason));
    row(md, "examples scored", run.exampleNll().length + " of " + total
        + (run.skipped().isEmpty() ? "" : " (skipped: " + why + ")"));
    row(md, "counted tokens (completion + EOS)", Long.toString(run.countedTokens()));
    row(md, "mean loss (nats per token)", McqReport.fmt("%.4f", run.meanLoss()));
    row(md, "perplexity", McqReport.fmt("%.3f", run.perplexity()));
    row(md, "tokens/s", McqReport.fmt("%.1f", run.forwardTokens() / run.seconds()));
    row(md, "device", run.device());
    return md.toString();
  }

  private static void row(StringBuilder md, String k, String v) {
    md.append("| ").append(McqReport.cell(k)).append(" | ").append(McqReport.cell(v)).append(" |\n");
  }
}
