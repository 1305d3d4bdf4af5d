package dev.medtune.model.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.ModelShapes;
import java.util.List;
import org.junit.jupiter.api.Test;

class LoraConfigTest {

  @Test
  void recipeScaleIsAlphaOverR() {
    LoraConfig c = LoraConfig.recipe();
    assertEquals(16, c.r());
    assertEquals(1.0, c.scale());
    assertEquals(List.of(LoraTarget.values()), c.targets());
    assertEquals(16 / 4.0, new LoraConfig(16, 16, 0, c.targets(), true).scale(), 1e-15);
    assertEquals(32 / 8.0, new LoraConfig(8, 32, 0, c.targets(), false).scale(), 1e-15);
  }

  @Test
  void targetsAreNormalisedToCanonicalOrder() {
    LoraConfig c = new LoraConfig(4, 8, 0,
        LoraConfig.parseTargets(List.of("v_proj", "q_proj", "mlp.down_proj")), false);
    assertEquals(List.of(LoraTarget.Q_PROJ, LoraTarget.V_PROJ, LoraTarget.DOWN_PROJ), c.targets());
  }

  @Test
  void badTargetsAndValuesAreRefused() {
    var e = assertThrows(IllegalArgumentException.class,
        () -> LoraConfig.parseTargets(List.of("q_proj", "lm_head")));
    assertTrue(e.getMessage().contains("'lm_head'"), e.getMessage());
    assertThrows(IllegalArgumentException.class,
        () -> new LoraConfig(4, 8, 0, List.of(LoraTarget.Q_PROJ, LoraTarget.Q_PROJ), false));
    assertThrows(IllegalArgumentException.class, () -> new LoraConfig(0, 8, 0, List.of(LoraTarget.Q_PROJ), false));
    assertThrows(IllegalArgumentException.class, () -> new LoraConfig(4, 8, 1.0, List.of(LoraTarget.Q_PROJ), false));
    assertThrows(IllegalArgumentException.class, () -> new LoraConfig(4, 8, 0, List.of(), false));
  }

  @Test
  void projectionShapesFollowTheModel() {
    var m = ModelShapes.llama31_8b();
    assertEquals(4096, LoraTarget.Q_PROJ.outFeatures(m));
    assertEquals(1024, LoraTarget.K_PROJ.outFeatures(m));
    assertEquals(1024, LoraTarget.V_PROJ.outFeatures(m));
    assertEquals(4096, LoraTarget.O_PROJ.inFeatures(m));
    assertEquals(14336, LoraTarget.GATE_PROJ.outFeatures(m));
    assertEquals(14336, LoraTarget.DOWN_PROJ.inFeatures(m));
    assertEquals(4096, LoraTarget.DOWN_PROJ.outFeatures(m));
  }
}
