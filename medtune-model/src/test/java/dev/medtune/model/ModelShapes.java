package dev.medtune.model;

/** Llama shapes for tests (the 8B numbers are Llama 3.1 8B's config.json). */
public final class ModelShapes {
  private ModelShapes() {}

  /** A small GQA model: 2 layers, width 64, 4 query heads, 2 key/value heads. */
  public static LlamaConfig small() {
    return new LlamaConfig(64, 160, 2, 4, 2, 16, 300, 512, 1e-5, 500000.0, null, false, 256,
        new int[] {257}, "float32");
  }

  public static LlamaConfig llama31_8b() {
    return new LlamaConfig(4096, 14336, 32, 32, 8, 128, 128256, 131072, 1e-5, 500000.0,
        new LlamaConfig.RopeScaling(8.0, 1.0, 4.0, 8192), false, 128000, new int[] {128001},
        "bfloat16");
  }
}
