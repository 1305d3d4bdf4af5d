package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.ModelShapes;
import dev.medtune.model.lora.LoraConfig;
import org.junit.jupiter.api.Test;

class SftConfigTest {

  @Test
  void recipeDefaults() {
    SftConfig c = SftConfig.recipe();
    var m = c.allSettings();
    assertEquals(16, m.get("lora_r"));
    assertEquals(2e-4, m.get("lr"));
    assertEquals(0.01, m.get("weight_decay"));
    assertEquals("linear", m.get("lr_scheduler"));
    assertEquals(5, m.get("warmup_steps"));
    assertEquals(60, m.get("max_steps"));
    assertEquals(2, m.get("batch_size"));
    assertEquals(4, m.get("grad_accum"));
    assertEquals(3407L, m.get("seed"));
    assertEquals("completion", m.get("loss_on"));
    assertFalse(c.trajectorySettings().containsKey("save_every"));
    assertEquals(60, c.lrSchedule(1000).totalSteps());
    assertEquals(2e-4 * 30 / 55, c.lrSchedule(1000).lr(30), 1e-18);
  }

  @Test
  void epochsSetTheLengthWhenMaxStepsIsZero() {
    SftConfig c = new SftConfig(LoraConfig.recipe(), 1e-4, AdamW.Hyperparameters.recipe(),
        LearningRateSchedule.Kind.COSINE, 0, 0, 3, 2, 4, 512, true, LossOn.ALL, 1.0, 1, false, 10, 10);
    assertEquals(3 * 17, c.lrSchedule(17).totalSteps());
    assertThrows(IllegalArgumentException.class, () -> new SftConfig(LoraConfig.recipe(), 1e-4,
        AdamW.Hyperparameters.recipe(), LearningRateSchedule.Kind.LINEAR, 0, 0, 0, 2, 4, 512, true, LossOn.ALL, 1.0,
        1, false, 0, 0));
  }

  @Test
  void rowsLongerThanTheContextAreRefused() {
    var e = assertThrows(IllegalArgumentException.class, () -> SftConfig.recipe().checkFits(ModelShapes.small()));
    assertTrue(e.getMessage().contains("--max-seq-len 2048 is longer than the model's context (512 tokens"),
        e.getMessage());
    SftConfig.recipe().checkFits(ModelShapes.llama31_8b());
  }
}
