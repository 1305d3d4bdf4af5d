package dev.medtune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/**
 * Sampling against its definitions: greedy is the first maximum, the repetition penalty is
 * transformers' rule, and the sampled frequencies of 40,000 draws match the renormalised
 * probabilities after temperature, top-k and top-p (within 0.01, about 4 standard deviations).
 */
class SamplerTest {

  private static final int DRAWS = 40_000;

  private static float[] logitsOf(double... probs) {
    float[] l = new float[probs.length];
    for (int i = 0; i < probs.length; i++) {
      l[i] = (float) Math.log(probs[i]);
    }
    return l;
  }

  private static double[] frequencies(Sampler s, float[] logits) {
    double[] f = new double[logits.length];
    for (int i = 0; i < DRAWS; i++) {
      f[s.sample(logits, 0, new int[0], 0)] += 1.0 / DRAWS;
    }
    return f;
  }

  private static void assertFrequencies(double[] expected, double[] got) {
    for (int i = 0; i < expected.length; i++) {
      assertEquals(expected[i], got[i], 0.01, "token " + i);
    }
  }

  @Test
  void greedyTakesTheFirstMaximum() {
    Sampler s = new Sampler(Sampler.Params.greedy(), 4);
    assertEquals(1, s.sample(new float[] {0f, 3f, 3f, -1f}, 0, new int[0], 0));
    assertEquals(2, s.sample(new float[] {9f, 0f, 1f, 3f, 2f}, 1, new int[0], 0));
  }

  @Test
  void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOncePerToken() {
    Sampler s = new Sampler(new Sampler.Params(0, 0, 1, 2.0, 0), 3);
    // token 0: 3 -> 1.5 (seen twice, penalised once); token 1: 2 stays; token 2: -1 -> -2
    assertEquals(1, s.sample(new float[] {3f, 2f, -1f}, 0, new int[] {0, 0, 2}, 3));
    // only the first `length` ids of the history count
    assertEquals(0, s.sample(new float[] {3f, 2f, -1f}, 0, new int[] {1, 0}, 1));
  }

  @Test
  void temperatureOneSamplesTheSoftmax() {
    assertFrequencies(new double[] {0.5, 0.3, 0.2},
        frequencies(new Sampler(new Sampler.Params(1, 0, 1, 1, 11), 3), logitsOf(0.5, 0.3, 0.2)));
  }

  @Test
  void temperatureSharpens() {
    // p^(1/T) renormalised with T = 0.5: 0.25, 0.09, 0.04 over 0.38
    assertFrequencies(new double[] {0.25 / 0.38, 0.09 / 0.38, 0.04 / 0.38},
        frequencies(new Sampler(new Sampler.Params(0.5, 0, 1, 1, 12), 3), logitsOf(0.5, 0.3, 0.2)));
  }

  @Test
  void topKAndTopPKeepTheMostLikelyTokensAndRenormalise() {
    float[] logits = logitsOf(0.1, 0.5, 0.2, 0.2);
    assertFrequencies(new double[] {0, 0.5 / 0.7, 0.2 / 0.7, 0},
        frequencies(new Sampler(new Sampler.Params(1, 2, 1, 1, 13), 4), logits));
    // top-p 0.6: 0.5 alone is short of it, 0.5 + 0.2 (the lower id among the equal pair) reaches it
    assertFrequencies(new double[] {0, 0.5 / 0.7, 0.2 / 0.7, 0},
        frequencies(new Sampler(new Sampler.Params(1, 0, 0.6, 1, 14), 4), logits));
    assertFrequencies(new double[] {0, 1, 0, 0},
        frequencies(new Sampler(new Sampler.Params(1, 0, 0.3, 1, 15), 4), logits));
    assertFrequencies(new double[] {0, 1, 0, 0},
        frequencies(new Sampler(new Sampler.Params(1, 1, 1, 1, 16), 4), logits));
  }

  @Test
  void theSeedMakesDrawsReproducible() {
    float[] logits = logitsOf(0.25, 0.25, 0.25, 0.25);
    Sampler a = new Sampler(new Sampler.Params(1, 0, 1, 1, 99), 4);
    Sampler b = new Sampler(new Sampler.Params(1, 0, 1, 1, 99), 4);
    for (int i = 0; i < 100; i++) {
      assertEquals(a.sample(logits, 0, new int[0], 0), b.sample(logits, 0, new int[0], 0));
    }
  }

  @Test
  void badParametersAreRejectedWithTheirName() {
    assertEquals("top-p must be in (0, 1], found 0.0",
        assertThrows(IllegalArgumentException.class, () -> new Sampler.Params(1, 0, 0, 1, 0)).getMessage());
    assertThrows(IllegalArgumentException.class, () -> new Sampler.Params(-1, 0, 1, 1, 0));
    assertThrows(IllegalArgumentException.class, () -> new Sampler.Params(1, -1, 1, 1, 0));
    assertThrows(IllegalArgumentException.class, () -> new Sampler.Params(1, 0, 1, 0, 0));
  }
}
