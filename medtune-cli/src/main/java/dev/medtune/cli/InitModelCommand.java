package dev.medtune.cli;

import dev.medtune.model.ModelPresets;
import dev.medtune.model.RandomInit;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code medtune init-model}: a randomly initialised Llama-architecture model in HF layout. */
@Command(
    name = "init-model",
    mixinStandardHelpOptions = true,
    description = {
      "Write a randomly initialised Llama-architecture model in Hugging Face layout (config.json,"
          + " model.safetensors or shards with model.safetensors.index.json, tokenizer.json,"
          + " tokenizer_config.json, generation_config.json).",
      "Presets: tiny (4 layers, width 64, vocab 1024, float32, about 1.3 MB; for demos and tests),"
          + " llama-3.2-1b, llama-3.1-8b, llama-3.1-70b (the exact shapes of Meta's models, bf16;"
          + " for benchmarks).",
      "Weights: normal(0, 0.02), norms 1, from --seed. Without --tokenizer, medtune's byte-level"
          + " BPE tokenizer with Llama 3.1's special tokens is written."
    })
final class InitModelCommand implements Callable<Integer> {

  @Option(names = "--preset", required = true, paramLabel = "P",
      description = "tiny, llama-3.2-1b, llama-3.1-8b or llama-3.1-70b.")
  String preset;

  @Option(names = "--output", required = true, paramLabel = "DIR",
      description = "Folder to write; must not exist or be empty unless --overwrite.")
  Path output;

  @Option(names = "--seed", defaultValue = "0", paramLabel = "S",
      description = "Random seed (default: ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--tokenizer", paramLabel = "FILE",
      description = "A tokenizer.json to copy in (e.g. Llama 3.1's), with the"
          + " tokenizer_config.json beside it if there is one.")
  Path tokenizer;

  @Option(names = "--overwrite", description = "Replace an existing non-empty output folder.")
  boolean overwrite;

  @Override
  public Integer call() {
    ModelPresets.Preset p;
    try {
      p = ModelPresets.get(preset);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    if (tokenizer != null && !Files.isRegularFile(tokenizer)) {
      throw new MedtuneFailure(tokenizer + ": no such tokenizer file");
    }
    try {
      RandomInit.checkDestination(output, overwrite);
    } catch (IllegalArgumentException e) {
      throw new MedtuneFailure(e.getMessage());
    }
    long t0 = System.nanoTime();
    RandomInit.Result r = RandomInit.write(p, output, seed, tokenizer, overwrite, System.err::println);
    System.err.printf("init-model: %s, %,d parameters, %s of weights in %s (%.1f s)%n",
        p.name(), r.parameters(), RandomInit.size(r.bytes()), output, (System.nanoTime() - t0) / 1e9);
    return 0;
  }
}
