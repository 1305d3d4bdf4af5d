package dev.medtune.cli;

import dev.medtune.model.Checkpoint;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.LoraMerge;
import java.nio.file.Files;
import java.nio.file.Path;

/** How commands apply a LoRA adapter (PEFT layout) to a base model for inference: one way. */
public final class Adapters {
  private Adapters() {}

  /** True when {@code dir} is an adapter folder (it has PEFT's {@code adapter_config.json}). */
  public static boolean isAdapter(Path dir) {
    return dir != null && Files.isRegularFile(dir.resolve("adapter_config.json"));
  }

  /**
   * The base with the adapter merged into its projections in memory (base dtype), or the base
   * as it is when {@code adapter} is null. An adapter that does not fit the model is an
   * {@link IllegalArgumentException} naming the tensor.
   */
  public static Checkpoint apply(Checkpoint base, Path adapter) {
    if (adapter == null) {
      return base;
    }
    if (!Files.isDirectory(adapter)) {
      throw new IllegalArgumentException(adapter + ": no such adapter folder");
    }
    return LoraMerge.inMemory(base, LoraAdapter.load(adapter, base.config()));
  }
}
