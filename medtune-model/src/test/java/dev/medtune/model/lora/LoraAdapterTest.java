package dev.medtune.model.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.ModelShapes;
import java.util.List;
import org.junit.jupiter.api.Test;

class LoraAdapterTest {

  @Test
  void recipeOnLlama31_8bHasTheRecipesTrainableParameterCount() {
    // seed-facts.md: "41,943,040 trainable parameters"
    assertEquals(41_943_040L, LoraAdapter.parameterCount(ModelShapes.llama31_8b(), LoraConfig.recipe()));
  }

  @Test
  void kaimingUniformBoundIsOneOverSqrtFanIn() {
    for (int fanIn : new int[] {1, 64, 4096, 14336}) {
      assertEquals(1 / Math.sqrt(fanIn), LoraAdapter.kaimingUniformBound(fanIn), 1e-15);
    }
  }

  @Test
  void initialisationIsPeftsDistributionWithZeroB() {
    var model = ModelShapes.small();
    var a = LoraAdapter.initialize(model, LoraConfig.recipe(), 3407);
    assertEquals(2 * 7 * 2, a.tensors().size());
    long count = 0;
    for (var t : a.tensors()) {
      count += t.data().length;
      assertEquals((long) t.rows() * t.cols(), t.data().length);
      if (t.isA()) {
        assertEquals(16, t.rows());
        assertEquals(t.target().inFeatures(model), t.cols());
        double bound = 1 / Math.sqrt(t.cols());
        double sum = 0;
        double sumSq = 0;
        for (float x : t.data()) {
          assertTrue(Math.abs(x) <= bound, t.name() + " value " + x + " outside +-" + bound);
          sum += x;
          sumSq += (double) x * x;
        }
        int n = t.data().length;
        // U(-b, b): mean 0, variance b^2/3; tolerances are ~6 standard errors
        assertEquals(0, sum / n, 6 * bound / Math.sqrt(3 * n), t.name());
        assertEquals(bound * bound / 3, sumSq / n, 6 * bound * bound * Math.sqrt(4.0 / 45 / n), t.name());
      } else {
        assertEquals(t.target().outFeatures(model), t.rows());
        for (float x : t.data()) {
          assertEquals(0f, x);
        }
      }
    }
    assertEquals(a.parameterCount(), count);
    assertArrayEquals(a.a(1, LoraTarget.DOWN_PROJ),
        LoraAdapter.initialize(model, LoraConfig.recipe(), 3407).a(1, LoraTarget.DOWN_PROJ));
    assertFalse(java.util.Arrays.equals(a.a(1, LoraTarget.DOWN_PROJ),
        LoraAdapter.initialize(model, LoraConfig.recipe(), 3408).a(1, LoraTarget.DOWN_PROJ)));
  }

  @Test
  void tensorsCarryPeftNamesInCanonicalOrder() {
    var cfg = new LoraConfig(4, 8, 0, List.of(LoraTarget.V_PROJ, LoraTarget.GATE_PROJ), false);
    var a = LoraAdapter.zeros(ModelShapes.small(), cfg);
    assertEquals(List.of(
        "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
        "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
        "base_model.model.model.layers.0.mlp.gate_proj.lora_A.weight",
        "base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight",
        "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight",
        "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight",
        "base_model.model.model.layers.1.mlp.gate_proj.lora_A.weight",
        "base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight"),
        a.tensors().stream().map(LoraAdapter.Tensor::name).toList());
    assertEquals(4 * 64, a.a(1, LoraTarget.V_PROJ).length);
    assertEquals(32 * 4, a.b(1, LoraTarget.V_PROJ).length);
    assertEquals(160 * 4, a.b(0, LoraTarget.GATE_PROJ).length);
    assertNull(a.a(0, LoraTarget.Q_PROJ));
  }
}
