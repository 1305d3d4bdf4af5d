package dev.medtune.model.train;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.Json;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * One training example from {@code prepare}'s JSON lines: {@code prompt} and {@code completion}
 * (their concatenation is {@code text}); a file with only {@code text} can train with
 * {@link LossOn#ALL}.
 *
 * @param prompt what the model is given, or null when the line has only {@code text}
 * @param completion what it should produce, or null when the line has only {@code text}
 * @param text prompt + completion (never null)
 * @param line 1-based line number in the file, for messages
 */
public record SftExample(String prompt, String completion, String text, int line) {

  /**
   * Reads a JSON-lines file. Blank lines are skipped. A line that is not a JSON object, lacks the
   * fields {@code lossOn} needs ({@code prompt} and {@code completion} for COMPLETION; those or
   * {@code text} for ALL), or whose {@code text} is not prompt + completion, is an
   * {@link IllegalArgumentException} naming the file and line; so is a file with no examples.
   */
  public static List<SftExample> readJsonl(Path file, LossOn lossOn) {
    List<SftExample> out = new ArrayList<>();
    try (BufferedReader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      String s;
      int line = 0;
      while ((s = r.readLine()) != null) {
        line++;
        if (line == 1 && s.startsWith("\uFEFF")) {
          s = s.substring(1); // a byte-order mark some editors write
        }
        if (s.isBlank()) {
          continue;
        }
        JsonNode n;
        try {
          n = Json.MAPPER.readTree(s);
        } catch (JsonProcessingException e) {
          throw new IllegalArgumentException(file + ":" + line + ": not valid JSON: " + e.getOriginalMessage());
        }
        if (n == null || !n.isObject()) {
          throw new IllegalArgumentException(file + ":" + line + ": expected a JSON object");
        }
        String prompt = string(n, "prompt", file, line);
        String completion = string(n, "completion", file, line);
        String text = string(n, "text", file, line);
        if ((prompt == null) != (completion == null)) {
          throw new IllegalArgumentException(file + ":" + line + ": has \"" + (prompt == null ? "completion" : "prompt")
              + "\" but no \"" + (prompt == null ? "prompt" : "completion") + "\"");
        }
        if (prompt == null) {
          if (lossOn == LossOn.COMPLETION) {
            throw new IllegalArgumentException(file + ":" + line + ": no \"prompt\"/\"completion\" fields"
                + (text == null ? "" : " (only \"text\"; use --loss-on all to train on it)"));
          }
          if (text == null) {
            throw new IllegalArgumentException(file + ":" + line
                + ": no \"text\" field and no \"prompt\"/\"completion\" fields");
          }
        } else if (text != null && !text.equals(prompt + completion)) {
          throw new IllegalArgumentException(file + ":" + line + ": \"text\" is not \"prompt\" + \"completion\"");
        }
        out.add(new SftExample(prompt, completion, prompt == null ? text : prompt + completion, line));
      }
    } catch (NoSuchFileException e) {
      throw new IllegalArgumentException(file + ": no such data file");
    } catch (IOException e) {
      throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException(file + ": no examples (the file is empty)");
    }
    return out;
  }

  private static String string(JsonNode n, String field, Path file, int line) {
    JsonNode v = n.get(field);
    if (v == null || v.isNull()) {
      return null;
    }
    if (!v.isTextual()) {
      throw new IllegalArgumentException(file + ":" + line + ": \"" + field + "\" must be a string, found " + v.getNodeType());
    }
    return v.asText();
  }
}
