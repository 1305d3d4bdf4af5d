package dev.medtune.data;

import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;

/**
 * The output folder, written under a temporary name beside it and renamed when complete, so that
 * an interrupted run never leaves a folder that looks finished. An existing folder is replaced
 * only with {@code --overwrite}, and only if it holds nothing but what prepare writes.
 */
final class OutputFolder {

  static final Set<String> OUR_FILES =
      Set.of("train.jsonl", "val.jsonl", "rejected.jsonl", "report.json");

  private final Path target;
  private final Path temp;

  private OutputFolder(Path target, Path temp) {
    this.target = target;
    this.temp = temp;
  }

  static OutputFolder begin(Path output, boolean overwrite) {
    Path target = output.toAbsolutePath().normalize();
    if (Files.isRegularFile(target)) {
      throw new PrepareException(output + ": is a file; expected a folder to write the training"
          + " set into");
    }
    if (Files.isDirectory(target)) {
      List<String> entries = entries(target);
      if (!entries.isEmpty() && !overwrite) {
        throw new PrepareException(output + ": the folder exists and is not empty; pass"
            + " --overwrite to replace it");
      }
      List<String> foreign = entries.stream().filter(e -> !OUR_FILES.contains(e)).toList();
      if (!foreign.isEmpty()) {
        throw new PrepareException(output + ": holds files prepare did not write ("
            + String.join(", ", foreign.subList(0, Math.min(5, foreign.size())))
            + "); refusing to replace it, choose another --output");
      }
    }
    try {
      Path parent = target.getParent();
      Files.createDirectories(parent);
      Path temp = Files.createTempDirectory(parent, "." + target.getFileName() + ".partial-");
      return new OutputFolder(target, temp);
    } catch (IOException e) {
      throw new PrepareException(output + ": cannot create the output folder: " + e.getMessage(), e);
    }
  }

  Path temp() {
    return temp;
  }

  Path target() {
    return target;
  }

  /** Puts the finished folder in place of the target. */
  void commit() {
    try {
      Path old = null;
      if (Files.exists(target)) {
        old = target.resolveSibling("." + target.getFileName() + ".old-" + System.nanoTime());
        Files.move(target, old);
      }
      try {
        Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE);
      } catch (AtomicMoveNotSupportedException e) {
        Files.move(temp, target);
      }
      if (old != null) {
        deleteTree(old);
      }
    } catch (IOException e) {
      throw new PrepareException(target + ": cannot put the finished output in place: "
          + e.getMessage(), e);
    }
  }

  /** Removes the temporary folder after a failure. */
  void abandon() {
    try {
      deleteTree(temp);
    } catch (IOException ignored) {
      // nothing more to do; the name says it is partial
    }
  }

  private static List<String> entries(Path dir) {
    List<String> names = new ArrayList<>();
    try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
      for (Path p : ds) {
        names.add(p.getFileName().toString() + (Files.isDirectory(p) ? "/" : ""));
      }
    } catch (IOException e) {
      throw new PrepareException(dir + ": cannot list the output folder: " + e.getMessage(), e);
    }
    return names;
  }

  private static void deleteTree(Path p) throws IOException {
    if (!Files.exists(p)) {
      return;
    }
    try (Stream<Path> walk = Files.walk(p)) {
      for (Path q : walk.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(q);
      }
    }
  }
}
