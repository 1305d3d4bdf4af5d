package dev.medtune.model.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.Checkpoint;
import dev.medtune.model.ModelPresets;
import dev.medtune.model.RandomInit;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.SafetensorsFile;
import dev.medtune.model.safetensors.SafetensorsWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LoraMergeTest {
  @TempDir static Path tmp;
  static Path tiny;

  @BeforeAll
  static void model() {
    tiny = tmp.resolve("tiny");
    RandomInit.write(ModelPresets.get("tiny"), tiny, 5, null, false, s -> {});
  }

  /** An adapter with non-zero B, so the merge changes the weights. */
  private static Path adapter(Path dir, LoraConfig cfg) {
    try (var c = Checkpoint.open(tiny)) {
      LoraAdapter a = LoraAdapter.initialize(c.config(), cfg, 9);
      int k = 0;
      for (var t : a.tensors()) {
        if (!t.isA()) {
          for (int i = 0; i < t.data().length; i++) {
            t.data()[i] = (float) (0.05 * Math.sin(++k * 0.7));
          }
        }
      }
      a.save(dir, tiny.toString());
    }
    return dir;
  }

  @Test
  void mergedWeightsAreWPlusScaleBA() throws Exception {
    var cfg = new LoraConfig(8, 32, 0, List.of(LoraTarget.Q_PROJ, LoraTarget.DOWN_PROJ), false);
    Path ad = adapter(tmp.resolve("ad1"), cfg);
    Path out = tmp.resolve("merged");
    LoraMerge.merge(tiny, ad, out, false, s -> {});
    try (var base = Checkpoint.open(tiny); var m = Checkpoint.open(out)) {
      LoraAdapter a = LoraAdapter.load(ad, base.config());
      assertEquals(base.tensorNames(), m.tensorNames());
      for (String name : base.tensorNames()) {
        var w = base.tensor(name);
        var x = m.tensor(name);
        assertEquals(w.dtype(), x.dtype(), name);
        boolean adapted = name.endsWith("self_attn.q_proj.weight") || name.endsWith("mlp.down_proj.weight");
        if (!adapted) {
          assertEquals(-1, w.data().mismatch(x.data()), name + " copied unchanged");
          continue;
        }
        int layer = Integer.parseInt(name.split("\\.")[2]);
        LoraTarget t = name.contains("q_proj") ? LoraTarget.Q_PROJ : LoraTarget.DOWN_PROJ;
        float[] A = a.a(layer, t);
        float[] B = a.b(layer, t);
        int in = (int) w.shape()[1];
        double maxDelta = 0;
        for (long e = 0; e < w.elementCount(); e++) {
          int o = (int) (e / in);
          int j = (int) (e % in);
          double d = 0;
          for (int k = 0; k < 8; k++) {
            d += (double) B[o * 8 + k] * A[k * in + j];
          }
          double want = w.getFloat(e) + 4.0 * d; // scale = 32 / 8
          maxDelta = Math.max(maxDelta, Math.abs(4.0 * d));
          assertEquals(want, x.getFloat(e), 1e-6, name + " element " + e);
        }
        assertTrue(maxDelta > 1e-3, name + ": the adapter changed the weights");
      }
    }
    for (String f : List.of("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json")) {
      assertEquals(Files.readString(tiny.resolve(f)), Files.readString(out.resolve(f)), f);
    }
    var e = assertThrows(IllegalArgumentException.class, () -> LoraMerge.merge(tiny, ad, out, false, s -> {}));
    assertTrue(e.getMessage().contains("pass --overwrite"), e.getMessage());
    LoraMerge.merge(tiny, ad, out, true, s -> {});
    try (var s = Files.list(tmp)) {
      assertTrue(s.noneMatch(p -> p.getFileName().toString().startsWith(".merged")), "no temporary folder left");
    }
  }

  @Test
  void bf16WeightsAreRoundedOnceToBf16() throws Exception {
    Path bf = tmp.resolve("tiny-bf16");
    Files.createDirectories(bf);
    Files.copy(tiny.resolve("config.json"), bf.resolve("config.json"));
    try (var f = SafetensorsFile.open(tiny.resolve("model.safetensors"))) {
      var w = new SafetensorsWriter();
      for (var t : f.tensors().values()) {
        w.add(t.name(), DType.BF16, t.shape(), t.toFloatArray());
      }
      w.write(bf.resolve("model.safetensors"));
    }
    var cfg = new LoraConfig(4, 4, 0, List.of(LoraTarget.V_PROJ), true);
    Path ad = adapter(tmp.resolve("ad2"), cfg);
    Path out = tmp.resolve("merged-bf16");
    LoraMerge.merge(bf, ad, out, false, s -> {});
    try (var base = Checkpoint.open(bf); var m = Checkpoint.open(out)) {
      LoraAdapter a = LoraAdapter.load(ad, base.config());
      var w = base.tensor("model.layers.2.self_attn.v_proj.weight");
      var x = m.tensor("model.layers.2.self_attn.v_proj.weight");
      assertEquals(DType.BF16, x.dtype());
      float[] A = a.a(2, LoraTarget.V_PROJ);
      float[] B = a.b(2, LoraTarget.V_PROJ);
      int in = 64;
      int changed = 0;
      for (long e = 0; e < w.elementCount(); e++) {
        int o = (int) (e / in);
        int j = (int) (e % in);
        float d = 0;
        for (int k = 0; k < 4; k++) {
          d += B[o * 4 + k] * A[k * in + j];
        }
        float want = Float.intBitsToFloat((DType.toBf16(w.getFloat(e) + 2.0f * d) & 0xffff) << 16); // 4 / sqrt(4)
        assertEquals(want, x.getFloat(e), Math.ulp(want) * 65536, "element " + e);
        changed += want != w.getFloat(e) ? 1 : 0;
      }
      assertTrue(changed > 100, changed + " weights changed");
    }
  }
}
