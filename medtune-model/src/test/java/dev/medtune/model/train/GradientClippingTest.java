package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class GradientClippingTest {

  @Test
  void scalesByMaxOverNormPlusEpsilonWhenAboveTheLimit() {
    float[] a = {3f, 0f};
    float[] b = {0f, 4f, 0f};
    double norm = GradientClipping.clip(List.of(a, b), 1.0);
    assertEquals(5.0, norm, 1e-12);
    double coef = 1.0 / (5.0 + 1e-6); // torch: max_norm / (total_norm + 1e-6)
    assertEquals(3 * coef, a[0], 1e-7);
    assertEquals(4 * coef, b[1], 1e-7);
    assertEquals(1.0, GradientClipping.globalNorm(List.of(a, b)), 1e-6);
  }

  @Test
  void leavesSmallGradientsAlone() {
    float[] a = {0.3f, -0.4f};
    assertEquals(0.5, GradientClipping.clip(List.of(a), 1.0), 1e-7);
    assertEquals(0.3f, a[0]);
    assertEquals(-0.4f, a[1]);
  }

  @Test
  void nonFiniteNormPropagates() {
    float[] a = {Float.NaN, 1f};
    assertTrue(Double.isNaN(GradientClipping.clip(List.of(a), 1.0)));
  }
}
