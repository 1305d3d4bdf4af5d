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
 * One supervised example as {@code prepare} writes it to {@code train.jsonl} / {@code val.jsonl}:
 * the prompt the model sees and the completion it should produce (the loss is taken over the
 * completion). {@code text} in the file is prompt + completion and is not needed here.
 *
 * @param id the record's id, or {@code "<file>:<line>"}
 * @param prompt the template up to the answer slot
 * @param completion the answer, explanation and closing newline
 */
public record PreparedExample(String id, String prompt, String completion) {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** Reads a prepared JSON lines file; a record without prompt or completion names its line. */
  public static List<PreparedExample> read(Path file) throws IOException {
    List<PreparedExample> out = new ArrayList<>();
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      String line;
      int lineNo = 0;
      while ((line = in.readLine()) != null) {
        lineNo++;
        if (line.isBlank()) {
          continue;
        }
        String where = file + " line " + lineNo;
        JsonNode node;
        try {
          node = JSON.readTree(line);
        } catch (JsonProcessingException e) {
          throw new IllegalArgumentException(where + ": not a JSON object ("
              + e.getOriginalMessage() + ")");
        }
        if (node == null || !node.isObject()) {
          throw new IllegalArgumentException(where + ": expected a JSON object");
        }
        JsonNode p = node.get("prompt");
        JsonNode c = node.get("completion");
        if (p == null || !p.isTextual() || c == null || !c.isTextual() || c.asText().isEmpty()) {
          throw new IllegalArgumentException(where + ": expected the fields 'prompt' and"
              + " 'completion' of prepare's output (found " + fieldNames(node) + ")");
        }
        JsonNode id = node.get("id");
        out.add(new PreparedExample(id != null && id.isValueNode() && !id.asText().isBlank()
            ? id.asText() : file.getFileName() + ":" + lineNo, p.asText(), c.asText()));
      }
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException(file + ": no examples (the file is empty)");
    }
    return out;
  }

  private static String fieldNames(JsonNode node) {
    List<String> names = new ArrayList<>();
    node.fieldNames().forEachRemaining(names::add);
    return names.isEmpty() ? "no fields" : String.join(", ", names);
  }
}
