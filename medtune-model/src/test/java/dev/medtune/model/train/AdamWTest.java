package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

class AdamWTest {

  /** torch.optim.AdamW's update written out in doubles, step by step, for one scalar. */
  private static double[] referenceTrajectory(double p, double[] grads, double[] lrs,
      double b1, double b2, double eps, double wd) {
    double m = 0;
    double v = 0;
    double[] out = new double[grads.length];
    for (int t = 1; t <= grads.length; t++) {
      double g = grads[t - 1];
      double lr = lrs[t - 1];
      p = p * (1 - lr * wd);
      m = b1 * m + (1 - b1) * g;
      v = b2 * v + (1 - b2) * g * g;
      double mHat = m / (1 - Math.pow(b1, t));
      double vHat = v / (1 - Math.pow(b2, t));
      p = p - lr * mHat / (Math.sqrt(vHat) + eps);
      out[t - 1] = p;
    }
    return out;
  }

  @Test
  void followsTorchAdamWOnAScalar() {
    double[] grads = {0.5, -0.25, 1.5, 0.0, -3.0, 0.125};
    double[] lrs = {1e-2, 2e-2, 2e-2, 1e-2, 5e-3, 1e-3};
    var h = new AdamW.Hyperparameters(0.9, 0.999, 1e-8, 0.01);
    double[] expected = referenceTrajectory(1.25, grads, lrs, 0.9, 0.999, 1e-8, 0.01);
    float[] p = {1.25f};
    float[] g = new float[1];
    AdamW opt = AdamW.forParameters(h, List.of(p));
    for (int t = 0; t < grads.length; t++) {
      g[0] = (float) grads[t];
      opt.step(List.of(p), List.of(g), lrs[t]);
      assertEquals(expected[t], p[0], 1e-6 * Math.abs(expected[t]), "after step " + (t + 1));
    }
    assertEquals(grads.length, opt.stepCount());
  }

  @Test
  void firstStepMovesEachWeightByLrTimesSignOfGradient() {
    // t=1: m_hat = g, v_hat = g^2, so the Adam part is lr * g / (|g| + eps); decay first
    float[] p = {2f, -3f, 0.5f};
    float[] g = {4f, -0.001f, 10f};
    var opt = AdamW.forParameters(new AdamW.Hyperparameters(0.9, 0.999, 1e-8, 0.1), List.of(p));
    opt.step(List.of(p), List.of(g), 0.01);
    double[] want = {2 * (1 - 0.001) - 0.01 * 4 / (4 + 1e-8), -3 * (1 - 0.001) + 0.01 * 0.001 / (0.001 + 1e-8),
        0.5 * (1 - 0.001) - 0.01};
    for (int i = 0; i < 3; i++) {
      assertEquals(want[i], p[i], 1e-6, "element " + i);
    }
    assertEquals(0.1f * 4f, opt.expAvg(0)[0], 1e-7f);
    assertEquals(0.001f * 16f, opt.expAvgSq(0)[0], 1e-8f);
  }

  @Test
  void zeroGradientStillDecays() {
    float[] p = {1f};
    var opt = AdamW.forParameters(AdamW.Hyperparameters.recipe(), List.of(p));
    opt.step(List.of(p), List.of(new float[] {0f}), 2e-4);
    assertEquals(1 - 2e-4 * 0.01, p[0], 1e-7);
  }

  @Test
  void refusesMismatchedTensors() {
    var opt = new AdamW(AdamW.Hyperparameters.recipe(), new int[] {2});
    assertThrows(IllegalArgumentException.class,
        () -> opt.step(List.of(new float[3]), List.of(new float[3]), 1e-3));
    assertThrows(IllegalArgumentException.class, () -> new AdamW.Hyperparameters(1.0, 0.999, 1e-8, 0));
  }
}
