package dev.medtune.data.bench;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedWriter;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Benchmark of {@code medtune prepare} end to end (run by bench/prepare.sh): generates MedMCQA-shaped
 * rows (the real train split's 182,822 by default) as parquet, CSV and JSON lines, then times
 * {@code java -jar medtune.jar prepare} on each as a subprocess under {@code /usr/bin/time -v}
 * (wall and peak resident memory), and, as the same-run baseline, DuckDB's plain full read of the
 * same file from the same JVM and jar ({@link DuckDbScan}). Appends the table to bench/RESULTS.md.
 *
 * <p>Rows are resampled from the real samples in the test resources: each synthetic row copies a
 * real row's field lengths (in words), choice type and explanation prefix ("Ans. is 'b' i.e.,"),
 * with words drawn from the samples' vocabulary, so field lengths and the empty-explanation share
 * follow real MedMCQA.
 */
public final class PrepareBench {

  record Real(int question, int[] options, String choiceType, String expPrefix, int expWords) {}

  public static void main(String[] args) throws Exception {
    int rows = 182_822;
    int repeats = 3;
    Path work = Path.of("/tmp/medtune-bench");
    Path jar = Path.of("medtune-cli/target/medtune.jar");
    Path classes = Path.of("medtune-data/target/test-classes");
    Path results = Path.of("bench/RESULTS.md");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--rows" -> rows = Integer.parseInt(args[++i]);
        case "--repeats" -> repeats = Integer.parseInt(args[++i]);
        case "--work" -> work = Path.of(args[++i]);
        case "--results" -> results = Path.of(args[++i]);
        case "--generate" -> { // only write the rows as JSON lines (bench/cuda-recipe.sh's input)
          Path out = Path.of(args[++i]);
          generate(out, rows);
          System.out.printf("wrote %,d MedMCQA-shaped rows to %s%n", rows, out);
          return;
        }
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    Files.createDirectories(work);
    long t0 = System.nanoTime();
    Path jsonl = work.resolve("medmcqa-train.jsonl");
    Path parquet = work.resolve("medmcqa-train.parquet");
    Path csv = work.resolve("medmcqa-train.csv");
    Path marker = work.resolve("generated-rows");
    // the data depend only on the row count (fixed seed): reuse them when already there
    if (!Files.exists(marker) || !Files.readString(marker).equals(Integer.toString(rows))) {
      Files.deleteIfExists(marker);
      generate(jsonl, rows);
      try (Connection c = DriverManager.getConnection("jdbc:duckdb:");
          Statement s = c.createStatement()) {
        String src = "SELECT * FROM read_json(" + lit(jsonl) + ", format='newline_delimited')";
        s.execute("COPY (" + src + ") TO " + lit(parquet) + " (FORMAT parquet)");
        s.execute("COPY (" + src + ") TO " + lit(csv) + " (FORMAT csv, HEADER true)");
      }
      Files.writeString(marker, Integer.toString(rows));
      System.out.printf("generated %,d rows in %.1f s (not timed below)%n", rows,
          (System.nanoTime() - t0) / 1e9);
    }

    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    List<String> flags = List.of("--enable-native-access=ALL-UNNAMED", "--add-modules",
        "jdk.incubator.vector", "-XX:+UseParallelGC");
    StringBuilder table = new StringBuilder();
    table.append("| format | input MB | prepare wall s | prepare CPU s | prepare peak RSS MB |"
        + " scan wall s | scan CPU s | scan peak RSS MB | wall ratio | CPU ratio |\n"
        + "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (Path input : List.of(parquet, csv, jsonl)) {
      double[] pw = new double[repeats];
      double[] pr = new double[repeats];
      double[] bw = new double[repeats];
      double[] br = new double[repeats];
      double[] pc = new double[repeats];
      double[] bc = new double[repeats];
      for (int r = 0; r < repeats; r++) {
        List<String> prep = new ArrayList<>(List.of("/usr/bin/time", "-v", java));
        prep.addAll(flags);
        prep.addAll(List.of("-jar", jar.toString(), "prepare", "--input", input.toString(),
            "--output", work.resolve("out").toString(), "--overwrite"));
        double[] m = timed(prep);
        pw[r] = m[0];
        pr[r] = m[1];
        pc[r] = m[2];
        List<String> scan = new ArrayList<>(List.of("/usr/bin/time", "-v", java));
        scan.addAll(flags);
        scan.addAll(List.of("-cp", jar + ":" + classes, DuckDbScan.class.getName(),
            input.toString()));
        double[] b = timed(scan);
        bw[r] = b[0];
        br[r] = b[1];
        bc[r] = b[2];
      }
      String name = input.getFileName().toString();
      String format = name.substring(name.lastIndexOf('.') + 1);
      table.append(String.format(
          "| %s | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f |%n", format,
          Files.size(input) / 1e6, median(pw), median(pc), median(pr), median(bw), median(bc),
          median(br), median(pw) / median(bw), median(pc) / median(bc)));
      System.out.printf("%-8s prepare %.2f s (CPU %.2f s) %4.0f MB | DuckDB scan %.2f s (CPU %.2f s)"
          + " %4.0f MB%n", format, median(pw), median(pc), median(pr), median(bw), median(bc),
          median(br));
    }
    String cpu = cpuModel();
    String commit = run(List.of("git", "rev-parse", "--short", "HEAD")).strip();
    String entry = "\n## prepare end to end, " + rows + " MedMCQA-shaped rows\n\n"
        + "- date: " + Instant.now() + "\n- commit: " + commit + "\n- machine: " + cpu + ", "
        + Runtime.getRuntime().availableProcessors() + " cores (shared), Java "
        + System.getProperty("java.version") + "\n"
        + "- what: `java -jar medtune.jar prepare --input F --output DIR` as a subprocess under"
        + " `/usr/bin/time -v` (JVM start included); baseline: the same JVM and jar running DuckDB's"
        + " full read of F (`read_parquet` / `read_csv` / `read_json`, every column scanned);"
        + " targets: < 3 s and < 1 GB on 2 cores; medians of " + repeats + " runs; CPU = user +"
        + " system time; 1-minute load average when done: " + loadAverage() + "\n\n" + table;
    Files.writeString(results, entry, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    System.out.print(entry);
  }

  private static double[] timed(List<String> cmd) throws IOException, InterruptedException {
    String out = run(cmd);
    Matcher wall = Pattern.compile("Elapsed \\(wall clock\\) time \\(h:mm:ss or m:ss\\): "
        + "(?:(\\d+):)?(\\d+):(\\d+(?:\\.\\d+)?)").matcher(out);
    Matcher rss = Pattern.compile("Maximum resident set size \\(kbytes\\): (\\d+)").matcher(out);
    Matcher status = Pattern.compile("Exit status: (\\d+)").matcher(out);
    Matcher user = Pattern.compile("User time \\(seconds\\): ([\\d.]+)").matcher(out);
    Matcher sys = Pattern.compile("System time \\(seconds\\): ([\\d.]+)").matcher(out);
    if (!wall.find() || !rss.find() || !status.find() || !status.group(1).equals("0")
        || !user.find() || !sys.find()) {
      throw new IllegalStateException("the command failed: " + String.join(" ", cmd) + "\n" + out);
    }
    double s = (wall.group(1) == null ? 0 : Integer.parseInt(wall.group(1)) * 3600)
        + Integer.parseInt(wall.group(2)) * 60 + Double.parseDouble(wall.group(3));
    return new double[] {s, Long.parseLong(rss.group(1)) / 1024.0,
        Double.parseDouble(user.group(1)) + Double.parseDouble(sys.group(1))};
  }

  private static String run(List<String> cmd) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes());
    p.waitFor();
    return out;
  }

  private static double median(double[] v) {
    double[] s = v.clone();
    Arrays.sort(s);
    return s[s.length / 2];
  }

  private static String loadAverage() throws IOException {
    return Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
  }

  private static String cpuModel() throws IOException {
    for (String l : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
      if (l.startsWith("model name")) {
        return l.substring(l.indexOf(':') + 1).strip();
      }
    }
    return "unknown CPU";
  }

  private static String lit(Path p) {
    return "'" + p.toAbsolutePath().toString().replace("'", "''") + "'";
  }

  /** Writes {@code n} synthetic rows, resampled from the real samples' shapes, as JSON lines. */
  static void generate(Path out, int n) throws Exception {
    List<Real> real = new ArrayList<>();
    List<String> vocab = new ArrayList<>();
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:");
        Statement s = c.createStatement()) {
      for (String f : List.of("train-sample.csv", "validation-sample.csv",
          "validation-pharmacology.csv")) {
        try (ResultSet rs = s.executeQuery("SELECT question, opa, opb, opc, opd, choice_type, exp"
            + " FROM read_csv(" + lit(resource(f)) + ", header=true, all_varchar=true)")) {
          while (rs.next()) {
            String exp = rs.getString(7) == null ? "" : rs.getString(7);
            String[] ew = exp.isBlank() ? new String[0] : exp.strip().split("\\s+");
            String prefix = exp.startsWith("Ans") && ew.length >= 4
                ? String.join(" ", Arrays.copyOf(ew, 4)) : "";
            int[] opts = new int[4];
            for (int i = 0; i < 4; i++) {
              opts[i] = Math.max(1, rs.getString(2 + i).split("\\s+").length);
            }
            real.add(new Real(rs.getString(1).split("\\s+").length, opts, rs.getString(6), prefix,
                ew.length));
            vocab.addAll(Arrays.asList(rs.getString(1).split("\\s+")));
            vocab.addAll(Arrays.asList(ew));
          }
        }
      }
    }
    Random rnd = new Random(3407);
    ObjectMapper json = new ObjectMapper();
    json.getFactory().disable(JsonGenerator.Feature.AUTO_CLOSE_TARGET);
    try (BufferedWriter w = Files.newBufferedWriter(out)) {
      for (int i = 0; i < n; i++) {
        Real t = real.get(rnd.nextInt(real.size()));
        String[] opts = new String[4];
        for (int k = 0; k < 4; k++) {
          opts[k] = words(rnd, vocab, t.options()[k]);
        }
        String exp = t.expWords() == 0 ? null
            : ((t.expPrefix().isEmpty() ? "" : t.expPrefix() + " ")
                + words(rnd, vocab, Math.max(1, t.expWords() - 4)));
        var row = new java.util.LinkedHashMap<String, Object>();
        row.put("id", new UUID(rnd.nextLong(), rnd.nextLong()).toString());
        row.put("question", words(rnd, vocab, t.question()) + "?");
        row.put("opa", opts[0]);
        row.put("opb", opts[1]);
        row.put("opc", opts[2]);
        row.put("opd", opts[3]);
        row.put("cop", rnd.nextInt(4));
        row.put("choice_type", t.choiceType());
        row.put("exp", exp);
        row.put("subject_name", "Pharmacology");
        row.put("topic_name", null);
        json.writeValue(w, row);
        w.write('\n');
      }
    }
  }

  private static String words(Random rnd, List<String> vocab, int count) {
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < count; i++) {
      if (i > 0) {
        b.append(' ');
      }
      b.append(vocab.get(rnd.nextInt(vocab.size())));
    }
    return b.toString();
  }

  private static Path resource(String name) throws URISyntaxException {
    return Path.of(PrepareBench.class.getResource("/medmcqa/" + name).toURI());
  }
}
