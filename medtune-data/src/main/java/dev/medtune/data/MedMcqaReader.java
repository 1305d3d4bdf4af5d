package dev.medtune.data;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.StringJoiner;

/**
 * Reads MedMCQA records from parquet, CSV, JSON lines or a JSON array with DuckDB (in-process,
 * through JDBC), one streaming pass per file. Columns are found by name. Records DuckDB cannot
 * parse (a CSV line with an unterminated quote or bytes that are not UTF-8, a JSON line that is
 * not JSON) are handed to the sink as rejects with their position; the rest as rows.
 */
final class MedMcqaReader {

  /** The columns read, in this order; the last two may be absent. */
  static final List<String> COLUMNS = List.of(
      "id", "question", "opa", "opb", "opc", "opd", "cop", "exp", "choice_type", "subject_name");

  private static final int REQUIRED_ALWAYS = 8;
  private static final int CHOICE_TYPE = 8;
  /** DuckDB's limit for one CSV or JSON line; longer ones are rejected, not fatal. */
  private static final long MAX_LINE_BYTES = 64L << 20;

  interface Sink {
    void row(MedMcqaRow row);

    /** A record that could not be read: {@code row} or {@code line} (1-based) may be -1. */
    void reject(String source, long row, long line, String id, String reason);
  }

  private final Path scratch;

  /** @param scratch a folder for decompressed copies ({@code .parquet.gz}) */
  MedMcqaReader(Path scratch) {
    this.scratch = scratch;
  }

  /**
   * Reads one file.
   *
   * @param keepChoiceType "single" or "multi" when later stages keep only that choice type (the
   *     column is then required), null for all
   */
  void read(Path file, String keepChoiceType, Sink sink) {
    boolean needChoiceType = keepChoiceType != null;
    InputFormat format = InputFormat.of(file);
    Path readable = file;
    try {
      if (format == InputFormat.PARQUET && InputFormat.isGzip(file)) {
        // parquet compresses inside the file, so DuckDB does not read gzipped parquet
        readable = Files.createTempFile(scratch, "gunzip-", ".parquet");
        try (InputStream in = InputFormat.open(file)) {
          Files.copy(in, readable, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
      }
      try (Connection c = connect()) {
        List<String> found = columns(c, readable, format, file);
        Map<String, String> byName = new LinkedHashMap<>();
        for (String f : found) {
          byName.putIfAbsent(f.toLowerCase(Locale.ROOT), f);
        }
        List<String> missing = new ArrayList<>();
        for (int i = 0; i < COLUMNS.size(); i++) {
          boolean required = i < REQUIRED_ALWAYS || (i == CHOICE_TYPE && needChoiceType);
          if (required && !byName.containsKey(COLUMNS.get(i))) {
            missing.add(COLUMNS.get(i));
          }
        }
        if (!missing.isEmpty()) {
          throw new PrepareException(file + ": missing column" + (missing.size() > 1 ? "s " : " ")
              + String.join(", ", missing) + "; expected MedMCQA columns " + String.join(", ",
              COLUMNS.subList(0, REQUIRED_ALWAYS)) + ", choice_type[, subject_name]; found "
              + (found.isEmpty() ? "none" : String.join(", ", found)));
        }
        stream(c, readable, format, file, found, byName, keepChoiceType, sink);
      }
    } catch (SQLException e) {
      throw new PrepareException(file + ": DuckDB could not read it as " + describe(format) + ": "
          + firstLine(e.getMessage()), e);
    } catch (IOException e) {
      throw new PrepareException(file + ": cannot read it: " + e.getMessage(), e);
    } finally {
      if (readable != file) {
        try {
          Files.deleteIfExists(readable);
        } catch (IOException ignored) {
          // the scratch folder goes with the run's temporary output
        }
      }
    }
  }

  private static Connection connect() throws SQLException {
    Properties p = new Properties();
    p.setProperty("jdbc_stream_results", "true");
    return DriverManager.getConnection("jdbc:duckdb:", p);
  }

  private static List<String> columns(Connection c, Path path, InputFormat format, Path file)
      throws SQLException, IOException {
    String lit = literal(path);
    String sql = switch (format) {
      case PARQUET -> "DESCRIBE SELECT * FROM read_parquet(" + lit + ")";
      case JSON_ARRAY -> "DESCRIBE SELECT * FROM read_json(" + lit + ", format='array')";
      case JSON_LINES -> "SELECT json_keys(j) FROM " + rawLines(lit)
          + " WHERE CASE WHEN json_valid(j) THEN json_type(j) END = 'OBJECT' LIMIT 1";
      case CSV -> null;
    };
    if (format == InputFormat.CSV) {
      return csvHeader(path, file);
    }
    List<String> names = new ArrayList<>();
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      if (format == InputFormat.JSON_LINES) {
        if (!rs.next()) {
          throw new PrepareException(file + ": no JSON object in the file; expected one MedMCQA"
              + " record per line");
        }
        for (Object o : (Object[]) rs.getArray(1).getArray()) {
          names.add(String.valueOf(o));
        }
      } else {
        while (rs.next()) {
          names.add(rs.getString(1));
        }
      }
    }
    return names;
  }

  /**
   * A column as UTF-8 bytes: {@code encode()} hands JDBC a BLOB, which {@code new String(bytes,
   * UTF_8)} turns into text about twice as fast as the driver's VARCHAR path (which decodes
   * through a CharsetDecoder). The explanation of a row the choice-type stage will drop is not
   * fetched at all.
   */
  private static String column(String col, Map<String, String> byName, InputFormat format,
      String keepChoiceType) {
    String value = value(col, byName, format);
    if (value == null) {
      return "NULL";
    }
    if (col.equals("exp") && keepChoiceType != null && byName.containsKey("choice_type")) {
      // looser than the Java test of the choice type, so that no kept row loses its explanation
      value = "CASE WHEN contains(lower(" + value("choice_type", byName, format) + "), "
          + sqlString(keepChoiceType) + ") THEN " + value + " END";
    }
    return "encode(" + value + ")";
  }

  private static String value(String col, Map<String, String> byName, InputFormat format) {
    String actual = byName.get(col);
    if (actual == null) {
      return null;
    }
    return format == InputFormat.JSON_LINES
        ? "x[" + (COLUMNS.indexOf(col) + 1) + "]"
        : "CAST(" + ident(actual) + " AS VARCHAR)";
  }

  private static String text(ResultSet rs, int column) throws SQLException {
    byte[] b = rs.getBytes(column);
    return b == null ? null : new String(b, StandardCharsets.UTF_8);
  }

  private void stream(Connection c, Path path, InputFormat format, Path file, List<String> found,
      Map<String, String> byName, String keepChoiceType, Sink sink) throws SQLException {
    String lit = literal(path);
    String source = file.toString();
    StringJoiner select = new StringJoiner(", ");
    for (String col : COLUMNS) {
      select.add(column(col, byName, format, keepChoiceType));
    }
    String sql = switch (format) {
      case PARQUET -> "SELECT " + select + " FROM read_parquet(" + lit + ")";
      case CSV -> {
        StringJoiner cols = new StringJoiner(", ", "{", "}");
        for (String f : found) {
          cols.add(sqlString(f) + ": 'VARCHAR'");
        }
        yield "SELECT " + select + " FROM read_csv(" + lit + ", header=true, auto_detect=false,"
            + " columns=" + cols + ", delim=',', quote='\"', escape='\"', ignore_errors=true,"
            + " store_rejects=true, max_line_size=" + MAX_LINE_BYTES + ")";
      }
      case JSON_ARRAY -> {
        StringJoiner cols = new StringJoiner(", ", "{", "}");
        for (String col : COLUMNS) {
          if (byName.containsKey(col)) {
            cols.add(sqlString(byName.get(col)) + ": 'VARCHAR'");
          }
        }
        yield "SELECT " + select + " FROM read_json(" + lit + ", format='array', columns=" + cols
            + ")";
      }
      case JSON_LINES -> {
        StringJoiner paths = new StringJoiner(", ", "[", "]");
        for (String col : COLUMNS) {
          paths.add(sqlString("$.\"" + byName.getOrDefault(col, col) + "\""));
        }
        yield "SELECT " + select + ", encode(j), x IS NULL FROM (SELECT j, CASE WHEN json_valid(j) THEN"
            + " json_extract_string(j, " + paths + ") END AS x FROM " + rawLines(lit) + ")";
      }
    };
    long n = 0;
    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
      while (rs.next()) {
        n++;
        if (format == InputFormat.JSON_LINES && rs.getBoolean(12)) {
          String line = text(rs, 11);
          if (line == null || line.isBlank()) {
            continue;
          }
          sink.reject(source, n, n, null, "malformed JSON: " + jsonError(line));
          continue;
        }
        List<String> options =
            Arrays.asList(text(rs, 3), text(rs, 4), text(rs, 5), text(rs, 6));
        sink.row(new MedMcqaRow(source, n, text(rs, 1), text(rs, 2), options,
            text(rs, 7), text(rs, 9), text(rs, 8), text(rs, 10)));
      }
    }
    if (format == InputFormat.CSV || format == InputFormat.JSON_LINES) {
      String rejects = "SELECT line, first(error_type ORDER BY column_idx),"
          + " first(error_message ORDER BY column_idx) FROM reject_errors GROUP BY line"
          + " ORDER BY line";
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(rejects)) {
        while (rs.next()) {
          String type = rs.getString(2);
          sink.reject(source, -1, rs.getLong(1), null,
              (type == null ? "" : type.toLowerCase(Locale.ROOT) + ": ")
                  + firstLine(rs.getString(3)));
        }
      }
    }
  }

  /** The file's lines as one VARCHAR column {@code j}, nothing split or unquoted. */
  private static String rawLines(String lit) {
    // chr(1) cannot occur in a valid JSON line (control characters must be escaped in JSON)
    return "read_csv(" + lit + ", columns={'j': 'VARCHAR'}, header=false, auto_detect=false,"
        + " delim=chr(1), quote='', escape='', ignore_errors=true, store_rejects=true,"
        + " max_line_size=" + MAX_LINE_BYTES + ")";
  }

  private static String jsonError(String line) {
    try {
      new com.fasterxml.jackson.databind.ObjectMapper().readTree(line);
      return "not a JSON object";
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      return firstLine(e.getOriginalMessage());
    }
  }

  /** The header of a CSV file: the first record, split at commas outside quotes. */
  static List<String> csvHeader(Path path, Path file) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (InputStream in = InputFormat.open(path)) {
      boolean quoted = false;
      int b;
      while ((b = in.read()) >= 0) {
        if (b == '"') {
          quoted = !quoted;
        }
        if (!quoted && (b == '\n' || b == '\r')) {
          break;
        }
        bytes.write(b);
        if (bytes.size() > (1 << 20)) {
          throw new PrepareException(file + ": the first line is over 1 MB; expected a CSV header"
              + " naming the MedMCQA columns");
        }
      }
    }
    String header = bytes.toString(StandardCharsets.UTF_8);
    if (header.startsWith("\uFEFF")) {
      header = header.substring(1);
    }
    if (header.isBlank()) {
      throw new PrepareException(file + ": the file is empty; expected a CSV header naming the"
          + " MedMCQA columns");
    }
    List<String> names = new ArrayList<>();
    StringBuilder cur = new StringBuilder();
    boolean quoted = false;
    for (int i = 0; i < header.length(); i++) {
      char ch = header.charAt(i);
      if (ch == '"') {
        if (quoted && i + 1 < header.length() && header.charAt(i + 1) == '"') {
          cur.append('"');
          i++;
        } else {
          quoted = !quoted;
        }
      } else if (ch == ',' && !quoted) {
        names.add(cur.toString().strip());
        cur.setLength(0);
      } else {
        cur.append(ch);
      }
    }
    names.add(cur.toString().strip());
    return names;
  }

  private static String describe(InputFormat f) {
    return switch (f) {
      case PARQUET -> "parquet";
      case CSV -> "CSV";
      case JSON_ARRAY -> "a JSON array";
      case JSON_LINES -> "JSON lines";
    };
  }

  static String literal(Path p) {
    return sqlString(p.toAbsolutePath().toString());
  }

  private static String sqlString(String s) {
    return "'" + s.replace("'", "''") + "'";
  }

  private static String ident(String s) {
    return "\"" + s.replace("\"", "\"\"") + "\"";
  }

  static String firstLine(String s) {
    if (s == null) {
      return "";
    }
    String t = s.strip();
    int nl = t.indexOf('\n');
    return (nl < 0 ? t : t.substring(0, nl)).strip();
  }
}
