package dev.medtune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The Java translation of the notebook's eight Python regexes against CPython's own output
 * (src/test/resources/cleaner/notebook-expected.jsonl, made by notebook_expected.py beside it):
 * every real explanation of the samples, and strings that expose where Python's re and
 * java.util.regex differ.
 */
class NotebookCleanerParityTest {

  @Test
  void matchesCPythonOnEveryCase() throws Exception {
    ObjectMapper json = new ObjectMapper();
    NotebookCleaner cleaner = new NotebookCleaner();
    List<String> options = List.of("a", "b", "c", "d");
    List<String> mismatches = new ArrayList<>();
    int n = 0;
    try (BufferedReader r = new BufferedReader(new InputStreamReader(
        getClass().getResourceAsStream("/cleaner/notebook-expected.jsonl"),
        StandardCharsets.UTF_8))) {
      String line;
      while ((line = r.readLine()) != null) {
        JsonNode c = json.readTree(line);
        n++;
        String got = cleaner.clean(c.get("input").asText(), options, 0);
        if (!got.equals(c.get("output").asText())) {
          mismatches.add(json.writeValueAsString(c.get("input").asText()) + " -> "
              + json.writeValueAsString(got) + " (Python: "
              + json.writeValueAsString(c.get("output").asText()) + ")");
        }
      }
    }
    assertTrue(n > 400, "only " + n + " cases");
    assertEquals(List.of(), mismatches);
  }
}
