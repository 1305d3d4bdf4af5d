package dev.medtune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PreparedExampleTest {
  @TempDir Path dir;

  @Test
  void readsPromptAndCompletion() throws Exception {
    PromptTemplate t = PromptTemplate.recipe();
    String p = t.prompt("Drug of choice for absence seizures?");
    String c = t.completion("Ethosuximide", "It blocks T-type calcium channels.");
    Path f = dir.resolve("val.jsonl");
    Files.writeString(f, McqReaderJson.line(p, c) + "\n\n" + McqReaderJson.line(p, c) + "\n");
    List<PreparedExample> ex = PreparedExample.read(f);
    assertEquals(2, ex.size());
    assertEquals(p, ex.get(0).prompt());
    assertEquals("Ethosuximide. It blocks T-type calcium channels.\n", ex.get(0).completion());
    assertEquals("val.jsonl:3", ex.get(1).id());
  }

  @Test
  void badInput() throws Exception {
    Path f = dir.resolve("bad.jsonl");
    Files.writeString(f, "{\"question\":\"q\",\"answer\":\"a\"}\n");
    var e = assertThrows(IllegalArgumentException.class, () -> PreparedExample.read(f));
    assertEquals(f + " line 1: expected the fields 'prompt' and 'completion' of prepare's output"
        + " (found question, answer)", e.getMessage());
    Path g = dir.resolve("empty.jsonl");
    Files.writeString(g, "");
    e = assertThrows(IllegalArgumentException.class, () -> PreparedExample.read(g));
    assertEquals(g + ": no examples (the file is empty)", e.getMessage());
  }

  /** Writes a prepared record the way prepare does (Jackson). */
  static final class McqReaderJson {
    static String line(String p, String c) throws Exception {
      var m = new com.fasterxml.jackson.databind.ObjectMapper();
      var o = m.createObjectNode().put("prompt", p).put("completion", c).put("text", p + c);
      return m.writeValueAsString(o);
    }
  }
}
