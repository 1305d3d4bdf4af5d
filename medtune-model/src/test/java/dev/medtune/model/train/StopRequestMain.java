package dev.medtune.model.train;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Run by {@link StopRequestTest} in a child JVM: "trains" in steps of 20 ms until asked to stop,
 * then takes 300 ms to "save a checkpoint" (longer than the JVM would otherwise live after SIGTERM)
 * and writes the step it stopped at.
 */
public final class StopRequestMain {
  public static void main(String[] args) throws Exception {
    Path out = Path.of(args[0]);
    try (StopRequest stop = StopRequest.install(Duration.ofSeconds(30))) {
      System.out.println("READY");
      System.out.flush();
      for (int step = 1; step <= 10_000; step++) {
        Thread.sleep(20);
        if (stop.requested()) {
          Thread.sleep(300);
          CheckpointFolder.save(out, step, 1, dir -> Files.writeString(dir.resolve("state"), "ok"));
          stop.finished();
          return;
        }
      }
    }
  }
}
