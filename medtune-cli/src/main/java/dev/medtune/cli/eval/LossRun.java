package dev.medtune.cli.eval;

import java.util.List;

/**
 * The held-out loss of one model on a prepared validation set.
 *
 * @param model the model folder, as given
 * @param exampleNll per scored example: Σ -log p over its counted tokens (completion + EOS)
 * @param exampleTokens per scored example: its counted tokens
 * @param skipped examples not scored, with why
 * @param forwardTokens tokens the forward passes processed (prompt and completion)
 * @param seconds wall time of the scoring
 * @param device the backend's description
 */
public record LossRun(String model, double[] exampleNll, int[] exampleTokens, List<Skip> skipped,
    long forwardTokens, double seconds, String device) {

  public LossRun {
    skipped = List.copyOf(skipped);
  }

  public long countedTokens() {
    long n = 0;
    for (int t : exampleTokens) {
      n += t;
    }
    return n;
  }

  /**
   * Mean loss per counted token over the whole set (each token weighs the same, as in training's
   * cross-entropy, which averages over the counted tokens of a batch).
   */
  public double meanLoss() {
    double s = 0;
    for (double v : exampleNll) {
      s += v;
    }
    return s / countedTokens();
  }

  /** exp(mean loss). */
  public double perplexity() {
    return Math.exp(meanLoss());
  }
}
