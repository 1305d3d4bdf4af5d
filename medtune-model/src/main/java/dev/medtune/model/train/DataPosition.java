package dev.medtune.model.train;

/**
 * Where training stands in the data: the epoch and the index of the next micro-batch in that
 * epoch's order. The order is a function of (seed, epoch), so this is all a checkpoint needs to
 * resume on exactly the batches an uninterrupted run would have seen.
 */
public record DataPosition(int epoch, int microBatch) {
  public DataPosition {
    if (epoch < 0 || microBatch < 0) {
      throw new IllegalArgumentException("data position must be >= 0, found epoch " + epoch
          + ", micro-batch " + microBatch);
    }
  }

  public static final DataPosition START = new DataPosition(0, 0);
}
