package dev.medtune.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads multiple-choice questions for evaluation. The form is the "choices" JSON lines of the
 * MedMCQA dev split as shared with this project: one object a line,
 * {@code {"question": "...", "choices": ["A. ...", "B. ...", "C. ...", "D. ..."], "answer": 0-3}},
 * optionally with {@code id} and {@code subject} (or {@code subject_name}). The letter prefix
 * {@code "A. "} is removed from an option when it carries the option's own letter, so that the
 * option text is what a MedMCQA row's {@code opa..opd} holds and what the recipe's template puts
 * after "### Answer:".
 *
 * <p>A malformed record is an error naming the file, the line and what was expected: an
 * evaluation over silently fewer questions would report a number nobody asked for.
 */
public final class McqReader {
  private static final ObjectMapper JSON = new ObjectMapper();

  private McqReader() {}

  /** Whether the file's first record is in the "choices" form (has a {@code choices} field). */
  public static boolean isChoicesForm(Path file) throws IOException {
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      String line;
      while ((line = in.readLine()) != null) {
        if (line.isBlank()) {
          continue;
        }
        try {
          JsonNode node = JSON.readTree(line);
          return node != null && node.isObject() && node.has("choices");
        } catch (JsonProcessingException e) {
          return false;
        }
      }
      return false;
    } catch (java.nio.charset.MalformedInputException e) {
      return false;
    }
  }

  /** Reads every question of a "choices" JSON lines file. */
  public static List<McqQuestion> readChoices(Path file) throws IOException {
    List<McqQuestion> out = new ArrayList<>();
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      String line;
      int lineNo = 0;
      while ((line = in.readLine()) != null) {
        lineNo++;
        if (line.isBlank()) {
          continue;
        }
        out.add(parseChoices(file, lineNo, line));
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException(file + ": no questions (the file is empty)");
    }
    return out;
  }

  private static McqQuestion parseChoices(Path file, int lineNo, String line) {
    String where = file + " line " + lineNo;
    JsonNode node;
    try {
      node = JSON.readTree(line);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException(where + ": not a JSON object ("
          + e.getOriginalMessage() + ")");
    }
    if (node == null || !node.isObject()) {
      throw new IllegalArgumentException(where + ": expected a JSON object, found " + line.strip());
    }
    JsonNode q = node.get("question");
    if (q == null || !q.isTextual() || q.asText().isBlank()) {
      throw new IllegalArgumentException(where + ": 'question' is missing or empty");
    }
    JsonNode choices = node.get("choices");
    if (choices == null || !choices.isArray()) {
      throw new IllegalArgumentException(where
          + ": 'choices' is missing (expected a list of options like [\"A. ...\", \"B. ...\"])");
    }
    if (choices.size() < 2) {
      throw new IllegalArgumentException(where + ": expected at least 2 options in 'choices', found "
          + choices.size());
    }
    List<String> options = new ArrayList<>();
    for (int k = 0; k < choices.size(); k++) {
      JsonNode c = choices.get(k);
      String letter = String.valueOf((char) ('A' + k));
      if (c == null || !c.isTextual()) {
        throw new IllegalArgumentException(where + ": option " + letter + " is not a string");
      }
      String text = stripLetter(c.asText(), k).strip();
      if (text.isEmpty()) {
        throw new IllegalArgumentException(where + ": option " + letter + " is empty");
      }
      options.add(text);
    }
    JsonNode a = node.get("answer");
    if (a == null || !a.canConvertToInt() || !a.isIntegralNumber()) {
      throw new IllegalArgumentException(where
          + ": 'answer' is missing or not a whole number (expected the 0-based index of the"
          + " correct option)");
    }
    int answer = a.intValue();
    if (answer < 0 || answer >= options.size()) {
      throw new IllegalArgumentException(where + ": answer " + answer
          + " is out of range (expected 0 to " + (options.size() - 1) + ")");
    }
    String id = text(node, "id");
    String subject = text(node, "subject");
    if (subject == null) {
      subject = text(node, "subject_name");
    }
    return new McqQuestion(id == null ? file.getFileName() + ":" + lineNo : id,
        q.asText(), options, answer, subject);
  }

  /** "A. Antegrade" as option 0 is "Antegrade"; a prefix with another letter is kept. */
  static String stripLetter(String choice, int index) {
    String prefix = (char) ('A' + index) + ".";
    if (choice.startsWith(prefix)
        && (choice.length() == prefix.length() || Character.isWhitespace(choice.charAt(prefix.length())))) {
      return choice.substring(prefix.length());
    }
    return choice;
  }

  private static String text(JsonNode node, String field) {
    JsonNode v = node.get(field);
    return v == null || v.isNull() || v.asText().isBlank() ? null : v.asText();
  }
}
