package dev.medtune.cuda;

import java.util.Arrays;

/**
 * The work items of the flash-attention kernels ({@code flash_attention.cu}): the rows cut into
 * maximal runs of consecutive rows with one slot and positions increasing by one, each split into
 * pieces of at most {@link #BQ} rows. Training and prefill batches are such runs (one per
 * sequence), so a 2048-row sequence is 32 items; rows in any other order still work, as items of
 * one row (slowly).
 *
 * @param items four ints per item, sorted by slot: first row, row count, slot, first position
 * @param slotItems per slot {@code s < slots}: its items are {@code [slotItems[2s], slotItems[2s+1])}
 * @param slots one past the largest slot of the rows
 * @param lastPosition the largest position of the rows
 */
record FlashItems(int[] items, int[] slotItems, int slots, int lastPosition) {

  /** Query rows per item: 4 warps of 16 rows. */
  static final int BQ = 64;

  int count() {
    return items.length / 4;
  }

  static FlashItems of(int[] slots, int[] positions, int rows) {
    int[] raw = new int[4 * rows];
    int n = 0;
    int slotCount = 0;
    int lastPosition = 0;
    for (int t = 0; t < rows; ) {
      int start = t;
      t++;
      while (t < rows && t - start < BQ && slots[t] == slots[start] && positions[t] == positions[t - 1] + 1) {
        t++;
      }
      raw[4 * n] = start;
      raw[4 * n + 1] = t - start;
      raw[4 * n + 2] = slots[start];
      raw[4 * n + 3] = positions[start];
      n++;
      slotCount = Math.max(slotCount, slots[start] + 1);
      lastPosition = Math.max(lastPosition, positions[t - 1]);
    }
    // a stable counting sort by slot, and each slot's range
    int[] slotItems = new int[2 * slotCount];
    int[] counts = new int[slotCount + 1];
    for (int i = 0; i < n; i++) {
      counts[raw[4 * i + 2] + 1]++;
    }
    for (int s = 0; s < slotCount; s++) {
      counts[s + 1] += counts[s];
      slotItems[2 * s] = counts[s];
      slotItems[2 * s + 1] = counts[s + 1];
    }
    int[] items = new int[4 * n];
    int[] next = Arrays.copyOf(counts, slotCount);
    for (int i = 0; i < n; i++) {
      int at = next[raw[4 * i + 2]]++;
      System.arraycopy(raw, 4 * i, items, 4 * at, 4);
    }
    return new FlashItems(items, slotItems, slotCount, lastPosition);
  }
}
