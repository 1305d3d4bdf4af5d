package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.medtune.model.train.LearningRateSchedule.Kind;
import org.junit.jupiter.api.Test;

class LearningRateScheduleTest {
  private static final double LR = 2e-4;

  @Test
  void linearWithWarmupAsTransformers() {
    var s = new LearningRateSchedule(Kind.LINEAR, LR, 5, 60);
    // lr_lambda: step < warmup -> step / warmup, else (total - step) / (total - warmup)
    assertEquals(0.0, s.lr(0));
    assertEquals(LR * 1 / 5.0, s.lr(1), 1e-18);
    assertEquals(LR * 4 / 5.0, s.lr(4), 1e-18);
    assertEquals(LR, s.lr(5), 1e-18);
    assertEquals(LR * 30 / 55.0, s.lr(30), 1e-18);
    assertEquals(LR * 1 / 55.0, s.lr(59), 1e-18);
    assertEquals(0.0, s.lr(60));
    assertEquals(0.0, s.lr(70));
  }

  @Test
  void cosineWithWarmupAsTransformers() {
    var s = new LearningRateSchedule(Kind.COSINE, LR, 5, 60);
    assertEquals(0.0, s.lr(0));
    assertEquals(LR * 0.2, s.lr(1), 1e-18);
    assertEquals(LR, s.lr(5), 1e-18);
    assertEquals(LR * 0.5 * (1 + Math.cos(Math.PI * 25 / 55.0)), s.lr(30), 1e-18);
    assertEquals(LR * 0.5, new LearningRateSchedule(Kind.COSINE, LR, 0, 60).lr(30), 1e-18);
    assertEquals(0.0, s.lr(60), 1e-20);
  }

  @Test
  void constantWithWarmupAsTransformers() {
    var s = new LearningRateSchedule(Kind.CONSTANT, LR, 5, 60);
    assertEquals(0.0, s.lr(0));
    assertEquals(LR * 0.2, s.lr(1), 1e-18);
    assertEquals(LR, s.lr(5));
    assertEquals(LR, s.lr(30));
    assertEquals(LR, s.lr(60));
    assertEquals(LR, new LearningRateSchedule(Kind.LINEAR, LR, 0, 60).lr(0));
  }

  @Test
  void totalStepsFromMaxStepsOrEpochs() {
    assertEquals(60, LearningRateSchedule.totalSteps(60, 3, 100));
    assertEquals(300, LearningRateSchedule.totalSteps(0, 3, 100));
    assertThrows(IllegalArgumentException.class, () -> LearningRateSchedule.totalSteps(0, 0, 100));
    assertThrows(IllegalArgumentException.class, () -> new LearningRateSchedule(Kind.LINEAR, LR, -1, 60));
  }
}
