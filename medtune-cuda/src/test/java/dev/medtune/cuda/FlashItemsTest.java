package dev.medtune.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The flash-attention work items (no GPU needed): runs of rows cut at 64, sorted by slot. */
class FlashItemsTest {

  @Test
  void aLongSequenceIsCutIntoPiecesOf64Rows() {
    int rows = 300;
    int[] slots = new int[rows];
    int[] positions = new int[rows];
    for (int t = 0; t < rows; t++) {
      positions[t] = t;
    }
    FlashItems f = FlashItems.of(slots, positions, rows);
    assertArrayEquals(new int[] {0, 64, 0, 0, 64, 64, 0, 64, 128, 64, 0, 128, 192, 64, 0, 192, 256, 44, 0, 256},
        f.items());
    assertArrayEquals(new int[] {0, 5}, f.slotItems());
    assertEquals(1, f.slots());
    assertEquals(299, f.lastPosition());
  }

  @Test
  void packedSequencesAreOneRunEachAndPrefillKeepsItsFirstPosition() {
    // slot 2: 65 rows from position 10 (a prefill after cached positions); slot 0: 1 row; slot 1: 3
    int[] slots = new int[69];
    int[] positions = new int[69];
    for (int t = 0; t < 65; t++) {
      slots[t] = 2;
      positions[t] = 10 + t;
    }
    slots[65] = 0;
    for (int t = 66; t < 69; t++) {
      slots[t] = 1;
      positions[t] = t - 66;
    }
    FlashItems f = FlashItems.of(slots, positions, 69);
    assertArrayEquals(new int[] {65, 1, 0, 0, 66, 3, 1, 0, 0, 64, 2, 10, 64, 1, 2, 74}, f.items());
    assertArrayEquals(new int[] {0, 1, 1, 2, 2, 4}, f.slotItems());
    assertEquals(3, f.slots());
    assertEquals(74, f.lastPosition());
  }

  @Test
  void rowsOutOfOrderBecomeItemsOfOneRow() {
    int[] slots = {1, 0, 1, 0, 0, 0};
    int[] positions = {0, 0, 1, 1, 5, 6};
    FlashItems f = FlashItems.of(slots, positions, 6);
    // slot 0: rows 1, 3 (positions 0, 1 but not consecutive rows), then rows 4-5 (positions 5-6)
    assertArrayEquals(new int[] {1, 1, 0, 0, 3, 1, 0, 1, 4, 2, 0, 5, 0, 1, 1, 0, 2, 1, 1, 1}, f.items());
    assertArrayEquals(new int[] {0, 3, 3, 5}, f.slotItems());
    assertEquals(5, f.count());
    assertEquals(6, f.lastPosition());
  }

  @Test
  void aSlotWithoutRowsHasAnEmptyRange() {
    FlashItems f = FlashItems.of(new int[] {2, 2}, new int[] {3, 4}, 2);
    assertArrayEquals(new int[] {0, 2, 2, 3}, f.items());
    assertArrayEquals(new int[] {0, 0, 0, 0, 0, 1}, f.slotItems());
  }
}
