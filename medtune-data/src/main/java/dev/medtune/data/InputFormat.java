package dev.medtune.data;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.zip.GZIPInputStream;

/** The file forms MedMCQA comes in, told apart by name (and, for {@code .json}, first byte). */
enum InputFormat {
  PARQUET, CSV, JSON_ARRAY, JSON_LINES;

  static boolean isGzip(Path file) {
    return file.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".gz");
  }

  /** The name without {@code .gz}, lower case. */
  static String baseName(Path file) {
    String n = file.getFileName().toString().toLowerCase(Locale.ROOT);
    return n.endsWith(".gz") ? n.substring(0, n.length() - 3) : n;
  }

  /** Whether a file in a folder is one medtune reads. */
  static boolean isDataFile(Path file) {
    String n = baseName(file);
    return n.endsWith(".parquet") || n.endsWith(".csv") || n.endsWith(".json")
        || n.endsWith(".jsonl") || n.endsWith(".ndjson");
  }

  static InputFormat of(Path file) {
    String n = baseName(file);
    if (n.endsWith(".parquet")) {
      return PARQUET;
    }
    if (n.endsWith(".csv")) {
      return CSV;
    }
    if (n.endsWith(".jsonl") || n.endsWith(".ndjson")) {
      return JSON_LINES;
    }
    if (n.endsWith(".json")) {
      // the official release's train.json is JSON lines; a .json export of a table is an array
      int first = firstNonSpaceByte(file);
      if (first < 0) {
        throw new PrepareException(file + ": the file is empty; expected MedMCQA records");
      }
      return first == '[' ? JSON_ARRAY : JSON_LINES;
    }
    throw new PrepareException(file + ": unsupported file type; expected .parquet, .csv, .json,"
        + " .jsonl (optionally .gz)");
  }

  /** Opens a file, decompressing {@code .gz}. */
  static InputStream open(Path file) throws IOException {
    InputStream in = new BufferedInputStream(Files.newInputStream(file), 1 << 16);
    return isGzip(file) ? new GZIPInputStream(in, 1 << 16) : in;
  }

  private static int firstNonSpaceByte(Path file) {
    try (InputStream in = open(file)) {
      int b;
      while ((b = in.read()) >= 0) {
        if (b == 0xEF || b == 0xBB || b == 0xBF) {
          continue; // UTF-8 byte order mark
        }
        if (b != ' ' && b != '\t' && b != '\n' && b != '\r') {
          return b;
        }
      }
      return -1;
    } catch (IOException e) {
      throw new PrepareException(file + ": cannot read: " + e.getMessage(), e);
    }
  }
}
