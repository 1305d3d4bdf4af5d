package dev.medtune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** Rope frequencies against Meta's {@code apply_scaling}, evaluated in double here. */
class RopeTest {

  @Test
  void ropeFrequenciesFollowMetasLlama3Scaling() {
    LlamaConfig c = new LlamaConfig(64, 128, 1, 4, 2, 16, 100, 256, 1e-5, 500000,
        new LlamaConfig.RopeScaling(8, 1, 4, 32), false, 1, new int[] {2}, "float32");
    float[] inv = Rope.inverseFrequencies(c);
    for (int i = 0; i < 8; i++) {
      double f = Math.pow(500000, -2.0 * i / 16);
      double wavelen = 2 * Math.PI / f;
      double expected;
      if (wavelen < 32 / 4.0) {
        expected = f;
      } else if (wavelen > 32 / 1.0) {
        expected = f / 8;
      } else {
        double smooth = (32 / wavelen - 1) / (4 - 1);
        expected = (1 - smooth) * f / 8 + smooth * f;
      }
      assertEquals(expected, inv[i], 1e-7 * expected, "inv_freq " + i);
    }
  }
}
