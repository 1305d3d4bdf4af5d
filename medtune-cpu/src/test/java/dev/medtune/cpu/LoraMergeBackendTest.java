package dev.medtune.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code merge} with the products {@code s B A} on a backend (what {@code medtune merge --device}
 * does) against the plain loop of {@link LoraMerge}: float32 weights within float32 rounding,
 * bf16 weights equal but for a rare flip of the last bit (the float32 sums differ in order), in
 * blocks of 7 rows (several blocks a projection, a ragged last one) and of the default size.
 */
class LoraMergeBackendTest {
  @TempDir static Path tmp;
  static Path tiny;
  static Path tinyBf16;

  @BeforeAll
  static void models() throws Exception {
    tiny = tmp.resolve("tiny");
    RandomInit.write(ModelPresets.get("tiny"), tiny, 5, null, false, s -> {});
    tinyBf16 = tmp.resolve("tiny-bf16");
    Files.createDirectories(tinyBf16);
    for (String f : List.of("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json")) {
      if (Files.exists(tiny.resolve(f))) {
        Files.copy(tiny.resolve(f), tinyBf16.resolve(f));
      }
    }
    try (var f = SafetensorsFile.open(tiny.resolve("model.safetensors"))) {
      var w = new SafetensorsWriter();
      for (var t : f.tensors().values()) {
        w.add(t.name(), DType.BF16, t.shape(), t.toFloatArray());
      }
      w.write(tinyBf16.resolve("model.safetensors"));
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

  private static void compare(Path base, String tag, double tol, int maxFlipsPerTensor) throws Exception {
    Path ad = adapter(base, tmp.resolve("ad-" + tag));
    Path plain = tmp.resolve("plain-" + tag);
    LoraMerge.merge(base, ad, plain, false, s -> {});
    for (int blockRows : new int[] {7, 512}) {
      Path viaBackend = tmp.resolve("backend-" + tag + "-" + blockRows);
      try (Backend cpu = CpuBackendProvider.create(2)) {
        LoraMerge.merge(base, ad, viaBackend, false, s -> {}, cpu, blockRows);
      }
      try (var p = Checkpoint.open(plain); var b = Checkpoint.open(viaBackend); var orig = Checkpoint.open(base)) {
        assertEquals(p.tensorNames(), b.tensorNames());
        int adapted = 0;
        for (String name : p.tensorNames()) {
          var x = p.tensor(name);
          var y = b.tensor(name);
          assertEquals(x.dtype(), y.dtype(), name);
          int flips = 0;
          boolean changed = false;
          for (long e = 0; e < x.elementCount(); e++) {
            double d = Math.abs(x.getFloat(e) - y.getFloat(e));
            if (d > tol * (1 + Math.abs(x.getFloat(e)))) {
              flips++;
            }
            changed |= x.getFloat(e) != orig.tensor(name).getFloat(e);
          }
          assertTrue(flips <= maxFlipsPerTensor, tag + " blocks of " + blockRows + ": " + name + ": " + flips
              + " elements differ by more than " + tol);
          if (changed) {
            adapted++;
          }
        }
        assertEquals(7 * p.config().numLayers(), adapted, "every projection of every layer merged");
      }
    }
  }

  @Test
  void float32WeightsMatchThePlainLoop() throws Exception {
    compare(tiny, "f32", 1e-6, 0);
  }

  @Test
  void bf16WeightsMatchThePlainLoopButForRareLastBitFlips() throws Exception {
    // a float32 sum in another order can round to the neighbouring bf16 value (2^-8 relative)
    compare(tinyBf16, "bf16", 1e-6, 4);
  }
}
