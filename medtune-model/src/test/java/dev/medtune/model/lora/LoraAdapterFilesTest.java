package dev.medtune.model.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.LlamaConfig;
import dev.medtune.model.ModelFormatException;
import dev.medtune.model.ModelShapes;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.SafetensorsFile;
import dev.medtune.model.safetensors.SafetensorsWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Predicate;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LoraAdapterFilesTest {
  @TempDir Path tmp;

  private static LoraAdapter randomised(LlamaConfig m, LoraConfig c) {
    LoraAdapter a = LoraAdapter.initialize(m, c, 7);
    int k = 0;
    for (var t : a.tensors()) {
      if (!t.isA()) {
        for (int i = 0; i < t.data().length; i++) {
          t.data()[i] = (float) Math.sin(++k); // non-zero B, so a round trip tests B too
        }
      }
    }
    return a;
  }

  @Test
  void savesInPeftLayoutAndLoadsBack() {
    var m = ModelShapes.small();
    var a = randomised(m, LoraConfig.recipe());
    a.save(tmp, "medtune/tiny");
    try (var f = SafetensorsFile.open(tmp.resolve("adapter_model.safetensors"))) {
      assertEquals("pt", f.metadata().get("format"));
      var q = f.tensor("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight");
      assertEquals(DType.F32, q.dtype());
      assertArrayEquals(new long[] {16, 64}, q.shape());
      assertArrayEquals(new long[] {32, 16},
          f.tensor("base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight").shape());
      assertArrayEquals(new long[] {64, 16},
          f.tensor("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight").shape());
      assertEquals(28, f.tensors().size());
    }
    var b = LoraAdapter.load(tmp, m);
    assertEquals(a.config(), b.config());
    for (int i = 0; i < a.tensors().size(); i++) {
      assertArrayEquals(a.tensors().get(i).data(), b.tensors().get(i).data(), a.tensors().get(i).name());
    }
  }

  @Test
  void anAdapterOfAnotherRankOrModelIsRefusedNamingTheTensor() {
    var m = ModelShapes.small();
    randomised(m, new LoraConfig(8, 16, 0, List.of(LoraTarget.Q_PROJ), false)).save(tmp, null);
    // lie about the rank in the config: the first tensor shows it
    new PeftAdapterConfig(new LoraConfig(16, 16, 0, List.of(LoraTarget.Q_PROJ), false), null).write(tmp);
    var e = assertThrows(ModelFormatException.class, () -> LoraAdapter.load(tmp, m));
    assertTrue(e.getMessage().contains("tensor base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight has shape [8, 64], expected [16, 64]"),
        e.getMessage());

    Path other = tmp.resolve("wider");
    var wider = new LlamaConfig(96, 160, 2, 4, 2, 24, 300, 512, 1e-5, 5e5, null, false, 256, new int[] {257}, "float32");
    randomised(wider, LoraConfig.recipe()).save(other, null);
    e = assertThrows(ModelFormatException.class, () -> LoraAdapter.load(other, m));
    assertTrue(e.getMessage().contains("q_proj.lora_A.weight has shape [16, 96], expected [16, 64]"), e.getMessage());
  }

  @Test
  void missingAndUnexpectedTensorsAreNamed() {
    var m = ModelShapes.small();
    var a = randomised(m, LoraConfig.recipe());
    a.save(tmp, null);
    rewriteWithout(a, t -> t.name().equals("base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"), null);
    var e = assertThrows(ModelFormatException.class, () -> LoraAdapter.load(tmp, m));
    assertTrue(e.getMessage().contains("tensor base_model.model.model.layers.1.mlp.up_proj.lora_B.weight is missing"),
        e.getMessage());

    rewriteWithout(a, t -> false, "base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight");
    e = assertThrows(ModelFormatException.class, () -> LoraAdapter.load(tmp, m));
    assertTrue(e.getMessage().contains("tensor base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight does not belong"),
        e.getMessage());
    // 3 layers of tensors against a 2-layer model: the adapter is for another model
  }

  @Test
  void readsBf16Adapters() {
    var m = ModelShapes.small();
    var cfg = new LoraConfig(4, 8, 0, List.of(LoraTarget.O_PROJ), false);
    var a = randomised(m, cfg);
    var w = new SafetensorsWriter().metadata("format", "pt");
    for (var t : a.tensors()) {
      w.add(t.name(), DType.BF16, new long[] {t.rows(), t.cols()}, t.data());
    }
    w.write(tmp.resolve("adapter_model.safetensors"));
    new PeftAdapterConfig(cfg, null).write(tmp);
    var b = LoraAdapter.load(tmp, m);
    float[] x = a.b(1, LoraTarget.O_PROJ);
    float[] y = b.b(1, LoraTarget.O_PROJ);
    for (int i = 0; i < x.length; i++) {
      assertEquals(x[i], y[i], Math.abs(x[i]) / 128, "bf16 keeps 8 bits of mantissa");
    }
  }

  @Test
  void missingWeightsFileIsNamed() {
    new PeftAdapterConfig(LoraConfig.recipe(), null).write(tmp);
    var e = assertThrows(ModelFormatException.class, () -> LoraAdapter.load(tmp, ModelShapes.small()));
    assertTrue(e.getMessage().contains("adapter_model.safetensors: no such file"), e.getMessage());
  }

  private void rewriteWithout(LoraAdapter a, Predicate<LoraAdapter.Tensor> drop, String extraName) {
    var w = new SafetensorsWriter().metadata("format", "pt");
    for (var t : a.tensors()) {
      if (!drop.test(t)) {
        w.add(t.name(), DType.F32, new long[] {t.rows(), t.cols()}, t.data());
      }
    }
    if (extraName != null) {
      w.add(extraName, DType.F32, new long[] {16, 64}, new float[16 * 64]);
    }
    w.write(tmp.resolve("adapter_model.safetensors"));
  }
}
