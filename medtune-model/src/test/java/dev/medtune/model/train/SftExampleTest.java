package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SftExampleTest {
  @TempDir Path tmp;

  private Path file(String text) throws Exception {
    Path f = tmp.resolve("train.jsonl");
    Files.writeString(f, text);
    return f;
  }

  @Test
  void readsPreparesLines() throws Exception {
    Path f = file("""
        {"id": "a1", "prompt": "Q: x?\\n", "completion": "A. because\\n", "text": "Q: x?\\nA. because\\n"}

        {"prompt": "Q: y?\\n", "completion": "B. é"}
        """);
    var ex = SftExample.readJsonl(f, LossOn.COMPLETION);
    assertEquals(2, ex.size());
    assertEquals("Q: x?\nA. because\n", ex.get(0).text());
    assertEquals("B. é", ex.get(1).completion());
    assertEquals(3, ex.get(1).line());
  }

  @Test
  void aByteOrderMarkIsSkipped() throws Exception {
    Path f = file("\uFEFF{\"prompt\": \"p\", \"completion\": \"c\"}\n");
    assertEquals("pc", SftExample.readJsonl(f, LossOn.COMPLETION).get(0).text());
  }

  @Test
  void textOnlyLinesTrainOnlyWithLossOnAll() throws Exception {
    Path f = file("{\"text\": \"hello\"}\n");
    var ex = SftExample.readJsonl(f, LossOn.ALL);
    assertEquals("hello", ex.get(0).text());
    assertNull(ex.get(0).prompt());
    var e = assertThrows(IllegalArgumentException.class, () -> SftExample.readJsonl(f, LossOn.COMPLETION));
    assertEquals(f + ":1: no \"prompt\"/\"completion\" fields (only \"text\"; use --loss-on all to train on it)",
        e.getMessage());
  }

  @Test
  void badLinesAreNamedByFileAndLine() throws Exception {
    String good = "{\"prompt\": \"p\", \"completion\": \"c\"}\n";
    assertMessage(good + "{\"question\": \"q\"}\n", LossOn.ALL,
        ":2: no \"text\" field and no \"prompt\"/\"completion\" fields");
    assertMessage(good + good + "{\"prompt\": \"p\"}\n", LossOn.ALL, ":3: has \"prompt\" but no \"completion\"");
    assertMessage("{\"prompt\": \"p\", \"completion\": \"c\", \"text\": \"pX\"}\n", LossOn.ALL,
        ":1: \"text\" is not \"prompt\" + \"completion\"");
    assertMessage(good + "{not json\n", LossOn.ALL, ":2: not valid JSON");
    assertMessage("[1, 2]\n", LossOn.ALL, ":1: expected a JSON object");
    assertMessage("{\"prompt\": 3, \"completion\": \"c\"}\n", LossOn.ALL, ":1: \"prompt\" must be a string");
    assertMessage("", LossOn.ALL, ": no examples (the file is empty)");
    assertMessage("\n\n", LossOn.ALL, ": no examples (the file is empty)");
    var e = assertThrows(IllegalArgumentException.class,
        () -> SftExample.readJsonl(tmp.resolve("missing.jsonl"), LossOn.ALL));
    assertTrue(e.getMessage().endsWith("missing.jsonl: no such data file"), e.getMessage());
  }

  private void assertMessage(String content, LossOn lossOn, String expectedSuffixStart) throws Exception {
    Path f = file(content);
    var e = assertThrows(IllegalArgumentException.class, () -> SftExample.readJsonl(f, lossOn));
    assertTrue(e.getMessage().startsWith(f + expectedSuffixStart), e.getMessage());
  }
}
