package dev.medtune.model;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The keys and values of every layer for {@code slots} sequences of up to {@code maxLength}
 * tokens each, allocated once: per layer {@code [slots, maxLength, kvHeads * headDim]} float32.
 * A sequence owns a slot; its tokens are stored at their positions, so several prompts of
 * different lengths decode together.
 */
public final class KvCache {

  private static final AtomicLong IDS = new AtomicLong();

  private final Backend backend;
  private final Tensor[] keys;
  private final Tensor[] values;
  private final int slots;
  private final int maxLength;
  private final int kvDim;
  private final long id = IDS.incrementAndGet();

  public KvCache(Backend backend, LlamaConfig config, int slots, int maxLength) {
    if (maxLength > config.maxPositionEmbeddings()) {
      throw new IllegalArgumentException("a KV cache of " + maxLength + " positions exceeds the model's"
          + " context of " + config.maxPositionEmbeddings() + " (max_position_embeddings)");
    }
    this.backend = backend;
    this.slots = slots;
    this.maxLength = maxLength;
    this.kvDim = config.kvDim();
    keys = new Tensor[config.numLayers()];
    values = new Tensor[config.numLayers()];
    for (int l = 0; l < config.numLayers(); l++) {
      keys[l] = backend.allocate(slots, maxLength, config.kvDim());
      values[l] = backend.allocate(slots, maxLength, config.kvDim());
    }
  }

  /**
   * Copies positions {@code [0, length)} of slot {@code from} into slot {@code to}, every layer:
   * a prompt prefilled once then continued several ways (evaluation scores each answer option
   * from its own copy of the question's prompt). Through the host for now; a device-side copy op
   * in the SPI would avoid the round trip on a GPU.
   */
  public void copyPrefix(int from, int to, int length) {
    if (from < 0 || from >= slots || to < 0 || to >= slots || length < 0 || length > maxLength) {
      throw new IllegalArgumentException("copy of " + length + " positions from slot " + from
          + " to slot " + to + " is outside the cache of " + slots + " slots x " + maxLength
          + " positions");
    }
    if (from == to || length == 0) {
      return;
    }
    float[] buf = new float[length * kvDim];
    long src = (long) from * maxLength * kvDim;
    long dst = (long) to * maxLength * kvDim;
    for (int l = 0; l < keys.length; l++) {
      backend.copyToHost(keys[l], src, buf, buf.length);
      backend.copyFromHost(buf, keys[l], dst);
      backend.copyToHost(values[l], src, buf, buf.length);
      backend.copyFromHost(buf, values[l], dst);
    }
  }

  public int slots() {
    return slots;
  }

  /** Positions per slot. */
  public int maxLength() {
    return maxLength;
  }

  /** Unique per cache in this process: part of a decode step's key (a new cache has new buffers). */
  long id() {
    return id;
  }

  Tensor keys(int layer) {
    return keys[layer];
  }

  Tensor values(int layer) {
    return values[layer];
  }
}
