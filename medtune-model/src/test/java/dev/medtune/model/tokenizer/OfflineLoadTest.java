package dev.medtune.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.Json;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The tokenizer's native library loads offline from the jar, in a fresh JVM with an empty DJL
 * cache and every network lookup refused; and on a machine where CUDA is present, where DJL by
 * itself tries to download a CUDA build. CUDA presence is simulated with a stand-in
 * {@code libcudart.so} built with the C compiler (that part is skipped, saying so, without one).
 */
class OfflineLoadTest {
  @TempDir Path tmp;
  Path tokenizer;
  String expectedIds;

  @BeforeEach
  void tokenizer() {
    var merges = ByteLevelBpe.learnMerges(ByteLevelBpe.medicalCorpus(), 100);
    tokenizer = tmp.resolve("tokenizer.json");
    Json.write(tokenizer, ByteLevelBpe.tokenizerJson(merges, 512));
    try (LlamaTokenizer t = LlamaTokenizer.load(tokenizer)) {
      expectedIds = Arrays.toString(t.encode("Hello world", false));
    }
  }

  record Probe(String attempts, String ids, List<String> cached, String output) {}

  Probe run(String mode, Path fakeCuda) throws Exception {
    Path cache = Files.createTempDirectory(tmp, "djl-cache");
    List<String> cmd = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "--enable-native-access=ALL-UNNAMED",
        "-Dmedtune.probe.refuseNetwork=true",
        "-cp", System.getProperty("java.class.path")));
    if (fakeCuda != null) {
      cmd.add("-Djna.library.path=" + fakeCuda);
    }
    cmd.addAll(List.of(OfflineLoadProbe.class.getName(), mode, tokenizer.toString()));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
    Map<String, String> env = pb.environment();
    env.remove("RUST_FLAVOR");
    env.remove("DJL_OFFLINE");
    env.remove("ENGINE_CACHE_DIR");
    env.put("DJL_CACHE_DIR", cache.toString());
    if (fakeCuda != null) {
      env.put("LD_LIBRARY_PATH", fakeCuda.toString());
    }
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), out);
    String attempts = null;
    String ids = null;
    List<String> cached = new ArrayList<>();
    for (String line : out.split("\n")) {
      if (line.startsWith("attempts=")) {
        attempts = line.substring(9);
      } else if (line.startsWith("ids=")) {
        ids = line.substring(4);
      } else if (line.startsWith("cached=")) {
        cached.add(line.substring(7));
      }
    }
    return new Probe(attempts, ids, cached, out);
  }

  @Test
  void loadsTheBundledCpuLibraryWithNoNetwork() throws Exception {
    Probe p = run("medtune", null);
    assertEquals("[]", p.attempts(), p.output());
    assertEquals(expectedIds, p.ids(), p.output());
    assertTrue(p.cached().stream().anyMatch(c -> c.contains("-cpu-") && c.contains("libtokenizers")),
        "the CPU library was extracted from the jar: " + p.cached());
  }

  @Test
  void withCudaPresentDjlAloneDownloadsButMedtuneDoesNot() throws Exception {
    Path fake = fakeCudart();
    Probe control = run("djl", fake);
    assertTrue(control.attempts().contains("publish.djl.ai") || control.ids().contains("publish.djl.ai"),
        "control: DJL by itself goes to the network for a CUDA build: " + control.output());
    Probe p = run("medtune", fake);
    assertEquals("[]", p.attempts(), p.output());
    assertEquals(expectedIds, p.ids(), p.output());
    assertTrue(p.cached().stream().anyMatch(c -> c.contains("-cpu-")), p.cached().toString());
  }

  /** A libcudart.so that reports one GPU of compute capability 8.0 and CUDA 12.4. */
  Path fakeCudart() throws IOException, InterruptedException {
    Path dir = Files.createDirectories(tmp.resolve("fake-cuda"));
    Path c = dir.resolve("fake.c");
    Files.writeString(c, """
        int cudaGetDeviceCount(int *n) { *n = 1; return 0; }
        int cudaRuntimeGetVersion(int *v) { *v = 12040; return 0; }
        int cudaDriverGetVersion(int *v) { *v = 12040; return 0; }
        int cudaDeviceGetAttribute(int *value, int attr, int device) {
          *value = attr == 75 ? 8 : attr == 76 ? 0 : 1; return 0; }
        int cudaSetDevice(int d) { return 0; }
        int cudaMemGetInfo(unsigned long *f, unsigned long *t) { *f = 1UL << 34; *t = 1UL << 35; return 0; }
        const char *cudaGetErrorString(int e) { return "fake"; }
        """);
    int rc;
    try {
      Process p = new ProcessBuilder("cc", "-shared", "-fPIC", "-o", dir.resolve("libcudart.so").toString(),
          c.toString()).redirectErrorStream(true).start();
      p.getInputStream().readAllBytes();
      rc = p.waitFor();
    } catch (IOException e) {
      rc = -1;
    }
    Assumptions.assumeTrue(rc == 0, "no C compiler (cc) to build a stand-in libcudart.so; the"
        + " CUDA-present case is not tested on this machine");
    return dir;
  }
}
