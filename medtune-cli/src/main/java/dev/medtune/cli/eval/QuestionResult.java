package dev.medtune.cli.eval;

import dev.medtune.data.McqQuestion;
import java.util.List;

/**
 * One question's outcome under one model. For the log-likelihood method {@code options} holds the
 * scores and {@code generated} is null; for the generate method {@code generated} and
 * {@code match} are set and {@code options} is empty.
 */
public record QuestionResult(
    McqQuestion question, List<OptionScore> options, String generated, AnswerMatcher.Match match) {

  public static QuestionResult loglik(McqQuestion q, List<OptionScore> scores) {
    if (scores.size() != q.options().size()) {
      throw new IllegalArgumentException(q.id() + ": " + scores.size() + " scores for "
          + q.options().size() + " options");
    }
    return new QuestionResult(q, List.copyOf(scores), null, null);
  }

  public static QuestionResult generated(McqQuestion q, String text) {
    return new QuestionResult(q, List.of(), text, AnswerMatcher.match(text, q.options()));
  }

  /** The option the model chose under a rule (log-likelihood) or by matching (generate; -1 when unmatched). */
  public int choice(ChoiceRule rule) {
    return generated != null ? match.option() : rule.choose(options);
  }

  public boolean correct(ChoiceRule rule) {
    return choice(rule) == question.answer();
  }
}
