package dev.medtune.data;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.stream.Stream;

/**
 * The data files of an input: the file itself, or the data files under a folder (the hub's layout
 * {@code data/train-00000-of-00001.parquet}, the official release's {@code train.json}), in path
 * order. Where files are named by split, only the chosen split is read, so that a folder holding
 * train, validation and test never mixes them.
 */
record InputFiles(List<Path> files, List<Path> skipped) {

  private static final Set<String> SPLITS = Set.of("train", "validation", "valid", "dev", "test");

  static InputFiles find(Path input, String split) {
    if (!Files.exists(input)) {
      throw new PrepareException(input + ": no such file or folder");
    }
    if (!Files.isReadable(input)) {
      throw new PrepareException(input + ": cannot read it (permission denied)");
    }
    if (Files.isRegularFile(input)) {
      checkFile(input);
      return new InputFiles(List.of(input), List.of());
    }
    List<Path> all;
    try (Stream<Path> walk = Files.walk(input)) {
      all = walk.filter(Files::isRegularFile)
          .filter(p -> !hidden(input.relativize(p)))
          .filter(InputFormat::isDataFile)
          .sorted()
          .toList();
    } catch (IOException e) {
      throw new PrepareException(input + ": cannot list the folder: " + e.getMessage(), e);
    }
    if (all.isEmpty()) {
      throw new PrepareException(input + ": no data files in the folder; expected .parquet, .csv,"
          + " .json or .jsonl files (optionally .gz)");
    }
    boolean bySplit = all.stream().anyMatch(p -> splitOf(p) != null);
    if (!bySplit) {
      all.forEach(InputFiles::checkFile);
      return new InputFiles(all, List.of());
    }
    List<Path> chosen = new ArrayList<>();
    List<Path> skipped = new ArrayList<>();
    for (Path p : all) {
      (split.equalsIgnoreCase(splitOf(p)) ? chosen : skipped).add(p);
    }
    if (chosen.isEmpty()) {
      throw new PrepareException(input + ": no file of split '" + split + "' in the folder (found "
          + all.stream().map(InputFiles::splitOf).distinct().toList() + "); pass --split");
    }
    chosen.forEach(InputFiles::checkFile);
    return new InputFiles(chosen, skipped);
  }

  /** "train" for train-00000-of-00001.parquet or train.json; null when the name names no split. */
  static String splitOf(Path p) {
    String n = p.getFileName().toString().toLowerCase(Locale.ROOT);
    int end = 0;
    while (end < n.length() && Character.isLetter(n.charAt(end))) {
      end++;
    }
    String head = n.substring(0, end);
    return SPLITS.contains(head) ? head : null;
  }

  private static boolean hidden(Path relative) {
    for (Path part : relative) {
      if (part.toString().startsWith(".")) {
        return true;
      }
    }
    return false;
  }

  private static void checkFile(Path f) {
    if (!Files.isReadable(f)) {
      throw new PrepareException(f + ": cannot read it (permission denied)");
    }
    try {
      if (Files.size(f) == 0) {
        throw new PrepareException(f + ": the file is empty; expected MedMCQA records");
      }
    } catch (IOException e) {
      throw new PrepareException(f + ": cannot read it: " + e.getMessage(), e);
    }
    InputFormat.of(f);
  }
}
