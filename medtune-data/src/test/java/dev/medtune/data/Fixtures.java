package dev.medtune.data;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.zip.GZIPOutputStream;

/** Test inputs in every form, made from the real train sample with DuckDB. */
final class Fixtures {
  private Fixtures() {}

  static final String SAMPLE_ROWS = "SELECT * REPLACE (CAST(cop AS INTEGER) AS cop) FROM read_csv(%s,"
      + " header=true, all_varchar=true)";

  /** Runs {@code COPY (sample query) TO target (options)}; {@code select} may wrap the rows. */
  static Path copy(Path target, String select, String options) throws SQLException {
    String rows = String.format(SAMPLE_ROWS, MedMcqaReader.literal(Samples.resource("train-sample.csv")));
    String sql = "COPY (" + select.replace("ROWS", "(" + rows + ")") + ") TO "
        + MedMcqaReader.literal(target) + " (" + options + ")";
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:");
        Statement s = c.createStatement()) {
      s.execute(sql);
    }
    return target;
  }

  static Path parquet(Path target) throws SQLException {
    return copy(target, "SELECT * FROM ROWS", "FORMAT parquet");
  }

  static Path csv(Path target) throws SQLException {
    return copy(target, "SELECT * FROM ROWS", "FORMAT csv, HEADER true");
  }

  static Path jsonLines(Path target) throws SQLException {
    return copy(target, "SELECT * FROM ROWS", "FORMAT json");
  }

  static Path jsonArray(Path target) throws SQLException {
    return copy(target, "SELECT * FROM ROWS", "FORMAT json, ARRAY true");
  }

  /** The official release's form: JSON lines with cop counted from 1. */
  static Path officialJsonLines(Path target) throws SQLException {
    return copy(target, "SELECT * REPLACE (cop + 1 AS cop) FROM ROWS", "FORMAT json");
  }

  static Path gzip(Path source, Path target) throws IOException {
    try (InputStream in = Files.newInputStream(source);
        OutputStream out = new GZIPOutputStream(Files.newOutputStream(target))) {
      in.transferTo(out);
    }
    return target;
  }
}
