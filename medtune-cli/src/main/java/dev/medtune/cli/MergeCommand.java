package dev.medtune.cli;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.lora.LoraMerge;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code medtune merge}: a LoRA adapter folded into its base model, written in Hugging Face layout. */
@Command(
    name = "merge",
    mixinStandardHelpOptions = true,
    description = {
      "Fold a LoRA adapter (PEFT layout) into its base model: W + s * B @ A on every adapted"
          + " projection, in the base model's dtype. Writes a model folder in Hugging Face layout"
          + " (same safetensors files and index as the base, config and tokenizer files copied)."
    })
final class MergeCommand implements Callable<Integer> {

  @Option(names = "--model", required = true, paramLabel = "M", description = "Base model folder, or a hub model id (org/name), downloaded into the hub cache.")
  Path model;

  @Option(names = "--adapter", required = true, paramLabel = "A", description = "Adapter folder (adapter_config.json, adapter_model.safetensors).")
  Path adapter;

  @Option(names = "--output", required = true, paramLabel = "DIR", description = "Folder to write the merged model to.")
  Path output;

  @Option(names = "--overwrite", description = "Replace an existing non-empty output folder.")
  boolean overwrite;

  @Option(names = "--device", defaultValue = "auto", paramLabel = "DEVICE",
      description = "Where the products s * B @ A are computed: auto (CUDA when present, else CPU), cpu or cuda"
          + " (default: ${DEFAULT-VALUE}); the weights stream through the host either way. On the CPU the"
          + " result is bit for bit what generate/eval --adapter compute in memory; on CUDA float32 sums"
          + " in another order (TF32 products unless MEDTUNE_CUDA_TF32=0).")
  String device;

  @Override
  public Integer call() {
    model = HubAccess.model(model, new java.io.PrintWriter(System.err, true));
    if (!Files.isDirectory(adapter)) {
      throw new MedtuneFailure(adapter + ": no such adapter folder");
    }
    long t0 = System.nanoTime();
    String on;
    try (Backend backend = Devices.open(device)) {
      // on the CPU the plain loop, the very sums `generate`/`eval --adapter` make in memory (a merged
      // model then scores bit for bit as the adapter applied); elsewhere the device's products
      boolean cpu = "cpu".equals(backend.name());
      on = cpu ? "the CPU (this thread)" : backend.description();
      LoraMerge.merge(model, adapter, output, overwrite, m -> System.err.println("merge: " + m), cpu ? null : backend);
    } catch (IllegalArgumentException e) {
      throw new MedtuneFailure(e.getMessage());
    }
    System.err.printf("merge: %s + %s -> %s (%.1f s, products on %s)%n", model, adapter, output,
        (System.nanoTime() - t0) / 1e9, on);
    return 0;
  }

}
