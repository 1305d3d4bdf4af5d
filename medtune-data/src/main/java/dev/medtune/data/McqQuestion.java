package dev.medtune.data;

import java.util.List;

/**
 * One multiple-choice question as evaluation sees it.
 *
 * @param id the record's id, or {@code "<file>:<line>"} where the file has none
 * @param question the question text
 * @param options the option texts, without letters ("Adenosine receptors", not "C. Adenosine
 *     receptors"); at least two, none blank
 * @param answer the 0-based index of the correct option
 * @param subject the subject ("Pharmacology"), or null where the file does not say
 */
public record McqQuestion(
    String id, String question, List<String> options, int answer, String subject) {

  public McqQuestion {
    options = List.copyOf(options);
    if (answer < 0 || answer >= options.size()) {
      throw new IllegalArgumentException(
          id + ": answer index " + answer + " is outside the " + options.size() + " options");
    }
  }

  /** The text of the correct option. */
  public String answerText() {
    return options.get(answer);
  }
}
