package dev.medtune.model.bench;

import dev.medtune.model.ModelPresets;
import dev.medtune.model.RandomInit;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * How fast {@code init-model} writes a preset (default {@code llama-3.2-1b}, 2.47 GB of bf16),
 * against the same-run baseline of the disk itself: writing the same number of bytes (a
 * pre-filled buffer, so no generation) to the same folder with the same fsync. The ratio says
 * how much random generation and conversion add over the pure write. Run through
 * {@code bench/init-model.sh}; appends to bench/RESULTS.md.
 *
 * <p>Arguments: WORK_DIR RESULTS_MD COMMIT [PRESET].
 */
public final class InitModelBench {
  public static void main(String[] args) throws Exception {
    Path work = Path.of(args[0]);
    Path results = Path.of(args[1]);
    String commit = args[2];
    String presetName = args.length > 3 ? args[3] : "llama-3.2-1b";
    ModelPresets.Preset preset = ModelPresets.get(presetName);
    long bytes = preset.config().parameterCount() * preset.dtype().byteSize();
    Files.createDirectories(work);

    // baseline: the bytes alone, 4 MB writes, fsync, as the safetensors writer does
    Path plain = work.resolve("baseline.bin");
    long t0 = System.nanoTime();
    ByteBuffer buf = ByteBuffer.allocateDirect(4 << 20);
    for (int i = 0; i < buf.capacity(); i++) {
      buf.put(i, (byte) (i * 31));
    }
    try (FileChannel ch = FileChannel.open(plain, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        StandardOpenOption.TRUNCATE_EXISTING)) {
      for (long done = 0; done < bytes; ) {
        buf.clear().limit((int) Math.min(buf.capacity(), bytes - done));
        done += ch.write(buf);
      }
      ch.force(true);
    }
    double baseline = (System.nanoTime() - t0) / 1e9;
    Files.delete(plain);
    System.out.printf("baseline: %.2f GB written with fsync in %.1f s (%.2f GB/s)%n", bytes / 1e9,
        baseline, bytes / 1e9 / baseline);

    Path out = work.resolve("model");
    long t1 = System.nanoTime();
    RandomInit.write(preset, out, 0, null, true, System.out::println);
    double init = (System.nanoTime() - t1) / 1e9;
    deleteTree(out);
    System.out.printf("init-model %s: %.1f s (%.2f GB/s), %.2fx the plain write%n", presetName, init,
        bytes / 1e9 / init, init / baseline);

    String line = String.format("- init-model, %s CPU with %d cores (shared), %s, commit %s: %s in %.1f s"
            + " (%.2f GB/s); same-run baseline, writing the same %.2f GB with fsync: %.1f s"
            + " (%.2f GB/s); ratio %.2f%n",
        System.getProperty("os.arch"), Runtime.getRuntime().availableProcessors(),
        ZonedDateTime.now(ZoneOffset.UTC).format(DateTimeFormatter.ISO_LOCAL_DATE), commit, presetName,
        init, bytes / 1e9 / init, bytes / 1e9, baseline, bytes / 1e9 / baseline, init / baseline);
    Files.writeString(results, line, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
        StandardOpenOption.APPEND);
    System.out.print("appended to " + results + ": " + line);
  }

  private static void deleteTree(Path root) throws IOException {
    try (Stream<Path> s = Files.walk(root)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }
}
