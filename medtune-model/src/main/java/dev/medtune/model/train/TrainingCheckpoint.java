package dev.medtune.model.train;

import dev.medtune.model.LlamaConfig;
import dev.medtune.model.lora.LoraAdapter;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

/**
 * The contents of a training checkpoint folder: the adapter in PEFT layout
 * ({@code adapter_config.json}, {@code adapter_model.safetensors}), the AdamW state
 * ({@code optimizer.safetensors}) and {@code trainer_state.json} (step, data position, seed,
 * model and data identity, hyperparameters), written atomically by {@link CheckpointFolder}.
 */
public final class TrainingCheckpoint {
  public static final String OPTIMIZER_FILE = "optimizer.safetensors";

  private TrainingCheckpoint() {}

  /** What a checkpoint restores. */
  public record Restored(Path dir, LoraAdapter adapter, AdamW optimizer, TrainerState state) {}

  /** Saves {@code OUT/checkpoint-STEP}, keeping the newest {@code keep} checkpoints. */
  public static Path save(Path outDir, int keep, LoraAdapter adapter, String baseModelNameOrPath,
      AdamW optimizer, TrainerState state) {
    return CheckpointFolder.save(outDir, state.step(), keep, dir -> {
      adapter.save(dir, baseModelNameOrPath);
      optimizer.save(dir.resolve(OPTIMIZER_FILE), names(adapter));
      state.write(dir);
    });
  }

  /** Loads a checkpoint folder for {@code model}. */
  public static Restored restore(Path checkpoint, LlamaConfig model, AdamW.Hyperparameters h) {
    TrainerState state = TrainerState.read(checkpoint);
    LoraAdapter adapter = LoraAdapter.load(checkpoint, model);
    AdamW opt = AdamW.forParameters(h, adapter.parameters());
    opt.load(checkpoint.resolve(OPTIMIZER_FILE), names(adapter));
    if (opt.stepCount() != state.step()) {
      throw new IllegalArgumentException(checkpoint + ": the optimizer has taken " + opt.stepCount()
          + " steps but trainer_state.json says " + state.step());
    }
    return new Restored(checkpoint, adapter, opt, state);
  }

  /**
   * {@code --resume}: the newest complete checkpoint in {@code outDir}, checked against the run
   * about to start ({@code now}: its model fingerprint, data hash, seed and hyperparameters;
   * step and data position are ignored), or empty when there is none. A checkpoint made for
   * another model, data or settings is an {@link IllegalArgumentException} saying what differs.
   */
  public static Optional<Restored> resumeLatest(Path outDir, LlamaConfig model, AdamW.Hyperparameters h,
      TrainerState now) {
    Optional<Path> latest = CheckpointFolder.latest(outDir);
    if (latest.isEmpty()) {
      return Optional.empty();
    }
    TrainerState saved = TrainerState.read(latest.get());
    saved.checkResumableAs(now, latest.get());
    return Optional.of(restore(latest.get(), model, h));
  }

  private static List<String> names(LoraAdapter adapter) {
    return adapter.tensors().stream().map(LoraAdapter.Tensor::name).toList();
  }
}
