package dev.medtune.model.train;

import dev.medtune.model.LlamaConfig;
import dev.medtune.model.lora.LoraConfig;
import dev.medtune.model.lora.LoraTarget;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Every setting of a LoRA SFT run; {@link #recipe()} is the recipe's (seed-facts.md): r 16,
 * alpha 16, the seven projections, lr 2e-4, weight decay 0.01, linear schedule with 5 warmup
 * steps, 60 steps, batch 2 x accumulation 4, seed 3407, max grad norm 1.0 - except the loss,
 * which defaults to the completion (the recipe's {@code all} is one option away).
 *
 * @param lora the adapter
 * @param lr peak learning rate
 * @param adamW betas, eps, weight decay
 * @param schedule shape after warmup
 * @param warmupSteps linear warmup
 * @param maxSteps optimizer steps; 0 to use {@code epochs}
 * @param epochs passes over the data when {@code maxSteps} is 0
 * @param batchSize rows per micro-batch
 * @param gradAccum micro-batches per optimizer step
 * @param maxSeqLen tokens per row; longer examples are truncated
 * @param packing several examples per row, attention kept inside each
 * @param lossOn which tokens count
 * @param maxGradNorm clipping threshold
 * @param seed every random choice derives from it
 * @param gradientCheckpointing recompute activations per layer in backward
 * @param saveEvery steps between checkpoints (0: only at the end)
 * @param evalEvery steps between eval-loss measurements (0: never)
 */
public record SftConfig(LoraConfig lora, double lr, AdamW.Hyperparameters adamW, LearningRateSchedule.Kind schedule,
    int warmupSteps, int maxSteps, int epochs, int batchSize, int gradAccum, int maxSeqLen, boolean packing,
    LossOn lossOn, double maxGradNorm, long seed, boolean gradientCheckpointing, int saveEvery, int evalEvery) {

  public SftConfig {
    if (maxSteps < 0 || epochs < 0 || (maxSteps == 0 && epochs == 0)) {
      throw new IllegalArgumentException("give --max-steps or --epochs (found " + maxSteps + " and " + epochs + ")");
    }
    if (batchSize < 1 || gradAccum < 1 || warmupSteps < 0 || saveEvery < 0 || evalEvery < 0) {
      throw new IllegalArgumentException("batch size and gradient accumulation must be >= 1, warmup,"
          + " save and eval intervals >= 0");
    }
    if (maxSeqLen < 2) {
      throw new IllegalArgumentException("--max-seq-len must be at least 2, found " + maxSeqLen);
    }
    if (!(lr > 0) || !(maxGradNorm > 0)) {
      throw new IllegalArgumentException("--lr and --max-grad-norm must be > 0");
    }
  }

  /** The recipe's run, loss on the completion. */
  public static SftConfig recipe() {
    return new SftConfig(LoraConfig.recipe(), 2e-4, AdamW.Hyperparameters.recipe(), LearningRateSchedule.Kind.LINEAR,
        5, 60, 0, 2, 4, 2048, false, LossOn.COMPLETION, 1.0, 3407, true, 0, 0);
  }

  /** Refuses a run the model cannot hold: rows longer than its context. */
  public void checkFits(LlamaConfig model) {
    if (maxSeqLen > model.maxPositionEmbeddings()) {
      throw new IllegalArgumentException("--max-seq-len " + maxSeqLen + " is longer than the model's context ("
          + model.maxPositionEmbeddings() + " tokens, max_position_embeddings)");
    }
  }

  /** The schedule for a run of {@code stepsPerEpoch} steps per epoch. */
  public LearningRateSchedule lrSchedule(int stepsPerEpoch) {
    return new LearningRateSchedule(schedule, lr, warmupSteps,
        LearningRateSchedule.totalSteps(maxSteps, epochs, stepsPerEpoch));
  }

  /**
   * The settings that determine the trajectory of a run, under the CLI's option names: what
   * training.json records and what {@code --resume} requires to be unchanged (checkpoint and eval
   * intervals are excluded: they do not change any step's loss).
   */
  public Map<String, Object> trajectorySettings() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("lora_r", lora.r());
    m.put("lora_alpha", lora.alpha());
    m.put("lora_dropout", lora.dropout());
    m.put("target_modules", lora.targets().stream().map(LoraTarget::moduleName).toList());
    m.put("use_rslora", lora.useRslora());
    m.put("lr", lr);
    m.put("weight_decay", adamW.weightDecay());
    m.put("adam_beta1", adamW.beta1());
    m.put("adam_beta2", adamW.beta2());
    m.put("adam_eps", adamW.eps());
    m.put("lr_scheduler", schedule.name().toLowerCase(java.util.Locale.ROOT));
    m.put("warmup_steps", warmupSteps);
    m.put("max_steps", maxSteps);
    m.put("epochs", epochs);
    m.put("batch_size", batchSize);
    m.put("grad_accum", gradAccum);
    m.put("max_seq_len", maxSeqLen);
    m.put("packing", packing);
    m.put("loss_on", lossOn.name().toLowerCase(java.util.Locale.ROOT));
    m.put("max_grad_norm", maxGradNorm);
    m.put("seed", seed);
    return m;
  }

  /** Every setting (trajectory settings, then bookkeeping ones). */
  public Map<String, Object> allSettings() {
    Map<String, Object> m = trajectorySettings();
    m.put("gradient_checkpointing", gradientCheckpointing);
    m.put("save_every", saveEvery);
    m.put("eval_every", evalEvery);
    return m;
  }
}
