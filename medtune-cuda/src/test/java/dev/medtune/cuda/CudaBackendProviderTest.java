package dev.medtune.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Backends;
import org.junit.jupiter.api.Test;

/**
 * Runs everywhere: the backend is found by ServiceLoader, {@code auto} picks CUDA exactly when it
 * is usable and the CPU otherwise, and an unusable CUDA is a one-line reason, never a stack trace.
 */
class CudaBackendProviderTest {

  @Test
  void autoPicksCudaWhenUsableElseCpuAndTheReasonIsOneLine() {
    assertTrue(Backends.names().contains("cuda"), "found: " + Backends.names());
    String why = CudaBackendProvider.check();
    System.out.println("CUDA backend usable here: " + (why == null ? "yes" : "no, " + why));
    try (Backend auto = Backends.open("auto")) {
      assertEquals(why == null ? "cuda" : "cpu", auto.name());
    }
    if (why != null) {
      assertFalse(why.isBlank());
      assertFalse(why.contains("\n"), why);
      IllegalStateException e = assertThrows(IllegalStateException.class, () -> Backends.open("cuda"));
      assertEquals("device 'cuda' is not usable here: " + why, e.getMessage());
    } else {
      try (Backend cuda = Backends.open("cuda")) {
        assertTrue(cuda.description().startsWith("cuda ("), cuda.description());
      }
    }
  }

  @Test
  void kernelSourcesAreAllInTheJar() {
    String src = Nvrtc.source();
    for (String kernel : CudaBackend.KERNELS) {
      assertTrue(java.util.regex.Pattern.compile("extern \"C\" __global__ void (__launch_bounds__\\([^)]*\\) )?"
          + kernel + "\\(").matcher(src).find(), kernel);
    }
  }

  @Test
  void alignmentIsTheLargestPowerOfTwoUpTo256() {
    assertEquals(256, CublasLt.alignment(0x7f0000000000L));
    assertEquals(4, CublasLt.alignment(0x7f0000000004L));
    assertEquals(16, CublasLt.alignment(0x7f0000000030L));
    assertEquals(2, CublasLt.alignment(0x7f0000000102L));
  }
}
