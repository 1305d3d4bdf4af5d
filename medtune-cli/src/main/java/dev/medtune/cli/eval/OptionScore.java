package dev.medtune.cli.eval;

/**
 * The log-likelihood of one option's continuation after the question's prompt.
 *
 * @param logprob Σ log p(token | everything before it), natural log, over the continuation
 * @param tokens the continuation's token count
 * @param chars the continuation's length in Unicode code points
 */
public record OptionScore(double logprob, int tokens, int chars) {
  public double perToken() {
    return logprob / tokens;
  }

  public double perChar() {
    return logprob / chars;
  }
}
