package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StopRequestTest {
  @TempDir Path out;

  @Test
  void sigtermLetsTheCurrentStepFinishAndTheCheckpointBeSaved() throws Exception {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    Process p = new ProcessBuilder(java, "-Xshare:off", "-XX:-UsePerfData", "-cp",
        System.getProperty("java.class.path"), "dev.medtune.model.train.StopRequestMain", out.toString())
        .redirectErrorStream(true).start();
    var in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
    assertEquals("READY", in.readLine());
    Thread.sleep(200);
    p.destroy(); // SIGTERM on Linux and macOS
    assertTrue(p.waitFor(30, TimeUnit.SECONDS), "the child exits");
    var saved = CheckpointFolder.latest(out).orElseThrow(() -> new AssertionError("no checkpoint saved"));
    assertTrue(CheckpointFolder.stepOf(saved) >= 2, saved.toString());
    assertEquals("ok", Files.readString(saved.resolve("state")));
  }

  @Test
  void closingWithoutASignalRemovesTheHook() {
    StopRequest s = StopRequest.install(Duration.ofMinutes(10));
    s.close();
    assertTrue(!s.requested());
    // were the hook still installed, this JVM's exit would wait ten minutes
  }
}
