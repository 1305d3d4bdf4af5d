package dev.medtune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad input: each case either fails with one line naming the file and what was wrong, leaving no
 * output behind, or (for a bad row) goes on and lists the row in rejected.jsonl.
 */
class PrepareBadInputTest {
  static final String HEADER =
      "id,question,opa,opb,opc,opd,cop,choice_type,exp,subject_name,topic_name\n";
  static final String GOOD_EXP = "Spironolactone blocks aldosterone receptors and spares potassium.";

  @TempDir Path tmp;

  static String row(String id, String question, String cop, String exp) {
    return id + "," + question + ",Thiazides,Furosemide,Acetazolamide,Spironolactone," + cop
        + ",single," + exp + ",Pharmacology,Diuretics\n";
  }

  PrepareException fails(Path input) {
    Path out = tmp.resolve("out");
    PrepareException e = assertThrows(PrepareException.class,
        () -> Prepare.run(PrepareOptions.defaults(input, out)));
    assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
    assertFalse(Files.exists(out), "no output after a failure");
    try (Stream<Path> s = Files.list(tmp)) {
      assertTrue(s.noneMatch(p -> p.getFileName().toString().contains(".partial-")));
    } catch (IOException x) {
      throw new AssertionError(x);
    }
    return e;
  }

  List<JsonNode> rejected(Path out) throws IOException {
    return PrepareTest.lines(out.resolve("rejected.jsonl"));
  }

  @Test
  void missingFile() {
    Path p = tmp.resolve("nope.csv");
    assertEquals(p + ": no such file or folder", fails(p).getMessage());
  }

  @Test
  void unreadableFile() throws IOException {
    assumeFalse("root".equals(System.getProperty("user.name")),
        "root reads files whatever their permissions");
    Path p = Files.writeString(tmp.resolve("locked.csv"), HEADER);
    Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("---------"));
    assertTrue(fails(p).getMessage().contains("permission denied"));
  }

  @Test
  void fileThatIsNotWhatItsNameSays() throws IOException {
    Path p = Files.writeString(tmp.resolve("broken.parquet"), "this is not parquet at all");
    String m = fails(p).getMessage();
    assertTrue(m.startsWith(p + ": DuckDB could not read it as parquet"), m);
  }

  @Test
  void emptyFiles() throws IOException {
    for (String name : new String[] {"empty.csv", "empty.jsonl", "empty.json", "empty.parquet"}) {
      Path p = Files.createFile(tmp.resolve(name));
      assertTrue(fails(p).getMessage().contains("the file is empty"), name);
    }
    Path blank = Files.writeString(tmp.resolve("blank.jsonl"), "\n\n");
    assertTrue(fails(blank).getMessage().contains("no JSON object"));
    Path headerOnly = Files.writeString(tmp.resolve("header.csv"), HEADER);
    assertTrue(fails(headerOnly).getMessage().contains("no MedMCQA records"));
  }

  @Test
  void folderWithoutDataFiles() throws IOException {
    Path dir = Files.createDirectories(tmp.resolve("nothing"));
    Files.writeString(dir.resolve("README.md"), "# not data\n");
    assertTrue(fails(dir).getMessage().contains("no data files"));
  }

  @Test
  void wrongSchemaListsTheColumnsFound() throws IOException {
    Path p = Files.writeString(tmp.resolve("wrong.csv"), "question,answer,explanation\nq,a,e\n");
    String m = fails(p).getMessage();
    assertTrue(m.contains("missing columns id, opa, opb, opc, opd, cop, exp, choice_type"), m);
    assertTrue(m.endsWith("found question, answer, explanation"), m);
    Path j = Files.writeString(tmp.resolve("wrong.jsonl"),
        "{\"question\":\"q\",\"choices\":[\"A. x\"],\"answer\":0}\n");
    assertTrue(fails(j).getMessage().endsWith("found question, choices, answer"));
  }

  @Test
  void malformedJsonLinesAndNullOptionsAreRejectedAndTheRunGoesOn() throws IOException {
    String good = "{\"id\":\"g%d\",\"question\":\"Which diuretic spares potassium %d?\","
        + "\"opa\":\"Thiazides\",\"opb\":\"Furosemide\",\"opc\":\"Acetazolamide\","
        + "\"opd\":\"Spironolactone\",\"cop\":%d,\"choice_type\":\"single\",\"exp\":\""
        + GOOD_EXP + "\",\"subject_name\":\"Pharmacology\",\"topic_name\":null}\n";
    String text = String.format(good, 1, 1, 0)
        + "{\"id\":\"bad\",\"question\": oops}\n"
        + String.format(good, 2, 2, 0).replace("\"opb\":\"Furosemide\"", "\"opb\":null")
        + "[1, 2]\n"
        + String.format(good, 3, 3, 3)
        + String.format(good, 4, 4, 7);
    Path p = Files.writeString(tmp.resolve("mixed.jsonl"), text);
    Path out = tmp.resolve("out");
    PrepareReport r = Prepare.run(PrepareOptions.defaults(p, out).withValFraction(0));
    assertEquals(2, r.train());
    List<JsonNode> rej = rejected(out);
    assertEquals(4, rej.size());
    assertEquals(2, rej.get(0).get("line").asInt());
    assertTrue(rej.get(0).get("reason").asText().startsWith("malformed JSON"));
    assertEquals("g2", rej.get(1).get("id").asText());
    assertEquals("missing field opb", rej.get(1).get("reason").asText());
    assertEquals(4, rej.get(2).get("row").asInt());
    assertEquals("g4", rej.get(3).get("id").asText());
    assertTrue(rej.get(3).get("reason").asText().startsWith("cop 7 is outside the options"),
        rej.get(3).toString());
    assertEquals(p.toString(), rej.get(0).get("source").asText());

    PrepareException e = assertThrows(PrepareException.class,
        () -> Prepare.run(PrepareOptions.defaults(p, tmp.resolve("strict")).withStrict(true)));
    assertTrue(e.getMessage().startsWith(p + " row 2: malformed JSON"), e.getMessage());
    assertFalse(Files.exists(tmp.resolve("strict")));
  }

  @Test
  void copOutsideTheOptions() throws IOException {
    Path p = Files.writeString(tmp.resolve("cop.csv"), HEADER
        + row("a", "Which diuretic spares potassium?", "3", GOOD_EXP)
        + row("b", "Which one spares potassium?", "0", GOOD_EXP)
        + row("c", "Which drug spares potassium?", "4", GOOD_EXP)
        + row("d", "What spares potassium?", "two", GOOD_EXP)
        + row("e", "What spares potassium here?", "-1", GOOD_EXP));
    Path out = tmp.resolve("out");
    Prepare.run(PrepareOptions.defaults(p, out));
    List<JsonNode> rej = rejected(out);
    assertEquals(List.of("c", "d", "e"), rej.stream().map(n -> n.get("id").asText()).toList());
    assertEquals("cop 4 is outside the options (0-3 with 0-based cop, value 0 seen at row 2)",
        rej.get(0).get("reason").asText());
    assertEquals("answer", rej.get(0).get("stage").asText());
  }

  @Test
  void nonUtf8BytesRejectTheRowOnly() throws IOException {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    b.writeBytes((HEADER + row("a", "Which diuretic spares potassium?", "3", GOOD_EXP))
        .getBytes(StandardCharsets.UTF_8));
    b.writeBytes(row("b", "Which caf\u00e9 diuretic?", "0", GOOD_EXP)
        .getBytes(StandardCharsets.ISO_8859_1));
    b.writeBytes(row("c", "Which drug spares potassium?", "3", GOOD_EXP)
        .getBytes(StandardCharsets.UTF_8));
    Path p = Files.write(tmp.resolve("latin1.csv"), b.toByteArray());
    Path out = tmp.resolve("out");
    PrepareReport r = Prepare.run(PrepareOptions.defaults(p, out).withValFraction(0)
        .withCopBase(0));
    assertEquals(2, r.train());
    List<JsonNode> rej = rejected(out);
    assertEquals(1, rej.size());
    assertEquals(3, rej.get(0).get("line").asInt());
    assertTrue(rej.get(0).get("reason").asText().startsWith("invalid encoding"),
        rej.get(0).toString());
  }

  @Test
  void oneMegabyteFieldAndCsvQuoting() throws IOException {
    StringBuilder big = new StringBuilder();
    while (big.length() < (1 << 20)) {
      big.append("potassium ");
    }
    String quoted = "\"Which diuretic, when given \"\"long term\"\",\nspares potassium?\"";
    Path p = Files.writeString(tmp.resolve("big.csv"), HEADER
        + row("a", quoted, "3", "\"" + GOOD_EXP + "\nSecond line, with a comma.\"")
        + row("b", "Which drug spares potassium?", "0", big.toString()));
    Path out = tmp.resolve("out");
    Prepare.run(PrepareOptions.defaults(p, out).withValFraction(0)
        .withSelection(10, PrepareOptions.Order.LONGEST, 1));
    List<JsonNode> lines = PrepareTest.lines(out.resolve("train.jsonl"));
    assertEquals(2, lines.size());
    assertEquals(big.toString().strip(), lines.get(0).get("explanation").asText());
    assertEquals("Which diuretic, when given \"long term\",\nspares potassium?",
        lines.get(1).get("question").asText());
    assertEquals(GOOD_EXP + "\nSecond line, with a comma.", lines.get(1).get("explanation").asText());
  }

  @Test
  void unterminatedQuoteIsRejectedWithItsLine() throws IOException {
    Path p = Files.writeString(tmp.resolve("quote.csv"), HEADER
        + row("a", "Which diuretic spares potassium?", "3", GOOD_EXP)
        + row("b", "\"Which one spares potassium?", "0", GOOD_EXP));
    Path out = tmp.resolve("out");
    Prepare.run(PrepareOptions.defaults(p, out).withCopBase(0));
    List<JsonNode> rej = rejected(out);
    assertEquals(1, rej.size());
    assertEquals(3, rej.get(0).get("line").asInt());
    assertTrue(rej.get(0).get("reason").asText().contains("quote"), rej.get(0).toString());
  }

  @Test
  void outputPathThatIsAFileAndExistingOutput() throws IOException {
    Path in = Samples.resource("train-sample.csv");
    Path file = Files.writeString(tmp.resolve("out.txt"), "mine");
    PrepareException e = assertThrows(PrepareException.class,
        () -> Prepare.run(PrepareOptions.defaults(in, file)));
    assertTrue(e.getMessage().startsWith(file + ": is a file"), e.getMessage());
    assertEquals("mine", Files.readString(file));

    Path out = tmp.resolve("out");
    Prepare.run(PrepareOptions.defaults(in, out));
    e = assertThrows(PrepareException.class, () -> Prepare.run(PrepareOptions.defaults(in, out)));
    assertTrue(e.getMessage().contains("--overwrite"), e.getMessage());
    Prepare.run(PrepareOptions.defaults(in, out).withOverwrite(true)
        .withSelection(5, PrepareOptions.Order.SOURCE, 1));
    assertEquals(5, PrepareTest.lines(out.resolve("train.jsonl")).size()
        + PrepareTest.lines(out.resolve("val.jsonl")).size());

    Path theirs = Files.createDirectories(tmp.resolve("theirs"));
    Files.writeString(theirs.resolve("notes.txt"), "keep me");
    e = assertThrows(PrepareException.class,
        () -> Prepare.run(PrepareOptions.defaults(in, theirs).withOverwrite(true)));
    assertTrue(e.getMessage().contains("notes.txt"), e.getMessage());
    assertEquals("keep me", Files.readString(theirs.resolve("notes.txt")));

    Path empty = Files.createDirectories(tmp.resolve("empty"));
    Prepare.run(PrepareOptions.defaults(in, empty));
    assertTrue(Files.exists(empty.resolve("report.json")));
  }
}
