package dev.medtune.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.ModelPresets;
import dev.medtune.model.RandomInit;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.LoraConfig;
import dev.medtune.model.lora.LoraMerge;
import dev.medtune.model.lora.LoraTarget;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.SafetensorsFile;
import dev.medtune.model.safetensors.SafetensorsWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code medtune merge --device cuda}: the products {@code s B A} on the GPU, in blocks of 7 rows
 * and of the default 512, against the same merge with the CPU backend: float32 weights within
 * float32 rounding (TF32 off: the float32 products exact), bf16 weights equal but for rare last-bit
 * flips; and with TF32 on (the default), float32 weights within TF32's error on the delta.
 */
class CudaMergeTest {
  @TempDir static Path tmp;
  private static CudaBackend cuda;
  private static Path tiny;
  private static Path tinyBf16;

  @BeforeAll
  static void open() throws Exception {
    if (CudaBackendProvider.check() != null) {
      System.err.println("CUDA tests skipped: " + CudaBackendProvider.check());
      return;
    }
    cuda = CudaBackendProvider.open();
    tiny = tmp.resolve("tiny");
    RandomInit.write(ModelPresets.get("tiny"), tiny, 5, null, false, s -> {});
    tinyBf16 = tmp.resolve("tiny-bf16");
    Files.createDirectories(tinyBf16);
    Files.copy(tiny.resolve("config.json"), tinyBf16.resolve("config.json"));
    try (var f = SafetensorsFile.open(tiny.resolve("model.safetensors"))) {
      var w = new SafetensorsWriter();
      for (var t : f.tensors().values()) {
        w.add(t.name(), DType.BF16, t.shape(), t.toFloatArray());
      }
      w.write(tinyBf16.resolve("model.safetensors"));
    }
  }

  @BeforeEach
  void needsAGpu() {
    assumeTrue(cuda != null, () -> "CUDA tests skipped: " + CudaBackendProvider.check());
  }

  @AfterAll
  static void close() {
    if (cuda != null) {
      cuda.close();
    }
  }

  private static Path adapter(Path base, Path dir) {
    var cfg = new LoraConfig(8, 16, 0, List.of(LoraTarget.values()), false);
    try (var c = Checkpoint.open(base)) {
      LoraAdapter a = LoraAdapter.initialize(c.config(), cfg, 11);
      int k = 0;
      for (var t : a.tensors()) {
        if (!t.isA()) {
          for (int i = 0; i < t.data().length; i++) {
            t.data()[i] = (float) (0.05 * Math.sin(++k * 0.37));
          }
        }
      }
      a.save(dir, base.toString());
    }
    return dir;
  }

  private void compare(Path base, String tag, boolean tf32, double tol, int maxFlips) throws Exception {
    Path ad = adapter(base, tmp.resolve("ad-" + tag));
    Path onCpu = tmp.resolve("cpu-" + tag);
    try (Backend cpu = CpuBackendProvider.create(4)) {
      LoraMerge.merge(base, ad, onCpu, false, s -> {}, cpu);
    }
    boolean was = cuda.tf32();
    cuda.tf32(tf32 && cuda.tf32Supported());
    try {
      for (int blockRows : new int[] {7, 512}) {
        Path onGpu = tmp.resolve("gpu-" + tag + "-" + blockRows);
        LoraMerge.merge(base, ad, onGpu, false, s -> {}, cuda, blockRows);
        double worst = 0;
        int flips = 0;
        try (var c = Checkpoint.open(onCpu); var g = Checkpoint.open(onGpu)) {
          for (String name : c.tensorNames()) {
            var x = c.tensor(name);
            var y = g.tensor(name);
            for (long e = 0; e < x.elementCount(); e++) {
              double d = Math.abs(x.getFloat(e) - y.getFloat(e)) / (1 + Math.abs(x.getFloat(e)));
              assertTrue(!Double.isNaN(y.getFloat(e)), name + " element " + e + " is NaN");
              if (d > tol) {
                flips++;
              }
              worst = Math.max(worst, d);
            }
          }
        }
        String what = tag + (tf32 ? ", TF32" : "") + ", blocks of " + blockRows + " rows";
        boolean ok = flips <= maxFlips;
        CheckTable.row("merge CUDA vs CPU", what + " (" + flips + " elements over the tolerance)", worst,
            String.format("%.0e relative, at most %d over", tol, maxFlips), ok);
        assertTrue(ok, what + ": " + flips + " elements differ by more than " + tol + " (worst " + worst + ")");
      }
    } finally {
      cuda.tf32(was);
    }
  }

  @Test
  void float32WeightsMatchTheCpu() throws Exception {
    compare(tiny, "f32", false, 1e-6, 0);
  }

  @Test
  void float32WeightsWithTf32AreWithinItsErrorOnTheDelta() throws Exception {
    // |delta| <= s sum_k |b_k a_k| <= 2 * 8 * 0.05 * ~0.35 = 0.28; TF32 rounds both operands (2^-11
    // relative each, 2^-10 if truncated): an error under ~6e-4, where a wrong product errs by ~|delta|
    compare(tiny, "f32-tf32", true, 1e-3, 0);
  }

  @Test
  void bf16WeightsMatchTheCpuButForRareLastBitFlips() throws Exception {
    compare(tinyBf16, "bf16", false, 1e-6, 4);
  }
}
