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
    McqReader.McqSet set = McqReader.read(f, null);
    assertEquals(List.of(), set.rejected());
    List<McqQuestion> qs = set.questions();
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
    McqQuestion q = McqReader.read(f, null).questions().get(0);
    assertEquals("q7", q.id());
    assertEquals("Anatomy", q.subject());
    // only the option's own letter is removed
    assertEquals(List.of("one", "two", "B. three"), q.options());
  }

  @Test
  void optionsMissing() throws IOException {
    Path f = write("{\"question\":\"Q?\",\"choices\":[\"A. x\",\"B. y\"],\"answer\":0}\n"
        + "{\"question\":\"Q2?\",\"answer\":0}\n");
    McqReader.McqSet set = McqReader.read(f, null);
    assertEquals(1, set.questions().size());
    assertEquals(List.of(new McqReader.Rejected(f + " line 2", "'choices' is missing (expected a"
        + " list of options like [\"A. ...\", \"B. ...\"])")), set.rejected());
  }

  @Test
  void emptyOption() throws IOException {
    Path f = write(OK + "{\"question\":\"Q?\",\"choices\":[\"A. x\",\"B. \",\"C. z\"],\"answer\":0}\n");
    assertEquals(List.of(new McqReader.Rejected(f + " line 2", "option B is empty")),
        McqReader.read(f, null).rejected());
  }

  @Test
  void answerOutOfRange() throws IOException {
    Path f = write(OK
        + "{\"question\":\"Q?\",\"choices\":[\"A. w\",\"B. x\",\"C. y\",\"D. z\"],\"answer\":4}\n"
        + "{\"question\":\"Q?\",\"choices\":[\"A. w\",\"B. x\"],\"answer\":-1}\n"
        + "{\"question\":\"Q?\",\"choices\":[\"A. w\",\"B. x\"],\"answer\":\"B\"}\n");
    List<McqReader.Rejected> r = McqReader.read(f, null).rejected();
    assertEquals(3, r.size());
    assertEquals(new McqReader.Rejected(f + " line 2", "answer 4 is out of range (expected 0 to 3)"), r.get(0));
    assertEquals(new McqReader.Rejected(f + " line 3", "answer -1 is out of range (expected 0 to 1)"), r.get(1));
    assertTrue(r.get(2).reason().startsWith("'answer' is missing or not a whole number"));
  }

  @Test
  void emptyFileAndNoUsableQuestion() throws IOException {
    Path f = write("");
    assertFalse(McqReader.isChoicesForm(f));
    var e = assertThrows(IllegalArgumentException.class, () -> McqReader.read(f, null));
    assertEquals(f + ": no questions (the file is empty)", e.getMessage());
    Path g = write("\n  \n");
    e = assertThrows(IllegalArgumentException.class, () -> McqReader.read(g, null));
    assertEquals(g + ": no questions (the file is empty)", e.getMessage());
    Path h = write("{\"question\":\"Q?\",\"choices\":[\"A. w\",\"B. x\"],\"answer\":7}\n");
    e = assertThrows(IllegalArgumentException.class, () -> McqReader.read(h, null));
    assertEquals(h + ": no usable questions; all 1 records rejected, the first at " + h
        + " line 1: answer 7 is out of range (expected 0 to 1)", e.getMessage());
  }

  @Test
  void notJson() throws IOException {
    Path f = write(OK + "{oops\n");
    McqReader.Rejected r = McqReader.read(f, null).rejected().get(0);
    assertEquals(f + " line 2", r.where());
    assertTrue(r.reason().startsWith("not a JSON object"), r.reason());
  }

  /** The real MedMCQA CSV (hub layout, 0-based cop), read by prepare's DuckDB reader. */
  @Test
  void readsMedMcqaCsvWithSubjects() throws Exception {
    Path f = Path.of(McqReaderTest.class.getResource("/medmcqa/validation-sample.csv").toURI());
    McqReader.McqSet set = McqReader.read(f, null);
    assertEquals(List.of(), set.rejected());
    assertEquals(100, set.questions().size());
    McqQuestion q = set.questions().get(0);
    assertEquals("b944ada9-d776-4c2a-9180-3ae5f393f72d", q.id());
    assertEquals(0, q.answer());
    assertEquals("The oncotic pressure of the fluid leaving the capillaries is less than that of"
        + " fluid entering it", q.answerText());
    assertEquals("Physiology", q.subject());
    assertEquals(17, set.questions().stream().map(McqQuestion::subject).distinct().count());
    assertEquals(6, set.questions().stream().filter(x -> x.subject().equals("Anatomy")).count());
  }

  /** The official release's 1-based cop: told by a 4, or given; a missing option is rejected. */
  @Test
  void medMcqaJsonLinesOneBasedAndBadRows() throws IOException {
    String rec = "{\"id\":\"%s\",\"question\":\"Q%s?\",\"opa\":\"a\",\"opb\":\"b\",\"opc\":\"%s\","
        + "\"opd\":\"d\",\"cop\":%d,\"exp\":\"\",\"subject_name\":\"Anatomy\"}\n";
    Path f = dir.resolve("train.jsonl");
    Files.writeString(f, String.format(rec, "r1", "1", "c", 3) + String.format(rec, "r2", "2", "c", 4)
        + String.format(rec, "r3", "3", "", 1) + String.format(rec, "r4", "4", "c", 5));
    McqReader.McqSet set = McqReader.read(f, null);
    assertEquals(List.of(2, 3), set.questions().stream().map(McqQuestion::answer).toList());
    assertEquals(2, set.rejected().size());
    assertEquals("option opc is missing", set.rejected().get(0).reason());
    assertEquals("cop 5 is outside the options (1-4 with 1-based cop)", set.rejected().get(1).reason());

    Path g = dir.resolve("dev.jsonl");
    Files.writeString(g, String.format(rec, "r1", "1", "c", 3) + String.format(rec, "r2", "2", "c", 1));
    var e = assertThrows(IllegalArgumentException.class, () -> McqReader.read(g, null));
    assertTrue(e.getMessage().startsWith(g + ": cannot tell whether cop counts from 0"), e.getMessage());
    assertEquals(List.of(2, 0),
        McqReader.read(g, 1).questions().stream().map(McqQuestion::answer).toList());
  }

  /** A folder in the hub's layout: only the chosen split's files are read. */
  @Test
  void folderBySplit() throws Exception {
    Path csv = Path.of(McqReaderTest.class.getResource("/medmcqa/validation-sample.csv").toURI());
    Path data = dir.resolve("hub/data");
    Files.createDirectories(data);
    Files.copy(csv, data.resolve("validation-00000-of-00001.csv"));
    Files.writeString(data.resolve("train-00000-of-00001.jsonl"), OK + OK + OK);
    assertEquals(100, McqReader.read(dir.resolve("hub"), "validation", null).questions().size());
    assertEquals(3, McqReader.read(dir.resolve("hub"), "train", null).questions().size());
    var e = assertThrows(IllegalArgumentException.class,
        () -> McqReader.read(dir.resolve("hub"), "test", null));
    assertTrue(e.getMessage().startsWith(dir.resolve("hub") + ": no file of split 'test'"),
        e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> McqReader.read(dir.resolve("nothing-here"), null));
    assertEquals(dir.resolve("nothing-here") + ": no such file or folder", e.getMessage());
  }

  static final String OK = "{\"question\":\"Q?\",\"choices\":[\"A. x\",\"B. y\"],\"answer\":0}\n";

  private int n;

  private Path write(String text) throws IOException {
    Path f = dir.resolve("q" + (n++) + ".jsonl");
    Files.writeString(f, text);
    return f;
  }
}
