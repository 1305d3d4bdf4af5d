package dev.medtune.model.train;

import java.util.List;

/**
 * AdamW (Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) exactly as
 * {@code torch.optim.AdamW} computes it (single-tensor path, {@code amsgrad=False},
 * {@code maximize=False}), over flat float32 arrays with float32 state:
 *
 * <pre>
 *   t += 1
 *   p  = p * (1 - lr * weight_decay)                 decoupled decay, before the Adam update
 *   m  = m + (1 - beta1) * (g - m)                     torch's lerp_
 *   v  = beta2 * v + (1 - beta2) * g * g
 *   p  = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * </pre>
 *
 * Scalars (the bias corrections, step size) are computed in double as Python computes them, and
 * element arithmetic is float32 as torch's float kernels do it. Parameters are a fixed list of
 * arrays given once; {@link #step} allocates nothing.
 */
public final class AdamW {

  /** Hyperparameters; {@link #recipe()} gives torch's defaults with the recipe's weight decay. */
  public record Hyperparameters(double beta1, double beta2, double eps, double weightDecay) {
    public Hyperparameters {
      if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
        throw new IllegalArgumentException("AdamW betas must be in [0, 1), found (" + beta1 + ", " + beta2 + ")");
      }
      if (!(eps >= 0) || !(weightDecay >= 0)) {
        throw new IllegalArgumentException("AdamW eps and weight decay must be >= 0");
      }
    }

    /** betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
    public static Hyperparameters recipe() {
      return new Hyperparameters(0.9, 0.999, 1e-8, 0.01);
    }
  }

  private final Hyperparameters h;
  private final float[][] expAvg;
  private final float[][] expAvgSq;
  private long step;

  /** State for parameters of the given sizes (in the order {@link #step} will receive them). */
  public AdamW(Hyperparameters h, int[] sizes) {
    this.h = h;
    this.expAvg = new float[sizes.length][];
    this.expAvgSq = new float[sizes.length][];
    for (int i = 0; i < sizes.length; i++) {
      expAvg[i] = new float[sizes[i]];
      expAvgSq[i] = new float[sizes[i]];
    }
  }

  /** State for these parameters' sizes. */
  public static AdamW forParameters(Hyperparameters h, List<float[]> params) {
    int[] sizes = new int[params.size()];
    for (int i = 0; i < sizes.length; i++) {
      sizes[i] = params.get(i).length;
    }
    return new AdamW(h, sizes);
  }

  /** One update of every parameter with its gradient at learning rate {@code lr}. */
  public void step(List<float[]> params, List<float[]> grads, double lr) {
    if (params.size() != expAvg.length || grads.size() != expAvg.length) {
      throw new IllegalArgumentException("AdamW holds state for " + expAvg.length + " tensors, got "
          + params.size() + " parameters and " + grads.size() + " gradients");
    }
    step++;
    double biasCorrection1 = 1 - Math.pow(h.beta1(), step);
    double biasCorrection2 = 1 - Math.pow(h.beta2(), step);
    float stepSize = (float) (lr / biasCorrection1);
    float bc2Sqrt = (float) Math.sqrt(biasCorrection2);
    float decay = (float) (1 - lr * h.weightDecay());
    float oneMinusBeta1 = (float) (1 - h.beta1());
    float beta2 = (float) h.beta2();
    float oneMinusBeta2 = (float) (1 - h.beta2());
    float eps = (float) h.eps();
    for (int i = 0; i < expAvg.length; i++) {
      float[] p = params.get(i);
      float[] g = grads.get(i);
      float[] m = expAvg[i];
      float[] v = expAvgSq[i];
      if (p.length != m.length || g.length != m.length) {
        throw new IllegalArgumentException("tensor " + i + ": AdamW state has " + m.length
            + " elements, parameter " + p.length + ", gradient " + g.length);
      }
      for (int j = 0; j < p.length; j++) {
        float gj = g[j];
        float pj = p[j] * decay;
        float mj = m[j] + oneMinusBeta1 * (gj - m[j]);
        float vj = beta2 * v[j] + oneMinusBeta2 * gj * gj;
        m[j] = mj;
        v[j] = vj;
        float denom = (float) Math.sqrt(vj) / bc2Sqrt + eps;
        p[j] = pj - stepSize * (mj / denom);
      }
    }
  }

  /** Updates taken so far (torch's {@code state["step"]}). */
  public long stepCount() {
    return step;
  }

  public Hyperparameters hyperparameters() {
    return h;
  }

  /** First-moment state of tensor {@code i} (live; for checkpoints). */
  public float[] expAvg(int i) {
    return expAvg[i];
  }

  /** Second-moment state of tensor {@code i} (live; for checkpoints). */
  public float[] expAvgSq(int i) {
    return expAvgSq[i];
  }

  public int tensorCount() {
    return expAvg.length;
  }

  /** Restores the step count after loading the moments from a checkpoint. */
  public void restoreStepCount(long stepCount) {
    if (stepCount < 0) {
      throw new IllegalArgumentException("step count must be >= 0, found " + stepCount);
    }
    this.step = stepCount;
  }
}
