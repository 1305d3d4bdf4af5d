package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointFolderTest {
  @TempDir Path out;

  private static List<String> names(Path dir) throws IOException {
    try (Stream<Path> s = Files.list(dir)) {
      return s.map(p -> p.getFileName().toString()).sorted().toList();
    }
  }

  @Test
  void savesAtomicallyAndKeepsTheNewest() throws Exception {
    for (int step : new int[] {5, 10, 15}) {
      Path d = CheckpointFolder.save(out, step, 2, dir -> Files.writeString(dir.resolve("a.txt"), "step " + step));
      assertEquals(out.resolve("checkpoint-" + step), d);
    }
    assertEquals(List.of("checkpoint-10", "checkpoint-15"), names(out));
    assertEquals("step 15", Files.readString(CheckpointFolder.latest(out).orElseThrow().resolve("a.txt")));
  }

  @Test
  void latestOrdersByStepAndIgnoresIncompleteFolders() throws Exception {
    Files.createDirectories(out.resolve("checkpoint-9"));
    Files.createDirectories(out.resolve("checkpoint-10"));
    Files.createDirectories(out.resolve("checkpoint-11.tmp"));
    Files.createDirectories(out.resolve("checkpoint-x"));
    assertEquals(out.resolve("checkpoint-10"), CheckpointFolder.latest(out).orElseThrow());
    assertTrue(CheckpointFolder.latest(out.resolve("nothing")).isEmpty());
    // the next save clears a stale .tmp of the same step
    CheckpointFolder.save(out, 11, 5, dir -> Files.writeString(dir.resolve("a"), "x"));
    assertFalse(Files.exists(out.resolve("checkpoint-11.tmp")));
    assertEquals(out.resolve("checkpoint-11"), CheckpointFolder.latest(out).orElseThrow());
  }

  @Test
  void aWriteThatFailsLeavesThePreviousCheckpointIntact() throws Exception {
    CheckpointFolder.save(out, 1, 1, dir -> Files.writeString(dir.resolve("a.txt"), "good"));
    var e = assertThrows(UncheckedIOException.class, () -> CheckpointFolder.save(out, 2, 1, dir -> {
      Files.writeString(dir.resolve("a.txt"), "half");
      throw new IOException("No space left on device");
    }));
    assertTrue(e.getMessage().contains("checkpoint-2: cannot save the checkpoint: No space left on device"), e.getMessage());
    assertEquals(List.of("checkpoint-1"), names(out));
    assertEquals("good", Files.readString(out.resolve("checkpoint-1/a.txt")));
    e = assertThrows(UncheckedIOException.class, () -> CheckpointFolder.save(out, 3, 1, dir -> {
      throw new UncheckedIOException(new IOException("No space left on device"));
    }));
    assertTrue(e.getMessage().endsWith("checkpoint-3: cannot save the checkpoint: No space left on device"
        + " (earlier checkpoints are intact)"), e.getMessage());
    assertEquals(List.of("checkpoint-1"), names(out));
  }

  @Test
  void resavingAStepReplacesItWhole() throws Exception {
    CheckpointFolder.save(out, 3, 1, dir -> Files.writeString(dir.resolve("a.txt"), "first"));
    CheckpointFolder.save(out, 3, 1, dir -> Files.writeString(dir.resolve("b.txt"), "second"));
    assertEquals(List.of("b.txt"), names(out.resolve("checkpoint-3")));
    assertEquals(List.of("checkpoint-3"), names(out));
  }

  @Test
  void aRealFileSizeLimitMidSaveLeavesThePreviousCheckpointIntact() throws Exception {
    Path bash = Path.of("/bin/bash");
    org.junit.jupiter.api.Assumptions.assumeTrue(Files.isExecutable(bash), "needs /bin/bash for ulimit");
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    // ulimit -f counts 1024-byte blocks: 1 MB lets the first checkpoint through, not the 4 MB one
    ProcessBuilder pb = new ProcessBuilder(bash.toString(), "-c",
        "ulimit -f 1024 && exec \"$0\" -Xshare:off -XX:-UsePerfData -cp \"$1\" dev.medtune.model.train.DiskFullSaveMain \"$2\"",
        java, System.getProperty("java.class.path"), out.toString());
    pb.redirectErrorStream(true);
    Process p = pb.start();
    String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(p.waitFor(60, TimeUnit.SECONDS));
    assertTrue(output.startsWith("FAILED ") && output.contains("checkpoint-2: cannot save the checkpoint"), output);
    assertEquals(List.of("checkpoint-1"), names(out));
    assertArrayEquals(new byte[10_000], Files.readAllBytes(out.resolve("checkpoint-1/state.bin")));
  }
}
