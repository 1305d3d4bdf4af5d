package dev.medtune.model.train;

import dev.medtune.model.lora.LoraAdapter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * The result of a run, {@code OUT/adapter/}: the adapter in PEFT layout, the base model's
 * tokenizer files (as PEFT/unsloth users save them beside an adapter, so the folder alone serves
 * and uploads) and {@code training.json}. Built in {@code OUT/adapter.tmp}, forced to disk and
 * renamed, replacing an earlier result only once complete.
 */
public final class AdapterOutput {
  /** Files copied from the base model folder when present. */
  static final List<String> TOKENIZER_FILES =
      List.of("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja");

  private AdapterOutput() {}

  /** Writes {@code outDir/adapter} and returns it. */
  public static Path write(Path outDir, LoraAdapter adapter, Path baseModelDir, String baseModelNameOrPath,
      TrainingRecord record) {
    Path dir = outDir.resolve("adapter");
    Path tmp = outDir.resolve("adapter.tmp");
    Path old = outDir.resolve("adapter.old");
    try {
      Files.createDirectories(outDir);
      CheckpointFolder.deleteRecursively(tmp);
      Files.createDirectories(tmp);
      adapter.save(tmp, baseModelNameOrPath);
      for (String f : TOKENIZER_FILES) {
        Path src = baseModelDir.resolve(f);
        if (Files.isRegularFile(src)) {
          Files.copy(src, tmp.resolve(f));
        }
      }
      record.write(tmp);
      CheckpointFolder.forceTree(tmp);
      CheckpointFolder.deleteRecursively(old);
      if (Files.exists(dir)) {
        Files.move(dir, old);
      }
      Files.move(tmp, dir);
      CheckpointFolder.deleteRecursively(old);
      return dir;
    } catch (IOException e) {
      throw new UncheckedIOException(dir + ": cannot write the adapter: " + e.getMessage(), e);
    }
  }
}
