package dev.medtune.cli.eval;

import java.util.List;
import java.util.function.ToDoubleFunction;

/**
 * How the log-likelihood method picks an option: by the summed log-probability of its
 * continuation, or length-normalised per token or per character (the latter is lm-evaluation-
 * harness's {@code acc_norm}; Gao et al., "A framework for few-shot language model evaluation",
 * 2021). Ties go to the first option.
 */
public enum ChoiceRule {
  SUM("sum", "Σ log p", OptionScore::logprob),
  PER_TOKEN("per_token", "Σ log p / tokens", OptionScore::perToken),
  PER_CHAR("per_char", "Σ log p / characters", OptionScore::perChar);

  private final String key;
  private final String label;
  private final ToDoubleFunction<OptionScore> score;

  ChoiceRule(String key, String label, ToDoubleFunction<OptionScore> score) {
    this.key = key;
    this.label = label;
    this.score = score;
  }

  public String key() {
    return key;
  }

  public String label() {
    return label;
  }

  public int choose(List<OptionScore> options) {
    int best = 0;
    for (int k = 1; k < options.size(); k++) {
      if (score.applyAsDouble(options.get(k)) > score.applyAsDouble(options.get(best))) {
        best = k;
      }
    }
    return best;
  }
}
