package dev.medtune.model.lora;

import dev.medtune.model.LlamaConfig;

/**
 * The seven linear projections of a Llama decoder layer that LoRA can adapt, under their Hugging
 * Face module names. Declaration order is medtune's canonical order (attention, then FFN), used
 * for parameter order, initialisation order and the order of {@code target_modules} we write.
 */
public enum LoraTarget {
  Q_PROJ("self_attn", "q_proj"),
  K_PROJ("self_attn", "k_proj"),
  V_PROJ("self_attn", "v_proj"),
  O_PROJ("self_attn", "o_proj"),
  GATE_PROJ("mlp", "gate_proj"),
  UP_PROJ("mlp", "up_proj"),
  DOWN_PROJ("mlp", "down_proj");

  private final String block;
  private final String moduleName;

  LoraTarget(String block, String moduleName) {
    this.block = block;
    this.moduleName = moduleName;
  }

  /** The name PEFT's {@code target_modules} uses, e.g. {@code q_proj}. */
  public String moduleName() {
    return moduleName;
  }

  /** The path inside a decoder layer, e.g. {@code self_attn.q_proj}. */
  public String modulePath() {
    return block + "." + moduleName;
  }

  /** Input width of the projection (the {@code in_features} of its {@code nn.Linear}). */
  public int inFeatures(LlamaConfig c) {
    return switch (this) {
      case Q_PROJ, K_PROJ, V_PROJ, GATE_PROJ, UP_PROJ -> c.hiddenSize();
      case O_PROJ -> c.numHeads() * c.headDim();
      case DOWN_PROJ -> c.intermediateSize();
    };
  }

  /** Output width of the projection ({@code out_features}). */
  public int outFeatures(LlamaConfig c) {
    return switch (this) {
      case Q_PROJ -> c.numHeads() * c.headDim();
      case K_PROJ, V_PROJ -> c.numKvHeads() * c.headDim();
      case O_PROJ, DOWN_PROJ -> c.hiddenSize();
      case GATE_PROJ, UP_PROJ -> c.intermediateSize();
    };
  }

  /**
   * The target a {@code target_modules} entry names: the bare module name ({@code q_proj}) or its
   * path in the layer ({@code self_attn.q_proj}); null when it names none of the seven.
   */
  public static LoraTarget fromModuleName(String name) {
    for (LoraTarget t : values()) {
      if (t.moduleName.equals(name) || t.modulePath().equals(name)) {
        return t;
      }
    }
    return null;
  }
}
