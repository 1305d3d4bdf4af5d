package dev.medtune.model.train;

/**
 * Learning-rate schedules as Hugging Face transformers defines them
 * ({@code transformers.optimization}: {@code get_linear_schedule_with_warmup},
 * {@code get_cosine_schedule_with_warmup} with {@code num_cycles=0.5},
 * {@code get_constant_schedule_with_warmup}), each a {@code LambdaLR} factor on the base rate.
 *
 * <p>As with {@code LambdaLR} in a training loop that calls {@code optimizer.step()} then
 * {@code scheduler.step()}, the n-th optimizer update (n = 1, 2, ...) uses {@code lr(n - 1)}: with
 * warmup the first update has learning rate 0, exactly as the Trainer does it.
 *
 * @param kind the shape after warmup
 * @param baseLr the peak learning rate
 * @param warmupSteps linear warmup from 0
 * @param totalSteps {@code num_training_steps}
 */
public record LearningRateSchedule(Kind kind, double baseLr, int warmupSteps, int totalSteps) {

  /** The schedule's shape after warmup. */
  public enum Kind {
    LINEAR, COSINE, CONSTANT
  }

  public LearningRateSchedule {
    if (warmupSteps < 0 || totalSteps <= 0) {
      throw new IllegalArgumentException("warmup steps must be >= 0 and total steps > 0, found "
          + warmupSteps + " and " + totalSteps);
    }
    if (!(baseLr >= 0) || Double.isInfinite(baseLr)) {
      throw new IllegalArgumentException("learning rate must be >= 0, found " + baseLr);
    }
  }

  /**
   * Total optimizer steps of a run: {@code maxSteps} when positive, else
   * {@code epochs * stepsPerEpoch} (transformers' rule: max_steps overrides num_train_epochs).
   */
  public static int totalSteps(int maxSteps, int epochs, int stepsPerEpoch) {
    if (maxSteps > 0) {
      return maxSteps;
    }
    if (epochs <= 0 || stepsPerEpoch <= 0) {
      throw new IllegalArgumentException("either max steps or epochs (with data) must be given");
    }
    return Math.multiplyExact(epochs, stepsPerEpoch);
  }

  /** The learning rate after {@code schedulerStep} scheduler steps (the (n+1)-th update uses lr(n)). */
  public double lr(int schedulerStep) {
    return baseLr * factor(schedulerStep);
  }

  /** The {@code lr_lambda} of transformers for this schedule. */
  public double factor(int step) {
    if (step < warmupSteps) {
      return (double) step / Math.max(1, warmupSteps);
    }
    return switch (kind) {
      case CONSTANT -> 1.0;
      case LINEAR -> Math.max(0.0, (double) (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
      case COSINE -> {
        double progress = (double) (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
        yield Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * 0.5 * 2.0 * progress)));
      }
    };
  }
}
