package dev.medtune.model.lora;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;

/**
 * LoRA hyperparameters as PEFT defines them (Hu et al., "LoRA: Low-Rank Adaptation of Large
 * Language Models", arXiv:2106.09685; PEFT {@code src/peft/tuners/lora/config.py}): an adapted
 * projection computes {@code y = x W^T + scale * (x A^T) B^T} with A of shape [r, in] and B of
 * shape [out, r].
 *
 * @param r the rank
 * @param alpha {@code lora_alpha}
 * @param dropout {@code lora_dropout}, applied to the LoRA branch's input during training
 * @param targets the adapted projections, distinct, in {@link LoraTarget} order
 * @param useRslora rank-stabilised scaling (Kalajdzievski, "A Rank Stabilization Scaling Factor
 *     for Fine-Tuning with LoRA", arXiv:2312.03732): {@code alpha / sqrt(r)} instead of
 *     {@code alpha / r}
 */
public record LoraConfig(int r, double alpha, double dropout, List<LoraTarget> targets, boolean useRslora) {

  public LoraConfig {
    if (r <= 0) {
      throw new IllegalArgumentException("LoRA rank must be positive, found " + r);
    }
    if (!(alpha > 0) || Double.isInfinite(alpha)) {
      throw new IllegalArgumentException("lora_alpha must be a positive number, found " + alpha);
    }
    if (!(dropout >= 0 && dropout < 1)) {
      throw new IllegalArgumentException("lora_dropout must be in [0, 1), found " + dropout);
    }
    if (targets == null || targets.isEmpty()) {
      throw new IllegalArgumentException("LoRA needs at least one target module");
    }
    EnumSet<LoraTarget> set = EnumSet.noneOf(LoraTarget.class);
    for (LoraTarget t : targets) {
      if (!set.add(t)) {
        throw new IllegalArgumentException("target module " + t.moduleName() + " is listed twice");
      }
    }
    targets = List.copyOf(set);
  }

  /** The recipe's adapter: r 16, alpha 16, dropout 0, all seven projections, no rsLoRA. */
  public static LoraConfig recipe() {
    return new LoraConfig(16, 16, 0, List.of(LoraTarget.values()), false);
  }

  /**
   * Targets from module names such as {@code q_proj,v_proj} (what {@code --target-modules} takes);
   * an unknown name is an {@link IllegalArgumentException} that lists the seven.
   */
  public static List<LoraTarget> parseTargets(List<String> names) {
    List<LoraTarget> out = new ArrayList<>();
    for (String n : names) {
      LoraTarget t = LoraTarget.fromModuleName(n.strip());
      if (t == null) {
        throw new IllegalArgumentException("unknown LoRA target module '" + n
            + "'; expected some of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
      }
      out.add(t);
    }
    return out;
  }

  /** The factor on the LoRA branch: alpha / r, or alpha / sqrt(r) with rsLoRA (as PEFT's {@code scaling}). */
  public double scale() {
    return useRslora ? alpha / Math.sqrt(r) : alpha / r;
  }

  public boolean targets(LoraTarget t) {
    return targets.contains(t);
  }
}
