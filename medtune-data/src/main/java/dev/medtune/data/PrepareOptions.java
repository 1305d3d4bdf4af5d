package dev.medtune.data;

import java.nio.file.Path;
import java.util.Objects;

/**
 * What {@code prepare} does; the defaults reproduce the recipe (../shared/reference/seed-facts.md)
 * with the write-up's single-choice filter applied and medtune's explanation cleanup.
 *
 * @param input a data file or a folder of them
 * @param output the folder to write (train.jsonl, val.jsonl, rejected.jsonl, report.json)
 * @param split in a folder whose files are named by split (train-0000.parquet, dev.json), the split
 *     to read
 * @param copBase 0 or 1 to override detection; null to detect
 * @param template null for the recipe's template
 */
public record PrepareOptions(
    Path input,
    Path output,
    boolean overwrite,
    boolean strict,
    String split,
    ChoiceType choiceType,
    Integer copBase,
    Cleaner cleaner,
    int minWords,
    int limit,
    Order order,
    long seed,
    double valFraction,
    Path template) {

  public enum ChoiceType { SINGLE, MULTI, ALL }

  public enum Cleaner { MEDTUNE, NOTEBOOK, NONE }

  public enum Order { SHORTEST, LONGEST, RANDOM, SOURCE }

  public PrepareOptions {
    Objects.requireNonNull(input, "input");
    Objects.requireNonNull(output, "output");
    Objects.requireNonNull(split, "split");
    Objects.requireNonNull(choiceType, "choiceType");
    Objects.requireNonNull(cleaner, "cleaner");
    Objects.requireNonNull(order, "order");
    if (copBase != null && copBase != 0 && copBase != 1) {
      throw new IllegalArgumentException("--cop-base must be 0 or 1, got " + copBase);
    }
    if (minWords < 0) {
      throw new IllegalArgumentException("--min-words must be 0 or more, got " + minWords);
    }
    if (limit < 1) {
      throw new IllegalArgumentException("--limit must be 1 or more, got " + limit);
    }
    if (!(valFraction >= 0 && valFraction < 1)) {
      throw new IllegalArgumentException("--val-fraction must be in [0, 1), got " + valFraction);
    }
  }

  /** The defaults for an input and an output folder. */
  public static PrepareOptions defaults(Path input, Path output) {
    return new PrepareOptions(input, output, false, false, "train", ChoiceType.SINGLE, null,
        Cleaner.MEDTUNE, 6, 10_000, Order.SHORTEST, 3407, 0.05, null);
  }

  public PrepareOptions withOverwrite(boolean v) {
    return new PrepareOptions(input, output, v, strict, split, choiceType, copBase, cleaner,
        minWords, limit, order, seed, valFraction, template);
  }

  public PrepareOptions withStrict(boolean v) {
    return new PrepareOptions(input, output, overwrite, v, split, choiceType, copBase, cleaner,
        minWords, limit, order, seed, valFraction, template);
  }

  public PrepareOptions withChoiceType(ChoiceType v) {
    return new PrepareOptions(input, output, overwrite, strict, split, v, copBase, cleaner,
        minWords, limit, order, seed, valFraction, template);
  }

  public PrepareOptions withCopBase(Integer v) {
    return new PrepareOptions(input, output, overwrite, strict, split, choiceType, v, cleaner,
        minWords, limit, order, seed, valFraction, template);
  }

  public PrepareOptions withCleaner(Cleaner v) {
    return new PrepareOptions(input, output, overwrite, strict, split, choiceType, copBase, v,
        minWords, limit, order, seed, valFraction, template);
  }

  public PrepareOptions withMinWords(int v) {
    return new PrepareOptions(input, output, overwrite, strict, split, choiceType, copBase, cleaner,
        v, limit, order, seed, valFraction, template);
  }

  public PrepareOptions withSelection(int limit, Order order, long seed) {
    return new PrepareOptions(input, output, overwrite, strict, split, choiceType, copBase, cleaner,
        minWords, limit, order, seed, valFraction, template);
  }

  public PrepareOptions withValFraction(double v) {
    return new PrepareOptions(input, output, overwrite, strict, split, choiceType, copBase, cleaner,
        minWords, limit, order, seed, v, template);
  }

  public PrepareOptions withTemplate(Path v) {
    return new PrepareOptions(input, output, overwrite, strict, split, choiceType, copBase, cleaner,
        minWords, limit, order, seed, valFraction, v);
  }

  public PrepareOptions withSplit(String v) {
    return new PrepareOptions(input, output, overwrite, strict, v, choiceType, copBase, cleaner,
        minWords, limit, order, seed, valFraction, template);
  }
}
