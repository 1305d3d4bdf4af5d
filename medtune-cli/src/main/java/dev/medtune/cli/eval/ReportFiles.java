package dev.medtune.cli.eval;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * Writes {@code report.json} and {@code report.md} into the output folder: each through a temporary
 * file renamed into place, so that a report file that exists is complete; an existing report is
 * replaced only when asked.
 */
public final class ReportFiles {
  public static final String JSON_FILE = "report.json";
  public static final String MARKDOWN_FILE = "report.md";

  private ReportFiles() {}

  /** Fails before any work when the folder already holds a report and overwriting was not asked. */
  public static void checkWritable(Path dir, boolean overwrite) {
    if (Files.exists(dir) && !Files.isDirectory(dir)) {
      throw new IllegalArgumentException(dir + ": exists and is not a folder");
    }
    for (String name : List.of(JSON_FILE, MARKDOWN_FILE)) {
      if (!overwrite && Files.exists(dir.resolve(name))) {
        throw new IllegalArgumentException(dir.resolve(name)
            + ": already exists (pass --overwrite to replace it)");
      }
    }
  }

  public static void write(Path dir, JsonNode json, String markdown) throws IOException {
    Files.createDirectories(dir);
    writeAtomically(dir.resolve(MARKDOWN_FILE), markdown);
    writeAtomically(dir.resolve(JSON_FILE),
        McqReport.JSON.writerWithDefaultPrettyPrinter().writeValueAsString(json) + "\n");
  }

  private static void writeAtomically(Path target, String text) throws IOException {
    // a plain new file (not createTempFile, which would make it private to the owner)
    Path tmp = target.resolveSibling("." + target.getFileName() + "." + ProcessHandle.current().pid()
        + "." + System.nanoTime() + ".tmp");
    try {
      Files.writeString(tmp, text, StandardCharsets.UTF_8);
      try (var ch = java.nio.channels.FileChannel.open(tmp, java.nio.file.StandardOpenOption.WRITE)) {
        ch.force(true);
      }
      Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } finally {
      Files.deleteIfExists(tmp);
    }
  }
}
