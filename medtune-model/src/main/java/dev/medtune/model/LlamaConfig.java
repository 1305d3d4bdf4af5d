package dev.medtune.model;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * The shape of a Llama 3.x model, as its Hugging Face {@code config.json} states it.
 *
 * @param hiddenSize model width ({@code hidden_size})
 * @param intermediateSize FFN width ({@code intermediate_size})
 * @param numLayers {@code num_hidden_layers}
 * @param numHeads query heads ({@code num_attention_heads})
 * @param numKvHeads key/value heads ({@code num_key_value_heads}); grouped-query attention when fewer
 * @param headDim {@code head_dim}, else hiddenSize / numHeads
 * @param vocabSize {@code vocab_size}
 * @param maxPositionEmbeddings context length ({@code max_position_embeddings})
 * @param rmsNormEps {@code rms_norm_eps}
 * @param ropeTheta {@code rope_theta}
 * @param ropeScaling the {@code llama3} frequency scaling, or null when the config has none
 * @param tieWordEmbeddings whether {@code lm_head} reuses {@code embed_tokens}
 * @param bosTokenId {@code bos_token_id}
 * @param eosTokenIds {@code eos_token_id}, a number or a list in the file
 * @param torchDtype {@code torch_dtype} (or {@code dtype}), e.g. "bfloat16"
 */
public record LlamaConfig(
    int hiddenSize,
    int intermediateSize,
    int numLayers,
    int numHeads,
    int numKvHeads,
    int headDim,
    int vocabSize,
    int maxPositionEmbeddings,
    double rmsNormEps,
    double ropeTheta,
    RopeScaling ropeScaling,
    boolean tieWordEmbeddings,
    int bosTokenId,
    int[] eosTokenIds,
    String torchDtype) {

  /**
   * Llama 3.1's rope frequency scaling ({@code rope_type: "llama3"}), as in Meta's reference
   * {@code apply_scaling} and transformers' {@code _compute_llama3_parameters}.
   */
  public record RopeScaling(
      double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositionEmbeddings) {}

  /**
   * Reads a Hugging Face {@code config.json} of Llama 3, 3.1, 3.2 or 3.3 (also the transformers 5
   * form with {@code rope_parameters}). Anything medtune cannot run (another architecture, another
   * rope type, biases) is a one-line {@link ModelFormatException} naming the file and the key.
   */
  public static LlamaConfig read(Path configJson) {
    return ConfigJson.read(configJson);
  }

  /** Writes this config as a Hugging Face {@code config.json} (atomically), loadable by transformers. */
  public void write(Path configJson) {
    ConfigJson.write(this, configJson);
  }

  /** Key/value width of one layer: {@code numKvHeads * headDim}. */
  public int kvDim() {
    return numKvHeads * headDim;
  }

  /** Number of parameters of the weights this shape has (embeddings counted once when tied). */
  public long parameterCount() {
    long h = hiddenSize;
    long perLayer = h * (long) numHeads * headDim * 2 // q, o
        + h * (long) kvDim() * 2 // k, v
        + 3 * h * intermediateSize // gate, up, down
        + 2 * h; // norms
    return (long) vocabSize * h * (tieWordEmbeddings ? 1 : 2) + numLayers * perLayer + h;
  }

  public boolean isEos(int token) {
    for (int e : eosTokenIds) {
      if (e == token) {
        return true;
      }
    }
    return false;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof LlamaConfig c
        && hiddenSize == c.hiddenSize && intermediateSize == c.intermediateSize
        && numLayers == c.numLayers && numHeads == c.numHeads && numKvHeads == c.numKvHeads
        && headDim == c.headDim && vocabSize == c.vocabSize
        && maxPositionEmbeddings == c.maxPositionEmbeddings
        && Double.compare(rmsNormEps, c.rmsNormEps) == 0
        && Double.compare(ropeTheta, c.ropeTheta) == 0
        && java.util.Objects.equals(ropeScaling, c.ropeScaling)
        && tieWordEmbeddings == c.tieWordEmbeddings && bosTokenId == c.bosTokenId
        && Arrays.equals(eosTokenIds, c.eosTokenIds)
        && java.util.Objects.equals(torchDtype, c.torchDtype);
  }

  @Override
  public int hashCode() {
    return java.util.Objects.hash(hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads,
        headDim, vocabSize, Arrays.hashCode(eosTokenIds));
  }

  @Override
  public String toString() {
    return "LlamaConfig[hidden=" + hiddenSize + ", ffn=" + intermediateSize + ", layers="
        + numLayers + ", heads=" + numHeads + "/" + numKvHeads + ", headDim=" + headDim
        + ", vocab=" + vocabSize + ", ctx=" + maxPositionEmbeddings + ", theta=" + ropeTheta
        + ", scaling=" + ropeScaling + ", tied=" + tieWordEmbeddings + ", eos="
        + Arrays.toString(eosTokenIds) + ", dtype=" + torchDtype + "]";
  }
}
