package dev.medtune.data;

import java.nio.file.Path;

/**
 * How MedMCQA's {@code cop} counts: from 0 in the hub's files, from 1 in the official JSON release.
 * One rule for {@code prepare} and {@code eval}: the first 0 or 4 seen decides; without one,
 * parquet (the hub's form) is 0-based and other forms cannot be told.
 */
final class CopBase {
  private CopBase() {}

  /** The base that a {@code cop} value decides (0 means 0-based, 4 means 1-based), or null. */
  static Integer decidedBy(Integer cop) {
    return cop == null ? null : cop == 0 ? Integer.valueOf(0) : cop == 4 ? Integer.valueOf(1) : null;
  }

  /** The base of a file in which no value decided, when its form tells; null when it does not. */
  static Integer byForm(Path file) {
    return InputFormat.of(file) == InputFormat.PARQUET ? 0 : null;
  }

  /** Why nothing could be decided, for the one-line error. */
  static String undecidable(Path file, int rows) {
    return file + ": cannot tell whether cop counts from 0 (the hub's files) or from 1 (the"
        + " official JSON release): only values 1-3 in " + rows + " rows; pass --cop-base 0 or"
        + " --cop-base 1";
  }
}
