package dev.medtune.cuda;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * The table the GPU run prints: one row per check (op, case, max error, tolerance, pass/fail).
 * Rows are printed as they come and, when the system property {@code medtune.cuda.report} names a
 * file, appended to it (cuda/run-on-gpu.sh collects them).
 */
final class CheckTable {

  private static final List<String> rows = new ArrayList<>();

  private CheckTable() {}

  static synchronized void row(String op, String what, double maxError, String tolerance, boolean pass) {
    String line = String.format("| %-22s | %-52s | %10.3e | %-34s | %s |", op, what, maxError, tolerance,
        pass ? "pass" : "FAIL");
    rows.add(line);
    System.out.println(line);
    String file = System.getProperty("medtune.cuda.report");
    if (file != null) {
      try {
        Files.writeString(Path.of(file), line + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
      } catch (IOException e) {
        throw new IllegalStateException("cannot append to " + file + ": " + e.getMessage());
      }
    }
  }
}
