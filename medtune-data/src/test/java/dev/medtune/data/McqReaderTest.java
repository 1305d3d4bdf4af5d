package dev.medtune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class McqReaderTest {
  @TempDir Path dir;

  static Path resource(String name) throws URISyntaxException {
    return Path.of(McqReaderTest.class.getResource("/mcq/" + name).toURI());
  }

  @Test
  void readsTheRealDevSplitSlice() throws Exception {
    Path f = resource("dev-choices-40.jsonl");
    assertTrue(McqReader.isChoicesForm(f));
    List<McqQuestion> qs = McqReader.readChoices(f);
    assertEquals(40, qs.size());
    McqQuestion first = qs.get(0);
    assertEquals("Which of the following is not true for myelinated nerve fibers:", first.question());
    assertEquals("Impulse through myelinated fibers is slower than non-myelinated fibers",
        first.options().get(0));
    assertEquals("Local anesthesia is effective only when the nerve is not covered by myelin sheath",
        first.options().get(3));
    assertEquals(0, first.answer());
    assertEquals("dev-choices-40.jsonl:1", first.id());
    assertNull(first.subject());
    // third record: answer 2
    assertEquals(2, qs.get(2).answer());
    assertTrue(qs.get(2).answerText().startsWith("Amniotic fluid samples"));
  }

  @Test
  void keepsIdAndSubjectWhenPresent() throws IOException {
    Path f = write("{\"id\":\"q7\",\"subject_name\":\"Anatomy\",\"question\":\"Q?\","
        + "\"choices\":[\"A. one\",\"B. two\",\"C. B. three\"],\"answer\":1}\n");
    McqQuestion q = McqReader.readChoices(f).get(0);
    assertEquals("q7", q.id());
    assertEquals("Anatomy", q.subject());
    // only the option's own letter is removed
    assertEquals(List.of("one", "two", "B. three"), q.options());
  }

  @Test
  void optionsMissing() throws IOException {
    Path f = write("{\"question\":\"Q?\",\"choices\":[\"A. x\",\"B. y\"],\"answer\":0}\n"
        + "{\"question\":\"Q2?\",\"answer\":0}\n");
    var e = assertThrows(IllegalArgumentException.class, () -> McqReader.readChoices(f));
    assertEquals(f + " line 2: 'choices' is missing (expected a list of options like"
        + " [\"A. ...\", \"B. ...\"])", e.getMessage());
  }

  @Test
  void emptyOption() throws IOException {
    Path f = write("{\"question\":\"Q?\",\"choices\":[\"A. x\",\"B. \",\"C. z\"],\"answer\":0}\n");
    var e = assertThrows(IllegalArgumentException.class, () -> McqReader.readChoices(f));
    assertEquals(f + " line 1: option B is empty", e.getMessage());
  }

  @Test
  void answerOutOfRange() throws IOException {
    Path f = write("{\"question\":\"Q?\",\"choices\":[\"A. w\",\"B. x\",\"C. y\",\"D. z\"],\"answer\":4}\n");
    var e = assertThrows(IllegalArgumentException.class, () -> McqReader.readChoices(f));
    assertEquals(f + " line 1: answer 4 is out of range (expected 0 to 3)", e.getMessage());
    Path g = write("{\"question\":\"Q?\",\"choices\":[\"A. w\",\"B. x\"],\"answer\":-1}\n");
    e = assertThrows(IllegalArgumentException.class, () -> McqReader.readChoices(g));
    assertEquals(g + " line 1: answer -1 is out of range (expected 0 to 1)", e.getMessage());
    Path h = write("{\"question\":\"Q?\",\"choices\":[\"A. w\",\"B. x\"],\"answer\":\"B\"}\n");
    e = assertThrows(IllegalArgumentException.class, () -> McqReader.readChoices(h));
    assertTrue(e.getMessage().startsWith(h + " line 1: 'answer' is missing or not a whole number"));
  }

  @Test
  void emptyFile() throws IOException {
    Path f = write("");
    assertFalse(McqReader.isChoicesForm(f));
    var e = assertThrows(IllegalArgumentException.class, () -> McqReader.readChoices(f));
    assertEquals(f + ": no questions (the file is empty)", e.getMessage());
    Path g = write("\n  \n");
    e = assertThrows(IllegalArgumentException.class, () -> McqReader.readChoices(g));
    assertEquals(g + ": no questions (the file is empty)", e.getMessage());
  }

  @Test
  void notJson() throws IOException {
    Path f = write("{\"question\":\"Q?\",\"choices\":[\"A. x\",\"B. y\"],\"answer\":0}\n{oops\n");
    var e = assertThrows(IllegalArgumentException.class, () -> McqReader.readChoices(f));
    assertTrue(e.getMessage().startsWith(f + " line 2: not a JSON object"), e.getMessage());
  }

  private int n;

  private Path write(String text) throws IOException {
    Path f = dir.resolve("q" + (n++) + ".jsonl");
    Files.writeString(f, text);
    return f;
  }
}
