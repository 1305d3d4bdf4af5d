package dev.medtune.cli.eval;

import java.util.List;

/**
 * What one model did on a question set.
 *
 * @param model what was evaluated (the model folder, as given)
 * @param method {@code loglik} or {@code generate}
 * @param results one per scored question, in file order
 * @param skipped questions not scored, with why
 * @param tokens tokens the forward passes processed (prompts and continuations or generated tokens)
 * @param seconds wall time of the scoring, excluding loading
 * @param device the backend's description
 */
public record McqRun(String model, String method, List<QuestionResult> results, List<Skip> skipped,
    long tokens, double seconds, String device) {

  public McqRun {
    results = List.copyOf(results);
    skipped = List.copyOf(skipped);
  }

  public long correct(ChoiceRule rule) {
    return results.stream().filter(r -> r.correct(rule)).count();
  }
}
