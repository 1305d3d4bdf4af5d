package dev.medtune.model.train;

import java.util.List;

/**
 * The micro-batches of one optimizer step ({@code --grad-accum} of them, fewer at the end of an
 * epoch). The loss of the step is the sum of the token losses of all its micro-batches divided
 * by {@link #countedTokens()}, computed before the first micro-batch runs, so accumulating
 * gradients over micro-batches gives exactly the gradient of one large batch (the fix
 * transformers 4.46 and unsloth made in October 2024; a per-micro-batch mean weighs short and
 * long micro-batches wrongly).
 *
 * @param microBatches in the order they run
 * @param countedTokens the loss normaliser: counted targets over the whole step
 * @param start the data position of the step's first micro-batch
 * @param next the position of the next step (the next epoch's start after the last step of one)
 */
public record StepBatch(List<MicroBatch> microBatches, long countedTokens, DataPosition start, DataPosition next) {

  /** Tokens that are not padding, over the whole step (for tokens/s). */
  public long realTokens() {
    long n = 0;
    for (MicroBatch m : microBatches) {
      n += m.realTokens();
    }
    return n;
  }
}
