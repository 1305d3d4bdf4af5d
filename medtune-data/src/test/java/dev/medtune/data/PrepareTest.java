package dev.medtune.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** prepare end to end on the real samples in every input form, stage by stage. */
class PrepareTest {
  static final ObjectMapper JSON = new ObjectMapper();

  @TempDir Path tmp;

  static List<JsonNode> lines(Path file) throws IOException {
    List<JsonNode> out = new ArrayList<>();
    for (String l : Files.readAllLines(file)) {
      out.add(JSON.readTree(l));
    }
    return out;
  }

  static JsonNode report(Path dir) throws IOException {
    return JSON.readTree(dir.resolve("report.json").toFile());
  }

  PrepareReport run(Path input, Path out) {
    return Prepare.run(PrepareOptions.defaults(input, out));
  }

  @Test
  void trainSampleWithTheDefaults() throws IOException {
    Path out = tmp.resolve("out");
    PrepareReport r = run(Samples.resource("train-sample.csv"), out);
    JsonNode st = report(out).get("stages");
    // counted independently from the CSV: 63 single-choice rows, of which 19 have no
    // explanation and one only "Ans. is 'b' i.e., Anti psychotics" (empty once cleaned),
    // one is just "Rifampicin" (the answer), one is "." (1 word)
    assertEquals(100, st.get("1_read").get("records").asLong());
    assertEquals(37, st.get("2_choice_type").get("dropped").asLong());
    assertEquals(20, st.get("5_filter").get("empty_explanation").asLong());
    assertEquals(1, st.get("5_filter").get("explanation_equals_answer").asLong());
    assertEquals(1, st.get("5_filter").get("fewer_than_min_words").asLong());
    assertEquals(41, st.get("5_filter").get("kept").asLong());
    assertEquals(39, r.train());
    assertEquals(2, r.val()); // round(41 * 0.05)
    assertEquals(39, lines(out.resolve("train.jsonl")).size());
    assertEquals(2, lines(out.resolve("val.jsonl")).size());
    assertEquals(0, Files.size(out.resolve("rejected.jsonl")));
    assertEquals(0, report(out).get("input").get("files").get(0).get("cop_base").asInt());
  }

  @Test
  void outputLinesHoldTheFieldsAndTheRecipeText() throws IOException {
    Path out = tmp.resolve("out");
    run(Samples.resource("train-sample.csv"), out);
    List<JsonNode> train = lines(out.resolve("train.jsonl"));
    JsonNode first = train.get(0);
    List<String> names = new ArrayList<>();
    first.fieldNames().forEachRemaining(names::add);
    assertEquals(List.of("id", "question", "options", "answer", "explanation", "subject", "prompt",
        "completion", "text"), names);
    for (JsonNode e : train) {
      assertEquals(e.get("prompt").asText() + e.get("completion").asText(), e.get("text").asText());
      assertEquals("Give an answer for the following medical question.\n\n### Question:\n"
          + e.get("question").asText() + "\n\n### Answer:\n", e.get("prompt").asText());
      assertEquals(e.get("answer").asText() + ". " + e.get("explanation").asText() + "\n",
          e.get("completion").asText());
      assertFalse(e.get("text").asText().contains("<|end_of_text|>"));
      assertEquals(4, e.get("options").size());
    }
    // the shortest explanation first: "terbutaline can be given as s.c (0.25mg) in asthma."
    assertEquals("08531c7b-c9f3-49f2-a8f2-e64ac23974e7", first.get("id").asText());
    assertEquals("Terbutaline", first.get("answer").asText());
  }

  @Test
  void everyInputFormGivesTheSameTrainingSet() throws Exception {
    Path csvOut = tmp.resolve("csv-out");
    run(Samples.resource("train-sample.csv"), csvOut);
    byte[] expected = Files.readAllBytes(csvOut.resolve("train.jsonl"));
    byte[] expectedVal = Files.readAllBytes(csvOut.resolve("val.jsonl"));

    Path parquet = Fixtures.parquet(tmp.resolve("train.parquet"));
    Path hub = tmp.resolve("hub");
    Files.createDirectories(hub.resolve("data"));
    Fixtures.parquet(hub.resolve("data/train-00000-of-00001.parquet"));
    Fixtures.copy(hub.resolve("data/test-00000-of-00001.parquet"),
        "SELECT * REPLACE (-1 AS cop) FROM ROWS", "FORMAT parquet");
    Files.createDirectories(hub.resolve(".cache"));
    Files.writeString(hub.resolve(".cache/ignored.csv"), "not,data\n");
    List<Path> inputs = List.of(
        parquet,
        Fixtures.gzip(parquet, tmp.resolve("train.parquet.gz")),
        Fixtures.csv(tmp.resolve("copy.csv")),
        Fixtures.gzip(Samples.resource("train-sample.csv"), tmp.resolve("train.csv.gz")),
        Fixtures.jsonLines(tmp.resolve("train.jsonl")),
        Fixtures.gzip(tmp.resolve("train.jsonl"), tmp.resolve("train.jsonl.gz")),
        Fixtures.jsonArray(tmp.resolve("array.json")),
        Fixtures.officialJsonLines(tmp.resolve("official.json")),
        hub);
    for (Path in : inputs) {
      Path out = tmp.resolve("out-" + in.getFileName());
      run(in, out);
      assertArrayEquals(expected, Files.readAllBytes(out.resolve("train.jsonl")), in.toString());
      assertArrayEquals(expectedVal, Files.readAllBytes(out.resolve("val.jsonl")), in.toString());
    }
    JsonNode official = report(tmp.resolve("out-official.json")).get("input").get("files").get(0);
    assertEquals("json_lines", official.get("format").asText());
    assertEquals(1, official.get("cop_base").asInt());
    assertTrue(official.get("cop_base_from").asText().startsWith("value 4 seen"));
    JsonNode hubReport = report(tmp.resolve("out-hub")).get("input");
    assertEquals(1, hubReport.get("files").size());
    assertTrue(hubReport.get("skipped_files").get(0).asText().endsWith("test-00000-of-00001.parquet"));
  }

  @Test
  void copBaseIsRefusedWhenNothingDecidesAndTakenFromTheOption() throws Exception {
    Path csv = Fixtures.copy(tmp.resolve("no0no4.csv"),
        "SELECT * FROM ROWS WHERE cop IN (1, 2)", "FORMAT csv, HEADER true");
    PrepareException e = assertThrows(PrepareException.class,
        () -> run(csv, tmp.resolve("out")));
    assertTrue(e.getMessage().contains("--cop-base"), e.getMessage());
    assertTrue(e.getMessage().startsWith(csv.toString()), e.getMessage());
    assertFalse(Files.exists(tmp.resolve("out")));
    try (Stream<Path> s = Files.list(tmp)) {
      assertTrue(s.noneMatch(p -> p.getFileName().toString().contains("partial")));
    }

    Prepare.run(PrepareOptions.defaults(csv, tmp.resolve("zero")).withCopBase(0));
    Prepare.run(PrepareOptions.defaults(csv, tmp.resolve("one")).withCopBase(1));
    // the same cop picks the option one further with base 0 than with base 1
    JsonNode a0 = lines(tmp.resolve("zero/train.jsonl")).get(0);
    JsonNode a1 = lines(tmp.resolve("one/train.jsonl")).stream()
        .filter(n -> n.get("id").equals(a0.get("id"))).findFirst().orElseThrow();
    assertNotEquals(a0.get("answer"), a1.get("answer"));

    // the hub's parquet form decides for 0 when the values do not
    Path parquet = Fixtures.copy(tmp.resolve("no0no4.parquet"),
        "SELECT * FROM ROWS WHERE cop IN (1, 2)", "FORMAT parquet");
    run(parquet, tmp.resolve("pq"));
    assertArrayEquals(Files.readAllBytes(tmp.resolve("zero/train.jsonl")),
        Files.readAllBytes(tmp.resolve("pq/train.jsonl")));
  }

  @Test
  void choiceTypeFilter() throws IOException {
    Path in = Samples.resource("validation-sample.csv");
    long single = Prepare.run(PrepareOptions.defaults(in, tmp.resolve("s"))).train();
    JsonNode rs = report(tmp.resolve("s")).get("stages");
    Prepare.run(PrepareOptions.defaults(in, tmp.resolve("m"))
        .withChoiceType(PrepareOptions.ChoiceType.MULTI));
    JsonNode rm = report(tmp.resolve("m")).get("stages");
    Prepare.run(PrepareOptions.defaults(in, tmp.resolve("a"))
        .withChoiceType(PrepareOptions.ChoiceType.ALL));
    JsonNode ra = report(tmp.resolve("a")).get("stages");
    assertEquals(33, rs.get("2_choice_type").get("dropped").asLong()); // 67 single / 33 multi
    assertEquals(67, rm.get("2_choice_type").get("dropped").asLong());
    assertEquals(0, ra.get("2_choice_type").get("dropped").asLong());
    assertEquals(ra.get("5_filter").get("kept").asLong(),
        rs.get("5_filter").get("kept").asLong() + rm.get("5_filter").get("kept").asLong());
    assertTrue(single > 0);
  }

  @Test
  void selectionOrders() throws IOException {
    Path in = Samples.resource("validation-pharmacology.csv");
    Path all = tmp.resolve("all");
    Prepare.run(PrepareOptions.defaults(in, all).withValFraction(0)
        .withSelection(100000, PrepareOptions.Order.SOURCE, 3407));
    List<JsonNode> source = lines(all.resolve("train.jsonl"));
    assertTrue(source.size() > 20);

    Path shortest = tmp.resolve("shortest");
    Prepare.run(PrepareOptions.defaults(in, shortest).withValFraction(0)
        .withSelection(10, PrepareOptions.Order.SHORTEST, 3407));
    List<Integer> allWords = source.stream().map(n -> Words.count(n.get("explanation").asText()))
        .sorted().toList();
    List<Integer> got = lines(shortest.resolve("train.jsonl")).stream()
        .map(n -> Words.count(n.get("explanation").asText())).toList();
    assertEquals(allWords.subList(0, 10), got);

    Path longest = tmp.resolve("longest");
    Prepare.run(PrepareOptions.defaults(in, longest).withValFraction(0)
        .withSelection(3, PrepareOptions.Order.LONGEST, 3407));
    List<Integer> top = lines(longest.resolve("train.jsonl")).stream()
        .map(n -> Words.count(n.get("explanation").asText())).toList();
    assertEquals(allWords.reversed().subList(0, 3), top);

    Path first = tmp.resolve("first");
    Prepare.run(PrepareOptions.defaults(in, first).withValFraction(0)
        .withSelection(5, PrepareOptions.Order.SOURCE, 3407));
    assertEquals(source.subList(0, 5), lines(first.resolve("train.jsonl")));

    List<String> r1 = ids(randomRun(in, "r1", 3407));
    List<String> r2 = ids(randomRun(in, "r2", 3407));
    List<String> r3 = ids(randomRun(in, "r3", 1));
    assertEquals(r1, r2);
    assertNotEquals(r1, r3);
    assertEquals(10, r1.size());
  }

  private Path randomRun(Path in, String name, long seed) {
    Path out = tmp.resolve(name);
    Prepare.run(PrepareOptions.defaults(in, out).withValFraction(0)
        .withSelection(10, PrepareOptions.Order.RANDOM, seed));
    return out.resolve("train.jsonl");
  }

  private static List<String> ids(Path f) throws IOException {
    return lines(f).stream().map(n -> n.get("id").asText()).toList();
  }

  @Test
  void splitIsDeterministicBySeed() throws IOException {
    Path in = Samples.resource("validation-pharmacology.csv");
    for (String name : new String[] {"a", "b"}) {
      Prepare.run(PrepareOptions.defaults(in, tmp.resolve(name)).withValFraction(0.2));
    }
    Prepare.run(PrepareOptions.defaults(in, tmp.resolve("c")).withValFraction(0.2)
        .withSelection(10000, PrepareOptions.Order.SHORTEST, 99));
    assertArrayEquals(Files.readAllBytes(tmp.resolve("a/val.jsonl")),
        Files.readAllBytes(tmp.resolve("b/val.jsonl")));
    assertNotEquals(ids(tmp.resolve("a/val.jsonl")), ids(tmp.resolve("c/val.jsonl")));
    long kept = report(tmp.resolve("a")).get("stages").get("5_filter").get("kept").asLong();
    assertEquals(Math.round(kept * 0.2), lines(tmp.resolve("a/val.jsonl")).size());
    List<String> both = new ArrayList<>(ids(tmp.resolve("a/train.jsonl")));
    both.addAll(ids(tmp.resolve("a/val.jsonl")));
    assertEquals(kept, both.stream().distinct().count());
  }

  @Test
  void repeatedQuestionsAreDroppedAndCounted() throws Exception {
    // the first 30 rows twice, the copies with other ids and the question in other case/spacing
    Path csv = Fixtures.copy(tmp.resolve("dups.csv"),
        "SELECT * FROM ROWS UNION ALL SELECT * REPLACE (id || '-copy' AS id,"
            + " '  ' || upper(question) || ' ' AS question) FROM (SELECT * FROM ROWS LIMIT 30)",
        "FORMAT csv, HEADER true");
    run(csv, tmp.resolve("d"));
    run(Samples.resource("train-sample.csv"), tmp.resolve("o"));
    JsonNode d = report(tmp.resolve("d")).get("stages").get("5_filter");
    JsonNode o = report(tmp.resolve("o")).get("stages").get("5_filter");
    assertTrue(d.get("repeated_question").asLong() > 0);
    assertEquals(o.get("kept").asLong(), d.get("kept").asLong());
    assertTrue(ids(tmp.resolve("d/train.jsonl")).stream().noneMatch(i -> i.endsWith("-copy")));
  }

  @Test
  void templateFromAFile() throws IOException {
    Path t = Files.writeString(tmp.resolve("t.txt"), "Q: {question}\nA: {answer} because {explanation}");
    Prepare.run(PrepareOptions.defaults(Samples.resource("train-sample.csv"), tmp.resolve("o"))
        .withTemplate(t));
    JsonNode e = lines(tmp.resolve("o/train.jsonl")).get(0);
    assertEquals("Q: " + e.get("question").asText() + "\nA: ", e.get("prompt").asText());
    assertEquals(e.get("answer").asText() + " because " + e.get("explanation").asText(),
        e.get("completion").asText());

    Path bad = Files.writeString(tmp.resolve("bad.txt"), "Q: {question} {answer} {topic}");
    PrepareException x = assertThrows(PrepareException.class, () -> Prepare.run(
        PrepareOptions.defaults(Samples.resource("train-sample.csv"), tmp.resolve("b"))
            .withTemplate(bad)));
    assertTrue(x.getMessage().startsWith(bad.toString()) && x.getMessage().contains("{topic}"),
        x.getMessage());
  }

  @Test
  void notebookCleanerIsSelectableAndCountedPerRule() throws IOException {
    Prepare.run(PrepareOptions.defaults(Samples.resource("train-sample.csv"), tmp.resolve("n"))
        .withCleaner(PrepareOptions.Cleaner.NOTEBOOK));
    JsonNode cl = report(tmp.resolve("n")).get("stages").get("4_cleanup");
    assertEquals("notebook", cl.get("cleaner").asText());
    assertEquals(8, cl.get("rows_changed_by_rule").size());
    Iterator<String> names = cl.get("rows_changed_by_rule").fieldNames();
    assertEquals("1: ^\\s", names.next());
    // ^\S*\s removes a first word from every explanation with a space in it
    assertTrue(cl.get("rows_changed_by_rule").get("5: ^\\S*\\s").asLong() > 30);

  }
}
