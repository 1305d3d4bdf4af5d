package dev.medtune.model;

/**
 * Rotary position embedding frequencies (Su et al. 2021, arXiv:2104.09864) with Llama 3.1's
 * frequency scaling: Meta's {@code apply_scaling} in llama-models, transformers'
 * {@code _compute_llama3_parameters}. Wavelengths shorter than
 * {@code original / high_freq_factor} keep their frequency, longer than
 * {@code original / low_freq_factor} are divided by {@code factor}, and those in between are
 * interpolated smoothly.
 */
final class Rope {

  private Rope() {}

  /** {@code inv_freq[i] = theta^(-2i/headDim)}, scaled as above; rounded to float32 as transformers keeps it. */
  static float[] inverseFrequencies(LlamaConfig config) {
    int half = config.headDim() / 2;
    float[] inv = new float[half];
    LlamaConfig.RopeScaling s = config.ropeScaling();
    for (int i = 0; i < half; i++) {
      double f = 1.0 / Math.pow(config.ropeTheta(), 2.0 * i / config.headDim());
      if (s != null) {
        double lowWavelen = s.originalMaxPositionEmbeddings() / s.lowFreqFactor();
        double highWavelen = s.originalMaxPositionEmbeddings() / s.highFreqFactor();
        double wavelen = 2 * Math.PI / f;
        if (wavelen > lowWavelen) {
          f = f / s.factor();
        } else if (wavelen >= highWavelen) {
          double smooth = (s.originalMaxPositionEmbeddings() / wavelen - s.lowFreqFactor())
              / (s.highFreqFactor() - s.lowFreqFactor());
          f = (1 - smooth) * f / s.factor() + smooth * f;
        }
      }
      inv[i] = (float) f;
    }
    return inv;
  }

  /**
   * The table {@link dev.medtune.model.backend.Backend#ropeForward} reads: for each position
   * {@code p < maxLength}, {@code cos(p * inv_freq[i])} then {@code sin(p * inv_freq[i])}. The
   * angle is a float32 product as in transformers.
   */
  static float[] table(LlamaConfig config, int maxLength) {
    float[] inv = inverseFrequencies(config);
    int headDim = config.headDim();
    int half = headDim / 2;
    float[] t = new float[maxLength * headDim];
    for (int p = 0; p < maxLength; p++) {
      for (int i = 0; i < half; i++) {
        float angle = (float) p * inv[i];
        t[p * headDim + i] = (float) Math.cos(angle);
        t[p * headDim + half + i] = (float) Math.sin(angle);
      }
    }
    return t;
  }
}
