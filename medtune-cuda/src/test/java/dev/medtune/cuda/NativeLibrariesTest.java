package dev.medtune.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Finding the NVIDIA libraries; runs everywhere (no GPU needed). */
class NativeLibrariesTest {

  @Test
  void aMissingLibraryIsOneLineThatSaysWhereItLookedAndHowToPointElsewhere() {
    CudaException e = assertThrows(CudaException.class,
        () -> NativeLibraries.open("libmedtune-no-such-library.so.13", "libmedtune-no-such-library.so.", "a test library"));
    assertFalse(e.getMessage().contains("\n"), e.getMessage());
    assertTrue(e.getMessage().startsWith("libmedtune-no-such-library.so.13 (a test library) not found in ["), e.getMessage());
    assertTrue(e.getMessage().contains("/usr/local/cuda/lib64"), e.getMessage());
    assertTrue(e.getMessage().endsWith("set MEDTUNE_CUDA_LIB_DIR to its folder"), e.getMessage());
  }

  @Test
  void theGlobTakesTheHighestVersionNumerically(@TempDir Path dir) throws Exception {
    for (String name : new String[] {"libnvrtc.so.9.2", "libnvrtc.so.13.0.88", "libnvrtc.so.13.0.9", "libnvrtc.so.12.8.61",
        "libnvrtc.so", "libnvrtc.so.notes"}) {
      Files.writeString(dir.resolve(name), "");
    }
    assertEquals("libnvrtc.so.13.0.88", NativeLibraries.highest(dir, "libnvrtc.so.").getFileName().toString());
  }

  @Test
  void theEnvironmentsFoldersComeFirstThenTheUsualOnes() {
    var dirs = NativeLibraries.searchDirs().stream().map(Path::toString).toList();
    var usual = java.util.List.of("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
        "/usr/lib/x86_64-linux-gnu");
    assertTrue(dirs.containsAll(usual), dirs.toString());
    String env = System.getenv("MEDTUNE_CUDA_LIB_DIR");
    if (env != null && !env.isBlank()) {
      assertEquals(env.split(":")[0].trim(), dirs.get(0));
    } else if (System.getenv("LD_LIBRARY_PATH") == null) {
      assertEquals(usual, dirs.subList(0, 3));
    }
  }
}
