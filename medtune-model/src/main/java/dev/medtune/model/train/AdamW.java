package dev.medtune.model.train;

import dev.medtune.model.ModelFormatException;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.SafetensorsFile;
import dev.medtune.model.safetensors.SafetensorsWriter;
import dev.medtune.model.safetensors.TensorInfo;
import java.nio.file.Path;
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

  /**
   * Writes the state as safetensors: {@code NAME.exp_avg} and {@code NAME.exp_avg_sq} (float32,
   * 1-D) per tensor, the step count and hyperparameters in the metadata.
   */
  public void save(Path file, List<String> names) {
    checkNames(names);
    SafetensorsWriter w = new SafetensorsWriter()
        .metadata("format", "medtune-adamw-1")
        .metadata("step", Long.toString(step))
        .metadata("betas", h.beta1() + "," + h.beta2())
        .metadata("eps", Double.toString(h.eps()))
        .metadata("weight_decay", Double.toString(h.weightDecay()));
    for (int i = 0; i < expAvg.length; i++) {
      w.add(names.get(i) + ".exp_avg", DType.F32, new long[] {expAvg[i].length}, expAvg[i]);
      w.add(names.get(i) + ".exp_avg_sq", DType.F32, new long[] {expAvgSq[i].length}, expAvgSq[i]);
    }
    w.write(file);
  }

  /** Restores state {@link #save}d for the same tensors; a missing or mis-sized tensor is named. */
  public void load(Path file, List<String> names) {
    checkNames(names);
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      String s = f.metadata().get("step");
      if (s == null) {
        throw new ModelFormatException(file + ": no step count in the metadata (not an AdamW state file)");
      }
      for (int i = 0; i < expAvg.length; i++) {
        copy(f, names.get(i) + ".exp_avg", expAvg[i]);
        copy(f, names.get(i) + ".exp_avg_sq", expAvgSq[i]);
      }
      if (f.tensors().size() != 2 * expAvg.length) {
        throw new ModelFormatException(file + ": holds " + f.tensors().size() + " tensors, expected "
            + 2 * expAvg.length + " (state of another adapter)");
      }
      restoreStepCount(Long.parseLong(s));
    }
  }

  private static void copy(SafetensorsFile f, String name, float[] dst) {
    TensorInfo t = f.tensor(name);
    if (t.dtype() != DType.F32 || t.elementCount() != dst.length) {
      throw new ModelFormatException(f.path() + ": tensor " + name + " is " + t.dtype() + " "
          + java.util.Arrays.toString(t.shape()) + ", expected F32 [" + dst.length + "]");
    }
    t.getFloats(0, dst);
  }

  private void checkNames(List<String> names) {
    if (names.size() != expAvg.length) {
      throw new IllegalArgumentException(names.size() + " names for " + expAvg.length + " tensors");
    }
  }
}
