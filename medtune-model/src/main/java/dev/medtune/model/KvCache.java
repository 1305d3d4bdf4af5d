package dev.medtune.model;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;

/**
 * The keys and values of every layer for {@code slots} sequences of up to {@code maxLength}
 * tokens each, allocated once: per layer {@code [slots, maxLength, kvHeads * headDim]} float32.
 * A sequence owns a slot; its tokens are stored at their positions, so several prompts of
 * different lengths decode together.
 */
public final class KvCache {

  private final Tensor[] keys;
  private final Tensor[] values;
  private final int slots;
  private final int maxLength;

  public KvCache(Backend backend, LlamaConfig config, int slots, int maxLength) {
    if (maxLength > config.maxPositionEmbeddings()) {
      throw new IllegalArgumentException("a KV cache of " + maxLength + " positions exceeds the model's"
          + " context of " + config.maxPositionEmbeddings() + " (max_position_embeddings)");
    }
    this.slots = slots;
    this.maxLength = maxLength;
    keys = new Tensor[config.numLayers()];
    values = new Tensor[config.numLayers()];
    for (int l = 0; l < config.numLayers(); l++) {
      keys[l] = backend.allocate(slots, maxLength, config.kvDim());
      values[l] = backend.allocate(slots, maxLength, config.kvDim());
    }
  }

  public int slots() {
    return slots;
  }

  /** Positions per slot. */
  public int maxLength() {
    return maxLength;
  }

  Tensor keys(int layer) {
    return keys[layer];
  }

  Tensor values(int layer) {
    return values[layer];
  }
}
