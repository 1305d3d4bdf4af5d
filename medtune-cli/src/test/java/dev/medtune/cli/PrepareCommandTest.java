package dev.medtune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code medtune prepare} through {@link Main#execute}: exit codes, summary, one-line failures. */
class PrepareCommandTest {
  static final String SAMPLE = "../medtune-data/src/test/resources/medmcqa/train-sample.csv";

  @TempDir Path tmp;
  private final ByteArrayOutputStream out = new ByteArrayOutputStream();
  private final ByteArrayOutputStream err = new ByteArrayOutputStream();
  private PrintStream oldOut;
  private PrintStream oldErr;

  @BeforeEach
  void capture() {
    oldOut = System.out;
    oldErr = System.err;
    System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
    System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
  }

  @AfterEach
  void restore() {
    System.setOut(oldOut);
    System.setErr(oldErr);
  }

  private String out() {
    return out.toString(StandardCharsets.UTF_8);
  }

  private String err() {
    return err.toString(StandardCharsets.UTF_8);
  }

  @Test
  void preparesTheSampleAndPrintsTheSummary() {
    Path dir = tmp.resolve("prepared");
    assertEquals(0, Main.execute("prepare", "--input", SAMPLE, "--output", dir.toString()), err());
    String o = out();
    assertTrue(o.contains("2 choice type") && o.contains("-37"), o);
    assertTrue(o.matches("(?s).*7 split\\s+39\\s+train.jsonl.*"), o);
    assertTrue(o.matches("(?s).*7 split\\s+2\\s+val.jsonl.*"), o);
    assertTrue(Files.exists(dir.resolve("report.json")));
  }

  @Test
  void failuresAreOneLineWithExitOne() {
    Path dir = tmp.resolve("x");
    assertEquals(1, Main.execute("prepare", "--input", "missing.csv", "--output", dir.toString()));
    assertEquals("medtune: missing.csv: no such file or folder", err().strip());
    assertFalse(Files.exists(dir));
  }

  @Test
  void badUsageExitsTwo() {
    assertEquals(2, Main.execute("prepare", "--input", SAMPLE));
    assertTrue(err().contains("--output"), err());
    err.reset();
    assertEquals(2, Main.execute("prepare", "--input", SAMPLE, "--output", tmp.resolve("a").toString(),
        "--choice-type", "some"));
    assertTrue(err().contains("--choice-type must be one of single, multi, all"), err());
    err.reset();
    assertEquals(2, Main.execute("prepare", "--input", SAMPLE, "--output", tmp.resolve("b").toString(),
        "--val-fraction", "1.5"));
    assertTrue(err().contains("--val-fraction"), err());
  }

  @Test
  void helpListsTheOptions() {
    assertEquals(0, Main.execute("prepare", "--help"));
    for (String opt : new String[] {"--input", "--output", "--overwrite", "--strict", "--choice-type",
        "--cop-base", "--cleaner", "--min-words", "--limit", "--order", "--seed", "--val-fraction",
        "--template", "--split"}) {
      assertTrue(out().contains(opt), opt);
    }
  }
}
