package dev.medtune.model.train;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Checkpoint folders {@code OUT/checkpoint-N}, written so that a crash, a kill or a full disk at
 * any moment leaves either the new checkpoint complete or the previous one untouched: the
 * contents go to {@code OUT/checkpoint-N.tmp}, every file and the folder are forced to disk
 * ({@code fsync}), the folder is renamed to {@code checkpoint-N} and {@code OUT} is forced;
 * only then are older checkpoints beyond the number to keep deleted. A {@code .tmp} folder is
 * never a checkpoint; the next save removes it.
 */
final class CheckpointFolder {
  private static final Pattern NAME = Pattern.compile("checkpoint-(\\d+)");

  private CheckpointFolder() {}

  /** Writes a checkpoint's files into a folder. */
  @FunctionalInterface
  interface Contents {
    void writeTo(Path dir) throws IOException;
  }

  /**
   * Saves checkpoint {@code step} under {@code outDir} and keeps the newest {@code keep} complete
   * checkpoints (at least 1). A failure while writing removes the temporary folder and is
   * rethrown as an {@link UncheckedIOException} naming the checkpoint; earlier checkpoints are
   * not touched.
   */
  static Path save(Path outDir, long step, int keep, Contents contents) {
    if (keep < 1) {
      throw new IllegalArgumentException("must keep at least one checkpoint, found " + keep);
    }
    Path dir = outDir.resolve("checkpoint-" + step);
    Path tmp = outDir.resolve("checkpoint-" + step + ".tmp");
    try {
      Files.createDirectories(outDir);
      deleteRecursively(tmp);
      Files.createDirectory(tmp);
      try {
        contents.writeTo(tmp);
        forceTree(tmp);
      } catch (UncheckedIOException e) {
        deleteQuietly(tmp); // e.g. the safetensors writer's "No space left on device"
        throw e.getCause();
      } catch (IOException | RuntimeException e) {
        deleteQuietly(tmp);
        throw e;
      }
      if (Files.exists(dir)) {
        // re-saving a step (e.g. after resuming from it): swap, so one complete copy always exists
        Path old = outDir.resolve("checkpoint-" + step + ".old");
        deleteRecursively(old);
        move(dir, old);
        move(tmp, dir);
        deleteRecursively(old);
      } else {
        move(tmp, dir);
      }
      force(outDir);
      List<Path> all = complete(outDir);
      for (int i = 0; i + keep < all.size(); i++) {
        if (!all.get(i).equals(dir)) {
          deleteRecursively(all.get(i));
        }
      }
      return dir;
    } catch (IOException e) {
      throw new UncheckedIOException(dir + ": cannot save the checkpoint: " + e.getMessage()
          + " (earlier checkpoints are intact)", e);
    }
  }

  /** The newest complete checkpoint under {@code outDir}, if any. */
  static Optional<Path> latest(Path outDir) {
    List<Path> all = complete(outDir);
    return all.isEmpty() ? Optional.empty() : Optional.of(all.get(all.size() - 1));
  }

  /** The step of a {@code checkpoint-N} folder. */
  static long stepOf(Path checkpoint) {
    Matcher m = NAME.matcher(checkpoint.getFileName().toString());
    if (!m.matches()) {
      throw new IllegalArgumentException(checkpoint + ": not a checkpoint-N folder");
    }
    return Long.parseLong(m.group(1));
  }

  /** Complete checkpoints, oldest first. */
  static List<Path> complete(Path outDir) {
    if (!Files.isDirectory(outDir)) {
      return List.of();
    }
    try (Stream<Path> s = Files.list(outDir)) {
      return s.filter(p -> NAME.matcher(p.getFileName().toString()).matches() && Files.isDirectory(p))
          .sorted(Comparator.comparingLong(CheckpointFolder::stepOf))
          .toList();
    } catch (IOException e) {
      throw new UncheckedIOException(outDir + ": cannot list checkpoints: " + e.getMessage(), e);
    }
  }

  private static void move(Path from, Path to) throws IOException {
    try {
      Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(from, to);
    }
  }

  static void forceTree(Path dir) throws IOException {
    List<Path> files = new ArrayList<>();
    try (Stream<Path> s = Files.walk(dir)) {
      s.forEach(files::add);
    }
    for (Path p : files) {
      if (Files.isRegularFile(p)) {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
          ch.force(true);
        }
      }
    }
    for (Path p : files) {
      if (Files.isDirectory(p)) {
        force(p);
      }
    }
  }

  /** fsync of a directory, so a rename in it survives a power cut (Linux allows it read-only). */
  private static void force(Path dir) throws IOException {
    try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
      ch.force(true);
    } catch (IOException e) {
      // some file systems (and Windows) refuse to open a directory; the rename is still atomic
      if (!System.getProperty("os.name", "").toLowerCase().contains("win")) {
        throw e;
      }
    }
  }

  static void deleteRecursively(Path p) throws IOException {
    if (!Files.exists(p)) {
      return;
    }
    List<Path> all = new ArrayList<>();
    try (Stream<Path> s = Files.walk(p)) {
      s.forEach(all::add);
    }
    for (int i = all.size() - 1; i >= 0; i--) {
      Files.deleteIfExists(all.get(i));
    }
  }

  private static void deleteQuietly(Path p) {
    try {
      deleteRecursively(p);
    } catch (IOException ignored) {
      // the .tmp name marks it incomplete; the next save removes it
    }
  }
}
