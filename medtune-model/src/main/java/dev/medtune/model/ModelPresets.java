package dev.medtune.model;

import dev.medtune.model.safetensors.DType;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The model shapes {@code init-model} writes: {@code tiny} for demos and tests, and the exact
 * shapes of Meta's Llama 3.2 1B, Llama 3.1 8B and Llama 3.1 70B (their published config.json)
 * for benchmarks.
 */
public final class ModelPresets {
  private ModelPresets() {}

  /** A named shape, the dtype its weights are written in, and where its special tokens start. */
  public record Preset(String name, LlamaConfig config, DType dtype, int firstSpecialId,
      String description) {}

  private static final LlamaConfig.RopeScaling LLAMA31_SCALING =
      new LlamaConfig.RopeScaling(8.0, 1.0, 4.0, 8192);
  private static final LlamaConfig.RopeScaling LLAMA32_SCALING =
      new LlamaConfig.RopeScaling(32.0, 1.0, 4.0, 8192);

  private static final Map<String, Preset> PRESETS = new LinkedHashMap<>();

  static {
    // tiny: 4 layers of width 64, GQA 4/2 heads of 16, llama3 rope scaling with all three
    // frequency bands in use (wavelengths 6 to 6e5 around the 2048..8192 band), untied head, f32,
    // vocabulary 1024 = 256 bytes + up to 512 merges + Llama 3.1's 256 special tokens.
    add(new Preset("tiny", new LlamaConfig(64, 176, 4, 4, 2, 16, 1024, 131072, 1e-5, 500000.0,
        LLAMA31_SCALING, false, 768, new int[] {769}, "float32"), DType.F32, 768,
        "4 layers, width 64, 4/2 heads, vocab 1024, float32 (about 1.3 MB)"));
    add(new Preset("llama-3.2-1b", new LlamaConfig(2048, 8192, 16, 32, 8, 64, 128256, 131072, 1e-5,
        500000.0, LLAMA32_SCALING, true, 128000, new int[] {128001}, "bfloat16"), DType.BF16, 128000,
        "Llama 3.2 1B shape: 16 layers, width 2048, 32/8 heads, tied embeddings, bf16 (2.5 GB)"));
    add(new Preset("llama-3.1-8b", new LlamaConfig(4096, 14336, 32, 32, 8, 128, 128256, 131072, 1e-5,
        500000.0, LLAMA31_SCALING, false, 128000, new int[] {128001}, "bfloat16"), DType.BF16, 128000,
        "Llama 3.1 8B shape: 32 layers, width 4096, 32/8 heads, bf16 (16 GB, 4 shards)"));
    add(new Preset("llama-3.1-70b", new LlamaConfig(8192, 28672, 80, 64, 8, 128, 128256, 131072,
        1e-5, 500000.0, LLAMA31_SCALING, false, 128000, new int[] {128001}, "bfloat16"), DType.BF16,
        128000, "Llama 3.1 70B shape: 80 layers, width 8192, 64/8 heads, bf16 (141 GB, 30 shards)"));
  }

  private static void add(Preset p) {
    PRESETS.put(p.name(), p);
  }

  public static List<String> names() {
    return List.copyOf(PRESETS.keySet());
  }

  public static List<Preset> all() {
    return List.copyOf(PRESETS.values());
  }

  /** The preset of that name; an unknown name is an {@link IllegalArgumentException} listing them. */
  public static Preset get(String name) {
    Preset p = PRESETS.get(name);
    if (p == null) {
      throw new IllegalArgumentException("unknown preset \"" + name + "\"; presets: "
          + String.join(", ", PRESETS.keySet()));
    }
    return p;
  }
}
