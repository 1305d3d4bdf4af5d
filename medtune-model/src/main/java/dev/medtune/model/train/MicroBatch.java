package dev.medtune.model.train;

/**
 * One forward/backward pass worth of tokens: {@code rows x length}, row-major, right-padded.
 * Padding has input id 0, target {@link TokenizedExample#IGNORE}, position 0 and sequence id -1.
 * Within a row, tokens attend only to earlier tokens with the same sequence id (one id per row
 * without packing; one per example with packing, where positions restart at 0 for each).
 *
 * @param rows batch rows
 * @param length tokens per row (the longest row of this micro-batch)
 * @param inputIds token ids
 * @param targets next-token targets, or IGNORE
 * @param positions RoPE positions
 * @param sequenceIds attention segment of each token, -1 for padding
 * @param countedTokens targets that are not IGNORE
 * @param realTokens tokens that are not padding
 */
public record MicroBatch(int rows, int length, int[] inputIds, int[] targets, int[] positions,
    int[] sequenceIds, int countedTokens, int realTokens) {}
