package dev.medtune.data;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A training/inference prompt template with the placeholders {@code {question}}, {@code {answer}}
 * and {@code {explanation}}. The prompt is the template up to the {@code {answer}} placeholder;
 * the completion is the rest. Training text is prompt + completion, without an end-of-sequence
 * token (training appends the model's own).
 */
public final class PromptTemplate {

  /**
   * The recipe's template, exactly (../shared/reference/seed-facts.md): one newline after the
   * answer line; the inference prompt is the same text with an empty answer slot.
   */
  public static final String RECIPE_TEXT =
      "Give an answer for the following medical question.\n\n"
          + "### Question:\n{question}\n\n"
          + "### Answer:\n{answer}. {explanation}\n";

  private static final Pattern PLACEHOLDER = Pattern.compile("\\{([A-Za-z_]+)}");

  private final String text;
  private final int answerAt;
  private final List<String[]> promptPieces;
  private final List<String[]> completionPieces;

  private PromptTemplate(String text) {
    Matcher m = PLACEHOLDER.matcher(text);
    while (m.find()) {
      String name = m.group(1);
      if (!name.equals("question") && !name.equals("answer") && !name.equals("explanation")) {
        throw new IllegalArgumentException("unknown placeholder {" + name
            + "} in the template; expected only {question}, {answer} and {explanation}");
      }
    }
    for (String required : new String[] {"{question}", "{answer}"}) {
      if (!text.contains(required)) {
        throw new IllegalArgumentException("the template has no " + required + " placeholder");
      }
    }
    this.text = text;
    this.answerAt = text.indexOf("{answer}");
    if (text.indexOf("{question}") > answerAt) {
      throw new IllegalArgumentException("the template puts {answer} before {question}");
    }
    this.promptPieces = split(text.substring(0, answerAt));
    this.completionPieces = split(text.substring(answerAt));
  }

  /** The recipe's template. */
  public static PromptTemplate recipe() {
    return new PromptTemplate(RECIPE_TEXT);
  }

  /** A template from its text; an unknown placeholder is an {@link IllegalArgumentException}. */
  public static PromptTemplate of(String text) {
    return new PromptTemplate(text);
  }

  /**
   * A template from a UTF-8 file; a missing file or an unknown placeholder is a
   * {@link PrepareException} naming the file.
   */
  public static PromptTemplate read(Path file) {
    String text;
    try {
      text = Files.readString(file, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new PrepareException(file + ": cannot read the template: " + e.getMessage(), e);
    }
    try {
      return new PromptTemplate(text);
    } catch (IllegalArgumentException e) {
      throw new PrepareException(file + ": " + e.getMessage(), e);
    }
  }

  /** The prompt a model sees for a question: the template up to the answer slot. */
  public String prompt(String question) {
    return fill(promptPieces, Map.of("question", question));
  }

  /** What the model should produce after {@link #prompt}. */
  public String completion(String answer, String explanation) {
    return fill(completionPieces, Map.of("answer", answer, "explanation", explanation));
  }

  public String text() {
    return text;
  }

  /** A template part as literal text and placeholders, split once rather than per example. */
  private static List<String[]> split(String part) {
    List<String[]> pieces = new ArrayList<>();
    Matcher m = PLACEHOLDER.matcher(part);
    int at = 0;
    while (m.find()) {
      pieces.add(new String[] {part.substring(at, m.start()), m.group(1)});
      at = m.end();
    }
    pieces.add(new String[] {part.substring(at), null});
    return pieces;
  }

  private static String fill(List<String[]> pieces, Map<String, String> values) {
    StringBuilder out = new StringBuilder(256);
    for (String[] p : pieces) {
      out.append(p[0]);
      if (p[1] != null) {
        String v = values.get(p[1]);
        out.append(v == null ? "{" + p[1] + "}" : v);
      }
    }
    return out.toString();
  }
}
