package dev.medtune.model.train;

import java.util.List;

/**
 * Clipping by global norm as {@code torch.nn.utils.clip_grad_norm_} (norm_type 2): the L2 norm of
 * all gradients together, then every gradient scaled by
 * {@code clamp(max_norm / (norm + 1e-6), max=1)}. The norm is accumulated in double (torch takes
 * the norm of the per-tensor float32 norms; the difference is below float32 rounding).
 */
public final class GradientClipping {
  private GradientClipping() {}

  /** The global L2 norm of the gradients. */
  public static double globalNorm(List<float[]> grads) {
    double sum = 0;
    for (float[] g : grads) {
      double s = 0;
      for (float x : g) {
        s += (double) x * x;
      }
      sum += s;
    }
    return Math.sqrt(sum);
  }

  /**
   * Scales the gradients in place so that their global norm is at most {@code maxNorm}; returns
   * the norm before clipping (what the Trainer logs as {@code grad_norm}). A non-finite norm
   * leaves the gradients non-finite, as torch does without {@code error_if_nonfinite}; the caller
   * decides to skip the step.
   */
  public static double clip(List<float[]> grads, double maxNorm) {
    if (!(maxNorm > 0)) {
      throw new IllegalArgumentException("max grad norm must be > 0, found " + maxNorm);
    }
    double norm = globalNorm(grads);
    double coef = Math.min(1.0, maxNorm / (norm + 1e-6));
    if (coef < 1.0 || Double.isNaN(coef)) {
      float c = (float) coef;
      for (float[] g : grads) {
        for (int j = 0; j < g.length; j++) {
          g[j] *= c;
        }
      }
    }
    return norm;
  }
}
