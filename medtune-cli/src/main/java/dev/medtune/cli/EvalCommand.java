package dev.medtune.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.medtune.cli.eval.LossReport;
import dev.medtune.cli.eval.LossRun;
import dev.medtune.cli.eval.McqReport;
import dev.medtune.cli.eval.McqRun;
import dev.medtune.cli.eval.ModelEvaluator;
import dev.medtune.cli.eval.ReportFiles;
import dev.medtune.cli.eval.Skip;
import dev.medtune.data.McqQuestion;
import dev.medtune.data.McqReader;
import dev.medtune.data.PrepareException;
import dev.medtune.data.PromptTemplate;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.train.LossOn;
import dev.medtune.model.train.SftExample;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code medtune eval}: multiple-choice accuracy (by option log-likelihood or by greedy answer)
 * or held-out loss, with a JSON report and a Markdown table.
 */
@Command(
    name = "eval",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Measure a model on multiple-choice questions (accuracy with a 95%% Wilson interval, per"
          + " subject, skipped questions and why, tokens/s) or on a prepared validation set (mean"
          + " loss and perplexity over the completion tokens).",
      "loglik (default): each option's text + \".\" is scored as the answer after the recipe's"
          + " prompt; the most likely option is the model's choice (by the summed log-probability;"
          + " per-token and per-character normalised choices are reported too).",
      "generate: the greedy answer's first line is matched to the options (exactly, then"
          + " ignoring case, punctuation and spacing); unmatched answers count as wrong.",
      "loss: --data is prepare's val.jsonl; loss over the completion tokens and EOS, as training."
    })
final class EvalCommand implements Callable<Integer> {

  @Spec CommandSpec spec;

  @Option(names = "--model", required = true, paramLabel = "DIR",
      description = "Model folder in Hugging Face layout (config.json, safetensors, tokenizer.json),"
          + " or a hub model id (org/name), downloaded into the hub cache.")
  Path model;

  @Option(names = "--data", required = true, paramLabel = "FILE",
      description = "MedMCQA in any form prepare reads (parquet, CSV, JSON lines, JSON array,"
          + " optionally .gz, or a folder of them), or"
          + " JSON lines of {\"question\", \"choices\": [\"A. ...\", ...], \"answer\": 0-3}; for"
          + " --method loss, prepare's val.jsonl.")
  Path data;

  @Option(names = "--method", defaultValue = "loglik", paramLabel = "loglik|generate|loss",
      description = "How to measure (default: ${DEFAULT-VALUE}).")
  String method;

  @Option(names = "--limit", paramLabel = "N",
      description = "Evaluate only the first N questions (or examples).")
  Integer limit;

  @Option(names = "--output", paramLabel = "DIR",
      description = "Write DIR/report.json and DIR/report.md (the table is printed either way).")
  Path output;

  @Option(names = "--overwrite", description = "Replace an existing report in --output.")
  boolean overwrite;

  @Option(names = "--adapter", paramLabel = "A",
      description = "A LoRA adapter folder (PEFT layout, e.g. train's OUT/adapter) applied to --model.")
  Path adapter;

  @Option(names = "--compare", paramLabel = "DIR",
      description = "Evaluated on the same questions beside --model: an adapter folder (applied to"
          + " --model's base) or a second model folder; the report adds the paired difference"
          + " and its 95%% interval.")
  Path compare;

  @Option(names = "--device", defaultValue = "auto", paramLabel = "auto|cpu|cuda",
      description = "Backend (default: ${DEFAULT-VALUE}: CUDA when usable, else CPU).")
  String device;

  @Option(names = "--batch-tokens", defaultValue = "1024", paramLabel = "N",
      description = "Tokens per forward pass (default: ${DEFAULT-VALUE}).")
  int batchTokens;

  @Option(names = "--max-new-tokens", defaultValue = "48", paramLabel = "N",
      description = "For --method generate: answer length limit (default: ${DEFAULT-VALUE}).")
  int maxNewTokens;

  @Option(names = "--split", defaultValue = "validation", paramLabel = "NAME",
      description = "When --data is a folder whose files are named by split (the hub's"
          + " data/validation-00000-of-00001.parquet), the split to read (default:"
          + " ${DEFAULT-VALUE}).")
  String split;

  @Option(names = "--cop-base", paramLabel = "0|1",
      description = "MedMCQA's cop counts from 0 (the hub's files) or 1 (the official JSON"
          + " release); detected when not given.")
  Integer copBase;

  @Option(names = "--template", paramLabel = "FILE",
      description = "Prompt template with {question}, {answer}, {explanation} (default: the"
          + " recipe's).")
  Path templateFile;

  @Override
  public Integer call() throws IOException {
    checkUsage();
    if (output != null) {
      try {
        ReportFiles.checkWritable(output, overwrite);
      } catch (IllegalArgumentException e) {
        throw new MedtuneFailure(e.getMessage());
      }
    }
    PromptTemplate template = template();
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    model = HubAccess.model(model, err);
    if (compare != null && !Adapters.isAdapter(compare)) {
      compare = HubAccess.model(compare, err);
    }
    Map<String, String> provenance = new LinkedHashMap<>();
    provenance.put("version", BuildInfo.version());
    provenance.put("commit", BuildInfo.commit());
    provenance.put("created", Instant.now().toString());
    provenance.put("data_sha256", sha256(data));
    provenance.put("template", templateFile == null ? "recipe" : templateFile.toString());

    ObjectNode json;
    String markdown;
    try (Backend backend = Devices.open(device)) {
      if (method.equals("loss")) {
        List<SftExample> examples = SftExample.readJsonl(data, LossOn.COMPLETION);
        if (limit != null && examples.size() > limit) {
          examples = examples.subList(0, limit);
        }
        LossRun run;
        try (ModelEvaluator ev = evaluator(model, adapter, backend, template, err, examples.size())) {
          run = ev.loss(examples);
        }
        LossReport report = new LossReport(data.toString(), run);
        json = report.json(provenance);
        markdown = report.markdown();
      } else {
        McqReader.McqSet set = McqReader.read(data, split, copBase);
        List<Skip> rejected = new ArrayList<>();
        for (McqReader.Rejected r : set.rejected()) {
          rejected.add(new Skip(r.where(), "not a usable question: " + r.reason()));
        }
        if (!rejected.isEmpty()) {
          err.println("medtune: " + rejected.size() + " record(s) of " + data + " are not usable"
              + " questions and are counted as skipped; the first, " + set.rejected().get(0).where()
              + ": " + set.rejected().get(0).reason());
        }
        List<McqQuestion> questions = set.questions();
        if (limit != null && questions.size() > limit) {
          questions = questions.subList(0, limit);
        }
        McqRun a = run(model, adapter, backend, template, questions, rejected, err);
        McqRun b = compare == null ? null
            : Adapters.isAdapter(compare)
                ? run(model, compare, backend, template, questions, rejected, err)
                : run(compare, null, backend, template, questions, rejected, err);
        McqReport report = new McqReport(data.toString(), a, b);
        json = report.json(provenance);
        markdown = report.markdown();
      }
    } catch (PrepareException | IllegalArgumentException | IllegalStateException e) {
      // ModelFormatException is an IllegalArgumentException: all name the file and the problem
      throw new MedtuneFailure(e.getMessage(), e);
    } catch (UncheckedIOException e) {
      throw new MedtuneFailure(e.getCause().getMessage(), e);
    }
    out.print(markdown);
    out.flush();
    if (output != null) {
      ReportFiles.write(output, json, markdown);
      err.println("medtune: wrote " + output.resolve(ReportFiles.JSON_FILE) + " and "
          + output.resolve(ReportFiles.MARKDOWN_FILE));
    }
    return 0;
  }

  private McqRun run(Path dir, Path adapterDir, Backend backend, PromptTemplate template,
      List<McqQuestion> questions, List<Skip> rejected, PrintWriter err) {
    McqRun run;
    try (ModelEvaluator ev = evaluator(dir, adapterDir, backend, template, err, questions.size())) {
      run = method.equals("generate") ? ev.generate(questions, maxNewTokens) : ev.loglik(questions);
    }
    if (rejected.isEmpty()) {
      return run;
    }
    List<Skip> skips = new ArrayList<>(rejected);
    skips.addAll(run.skipped());
    return new McqRun(run.model(), run.method(), run.results(), skips, run.tokens(), run.seconds(),
        run.device());
  }

  private ModelEvaluator evaluator(Path dir, Path adapterDir, Backend backend,
      PromptTemplate template, PrintWriter err, int total) {
    ModelEvaluator ev = new ModelEvaluator(dir, adapterDir, backend, template, batchTokens);
    long[] last = {System.nanoTime()};
    return ev.progress(done -> {
      long now = System.nanoTime();
      if (now - last[0] > 10_000_000_000L || done == total) {
        err.println("medtune: " + dir + ": " + done + "/" + total + " scored");
        err.flush();
        last[0] = now;
      }
    });
  }

  private void checkUsage() {
    if (!List.of("loglik", "generate", "loss").contains(method)) {
      throw new UsageException("--method must be loglik, generate or loss, found '" + method + "'");
    }
    if (limit != null && limit < 1) {
      throw new UsageException("--limit must be at least 1, found " + limit);
    }
    if (batchTokens < 1) {
      throw new UsageException("--batch-tokens must be at least 1, found " + batchTokens);
    }
    if (maxNewTokens < 1) {
      throw new UsageException("--max-new-tokens must be at least 1, found " + maxNewTokens);
    }
    if (copBase != null && copBase != 0 && copBase != 1) {
      throw new UsageException("--cop-base must be 0 or 1, found " + copBase);
    }
    if (compare != null && method.equals("loss")) {
      throw new UsageException("--compare works with --method loglik or generate");
    }
  }

  private PromptTemplate template() throws IOException {
    if (templateFile == null) {
      return PromptTemplate.recipe();
    }
    try {
      return PromptTemplate.of(Files.readString(templateFile));
    } catch (IllegalArgumentException e) {
      throw new MedtuneFailure(templateFile + ": " + e.getMessage());
    }
  }


  /** The data's SHA-256; for a folder, of its data files' names and contents in path order. */
  private static String sha256(Path file) throws IOException {
    if (Files.isDirectory(file)) {
      try (var walk = Files.walk(file)) {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        for (Path p : walk.filter(Files::isRegularFile).sorted().toList()) {
          md.update(file.relativize(p).toString().getBytes(java.nio.charset.StandardCharsets.UTF_8));
          md.update(HexFormat.of().parseHex(sha256(p)));
        }
        return HexFormat.of().formatHex(md.digest());
      } catch (NoSuchAlgorithmException e) {
        throw new IllegalStateException(e);
      }
    }
    if (!Files.isRegularFile(file)) {
      throw new MedtuneFailure(file + ": no such file or folder");
    }
    try (InputStream in = Files.newInputStream(file)) {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 16];
      int n;
      while ((n = in.read(buf)) > 0) {
        md.update(buf, 0, n);
      }
      return HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
