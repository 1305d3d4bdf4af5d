package dev.medtune.cli;

import dev.medtune.data.Prepare;
import dev.medtune.data.PrepareException;
import dev.medtune.data.PrepareOptions;
import dev.medtune.data.PrepareReport;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code medtune prepare}: raw MedMCQA to train.jsonl / val.jsonl, rejected.jsonl, report.json. */
@Command(
    name = "prepare",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "Turn raw MedMCQA (parquet, CSV, JSON lines or a JSON array, optionally .gz, or a folder"
          + " of them) into a training set: DIR/train.jsonl, DIR/val.jsonl, DIR/rejected.jsonl"
          + " and DIR/report.json.",
      "Stages: read, choice type, answer (cop), explanation cleanup, filters, selection, split,"
          + " prompt formatting; each is counted in report.json and in the summary."
    })
final class PrepareCommand implements Callable<Integer> {

  @Spec CommandSpec spec;

  @Option(names = "--input", required = true, paramLabel = "PATH",
      description = "A data file, or a folder of them (the hub's data/train-*.parquet layout).")
  Path input;

  @Option(names = "--output", required = true, paramLabel = "DIR",
      description = "Folder to write; written under a temporary name and renamed when complete.")
  Path output;

  @Option(names = "--overwrite", description = "Replace an existing non-empty output folder.")
  boolean overwrite;

  @Option(names = "--strict", description = "Fail on the first row that cannot be used instead of"
      + " writing it to rejected.jsonl.")
  boolean strict;

  @Option(names = "--split", defaultValue = "train", paramLabel = "NAME",
      description = "In a folder whose files are named by split, the split to read (default:"
          + " ${DEFAULT-VALUE}).")
  String split;

  @Option(names = "--choice-type", defaultValue = "single", paramLabel = "single|multi|all",
      description = "Keep single-choice, multi-choice or all questions (default: ${DEFAULT-VALUE}).")
  String choiceType;

  @Option(names = "--cop-base", paramLabel = "0|1",
      description = "cop counts from 0 (the hub's files) or 1 (the official JSON release);"
          + " detected when not given.")
  Integer copBase;

  @Option(names = "--cleaner", defaultValue = "medtune", paramLabel = "medtune|notebook|none",
      description = "Explanation cleanup: medtune removes only the text restating the answer;"
          + " notebook applies the original notebook's eight regexes (default: ${DEFAULT-VALUE}).")
  String cleaner;

  @Option(names = "--min-words", defaultValue = "6", paramLabel = "N",
      description = "Drop explanations with fewer words (default: ${DEFAULT-VALUE}).")
  int minWords;

  @Option(names = "--limit", defaultValue = "10000", paramLabel = "N",
      description = "Rows to keep (default: ${DEFAULT-VALUE}).")
  int limit;

  @Option(names = "--order", defaultValue = "shortest", paramLabel = "shortest|longest|random|source",
      description = "Which rows --limit keeps: shortest or longest explanations, a random sample,"
          + " or the first in the input (default: ${DEFAULT-VALUE}).")
  String order;

  @Option(names = "--seed", defaultValue = "3407", paramLabel = "N",
      description = "Seed of --order random and of the split (default: ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--val-fraction", defaultValue = "0.05", paramLabel = "F",
      description = "Share of the kept rows written to val.jsonl (default: ${DEFAULT-VALUE}).")
  double valFraction;

  @Option(names = "--template", paramLabel = "FILE",
      description = "Prompt template with {question}, {answer}, {explanation} (default: the"
          + " recipe's).")
  Path template;

  @Override
  public Integer call() {
    PrepareOptions options;
    try {
      options = new PrepareOptions(input, output, overwrite, strict, split,
          choice(PrepareOptions.ChoiceType.class, choiceType, "--choice-type"), copBase,
          choice(PrepareOptions.Cleaner.class, cleaner, "--cleaner"), minWords, limit,
          choice(PrepareOptions.Order.class, order, "--order"), seed, valFraction, template);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    PrepareReport report;
    try {
      report = Prepare.run(options);
    } catch (PrepareException e) {
      throw new MedtuneFailure(e.getMessage(), e);
    }
    PrintWriter w = spec.commandLine().getOut();
    w.printf("%-14s %9s  %s%n", "stage", "rows", "");
    for (PrepareReport.Line l : report.lines()) {
      w.printf("%-14s %9d  %s%n", l.stage(), l.rows(), l.what());
    }
    w.println("wrote " + report.output() + " (train.jsonl " + report.train() + ", val.jsonl "
        + report.val() + ", rejected.jsonl " + report.rejected() + ", report.json)");
    w.flush();
    return 0;
  }

  private static <E extends Enum<E>> E choice(Class<E> type, String value, String option) {
    for (E e : type.getEnumConstants()) {
      if (e.name().equalsIgnoreCase(value)) {
        return e;
      }
    }
    StringBuilder b = new StringBuilder();
    for (E e : type.getEnumConstants()) {
      b.append(b.isEmpty() ? "" : ", ").append(e.name().toLowerCase(java.util.Locale.ROOT));
    }
    throw new IllegalArgumentException(option + " must be one of " + b + ", got '" + value + "'");
  }
}
