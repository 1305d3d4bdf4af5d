package dev.medtune.model.train;

/**
 * Text to token ids, as the model's tokenizer does it ({@code LlamaTokenizer} satisfies it).
 * Training asks for ids without special tokens and adds BOS and EOS itself.
 */
@FunctionalInterface
public interface TokenEncoder {
  int[] encode(String text, boolean addSpecialTokens);
}
