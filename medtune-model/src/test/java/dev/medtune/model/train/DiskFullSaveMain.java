package dev.medtune.model.train;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Run by {@link CheckpointFolderTest} in a child JVM under {@code ulimit -f} (a real per-process
 * file size limit: writes past it fail with EFBIG, as on a full disk): saves a small checkpoint,
 * then a large one that cannot be written, and prints what happened.
 */
public final class DiskFullSaveMain {
  public static void main(String[] args) throws Exception {
    Path out = Path.of(args[0]);
    CheckpointFolder.save(out, 1, 3, dir -> Files.write(dir.resolve("state.bin"), new byte[10_000]));
    try {
      CheckpointFolder.save(out, 2, 3, dir -> {
        Files.write(dir.resolve("small.bin"), new byte[1000]);
        Files.write(dir.resolve("state.bin"), new byte[4_000_000]);
      });
      System.out.println("SAVED");
    } catch (RuntimeException e) {
      System.out.println("FAILED " + e.getMessage());
    }
  }
}
