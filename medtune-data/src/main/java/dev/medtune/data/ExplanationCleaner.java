package dev.medtune.data;

import java.util.List;

/**
 * Removes text from a MedMCQA explanation. Each cleaner counts, per rule, how many rows the rule
 * changed, for the prepare report.
 */
abstract sealed class ExplanationCleaner
    permits NotebookCleaner, AnswerRestatementCleaner, ExplanationCleaner.None {

  private final long[] changed;

  ExplanationCleaner(int rules) {
    this.changed = new long[rules];
  }

  /** The names of the rules, in the order they are applied. */
  abstract List<String> rules();

  /**
   * The cleaned explanation.
   *
   * @param answerIndex 0-based index of the correct option
   */
  abstract String clean(String explanation, List<String> options, int answerIndex);

  final void changed(int rule) {
    changed[rule]++;
  }

  /** Rows each rule changed, by rule name order. */
  final long[] changedCounts() {
    return changed.clone();
  }

  static ExplanationCleaner of(PrepareOptions.Cleaner kind) {
    return switch (kind) {
      case MEDTUNE -> new AnswerRestatementCleaner();
      case NOTEBOOK -> new NotebookCleaner();
      case NONE -> new None();
    };
  }

  /** Keeps explanations as they are. */
  static final class None extends ExplanationCleaner {
    None() {
      super(0);
    }

    @Override
    List<String> rules() {
      return List.of();
    }

    @Override
    String clean(String explanation, List<String> options, int answerIndex) {
      return explanation;
    }
  }
}
