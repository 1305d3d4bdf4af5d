package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class SftBatcherTest {

  /**
   * Examples of varied lengths whose first token after BOS is their index (so a batch tells which
   * examples it holds); the first {@code promptLen} targets are ignored, as with a prompt mask.
   */
  static List<TokenizedExample> examples(int n, int maxLen) {
    List<TokenizedExample> out = new ArrayList<>();
    SplitMix64 r = new SplitMix64(99);
    for (int i = 0; i < n; i++) {
      int len = 3 + r.nextInt(maxLen - 2);
      int promptLen = 1 + r.nextInt(len - 2);
      int[] tokens = new int[len];
      tokens[0] = 1000;
      tokens[1] = i;
      for (int k = 2; k < len; k++) {
        tokens[k] = 500 + k;
      }
      int[] targets = new int[len];
      int counted = 0;
      for (int k = 0; k < len; k++) {
        boolean c = k + 1 < len && k + 1 > promptLen;
        targets[k] = c ? tokens[k + 1] : TokenizedExample.IGNORE;
        counted += c ? 1 : 0;
      }
      out.add(new TokenizedExample(tokens, targets, counted, len));
    }
    return out;
  }

  /** The example indices each micro-batch holds, in order, with consistency checks of its layout. */
  private static List<Integer> walkEpoch(SftBatcher b, List<TokenizedExample> ex, int epoch, int gradAccum,
      int batchSize, int maxSeqLen, boolean packing) {
    List<Integer> seen = new ArrayList<>();
    DataPosition pos = new DataPosition(epoch, 0);
    while (pos.epoch() == epoch) {
      StepBatch s = b.step(pos);
      assertTrue(s.microBatches().size() <= gradAccum);
      long counted = 0;
      for (MicroBatch mb : s.microBatches()) {
        assertTrue(mb.rows() <= batchSize);
        assertTrue(mb.length() <= maxSeqLen);
        int mbCounted = 0;
        int maxRow = 0;
        for (int r = 0; r < mb.rows(); r++) {
          int at = r * mb.length();
          int seq = -1;
          int rowEnd = at;
          while (rowEnd < at + mb.length() && mb.sequenceIds()[rowEnd] >= 0) {
            int start = rowEnd;
            assertEquals(seq + 1, mb.sequenceIds()[start], "sequence ids count up within a row");
            seq = mb.sequenceIds()[start];
            TokenizedExample e = ex.get(mb.inputIds()[start + 1]);
            seen.add(mb.inputIds()[start + 1]);
            assertTrue(seq == 0 || packing, "one example per row without packing");
            for (int k = 0; k < e.length(); k++) {
              assertEquals(e.tokens()[k], mb.inputIds()[start + k]);
              assertEquals(e.targets()[k], mb.targets()[start + k]);
              assertEquals(k, mb.positions()[start + k], "positions restart per example");
              assertEquals(seq, mb.sequenceIds()[start + k]);
            }
            assertEquals(TokenizedExample.IGNORE, mb.targets()[start + e.length() - 1],
                "an example's last token predicts nothing (not the next example's BOS)");
            mbCounted += e.counted();
            rowEnd = start + e.length();
          }
          maxRow = Math.max(maxRow, rowEnd - at);
          for (int k = rowEnd; k < at + mb.length(); k++) {
            assertEquals(-1, mb.sequenceIds()[k]);
            assertEquals(TokenizedExample.IGNORE, mb.targets()[k]);
            assertEquals(0, mb.inputIds()[k]);
          }
        }
        assertEquals(maxRow, mb.length(), "padded only to the longest row");
        assertEquals(mbCounted, mb.countedTokens());
        counted += mbCounted;
      }
      assertEquals(counted, s.countedTokens(), "the step's normaliser counts all its micro-batches");
      pos = s.next();
    }
    assertEquals(new DataPosition(epoch + 1, 0), pos);
    return seen;
  }

  @Test
  void everyExampleOncePerEpochLengthGroupedAndDeterministic() {
    var ex = examples(203, 40);
    var b = new SftBatcher(ex, 2, 4, 64, false, 3407);
    assertEquals(102, b.microBatchesPerEpoch());
    assertEquals(26, b.stepsPerEpoch());
    List<Integer> e0 = walkEpoch(b, ex, 0, 4, 2, 64, false);
    assertEquals(203, e0.size());
    assertEquals(203, e0.stream().distinct().count());
    // the longest example comes first, so an out-of-memory shows on step 1
    int longest = ex.stream().mapToInt(TokenizedExample::length).max().orElseThrow();
    assertEquals(longest, ex.get(e0.get(0)).length());
    // mega-batches of min(203 / (4 * 8), 50) * 8 = 48 examples (g = batch 2 x accum 4), each
    // sorted longest first (bar the swapped first element)
    for (int m = 0; m * 48 < 203; m++) {
      for (int i = m * 48 + 2; i < Math.min(203, (m + 1) * 48); i++) {
        assertTrue(ex.get(e0.get(i - 1)).length() >= ex.get(e0.get(i)).length(), "sorted within mega-batch " + m);
      }
    }
    int boundaries = 0; // and no longer: a 49th element would break the order somewhere
    for (int m = 1; m * 48 < 203; m++) {
      boundaries += ex.get(e0.get(m * 48 - 1)).length() < ex.get(e0.get(m * 48)).length() ? 1 : 0;
    }
    assertTrue(boundaries > 0, "mega-batch boundaries show");
    List<Integer> e1 = walkEpoch(b, ex, 1, 4, 2, 64, false);
    assertNotEquals(e0, e1, "each epoch has its own order");
    var again = new SftBatcher(ex, 2, 4, 64, false, 3407);
    assertEquals(e1, walkEpoch(again, ex, 1, 4, 2, 64, false));
    assertEquals(e0, walkEpoch(again, ex, 0, 4, 2, 64, false));
    assertNotEquals(e0, walkEpoch(new SftBatcher(ex, 2, 4, 64, false, 1), ex, 0, 4, 2, 64, false));
  }

  @Test
  void lastStepOfAnEpochTakesWhatIsLeft() {
    var ex = examples(11, 20);
    var b = new SftBatcher(ex, 2, 4, 64, false, 3407); // 6 micro-batches: steps of 4 and 2
    assertEquals(2, b.stepsPerEpoch());
    StepBatch first = b.step(DataPosition.START);
    assertEquals(4, first.microBatches().size());
    assertEquals(new DataPosition(0, 4), first.next());
    StepBatch last = b.step(first.next());
    assertEquals(2, last.microBatches().size());
    assertEquals(1, last.microBatches().get(1).rows());
    assertEquals(new DataPosition(1, 0), last.next());
    assertThrows(IllegalArgumentException.class, () -> b.step(new DataPosition(0, 2)));
  }

  @Test
  void packingFillsRowsWithWholeExamplesBestFitDecreasing() {
    var ex = examples(300, 60);
    int maxSeqLen = 128;
    var b = new SftBatcher(ex, 2, 4, maxSeqLen, true, 3407);
    List<Integer> seen = walkEpoch(b, ex, 0, 4, 2, maxSeqLen, true);
    assertEquals(300, seen.size());
    assertEquals(300, seen.stream().distinct().count());
    long total = ex.stream().mapToInt(TokenizedExample::length).sum();
    long rows = 0;
    DataPosition pos = DataPosition.START;
    while (pos.epoch() == 0) {
      StepBatch s = b.step(pos);
      for (MicroBatch mb : s.microBatches()) {
        rows += mb.rows();
      }
      pos = s.next();
    }
    long lowerBound = (total + maxSeqLen - 1) / maxSeqLen;
    assertTrue(rows <= lowerBound * 105 / 100 + 1, rows + " rows for a lower bound of " + lowerBound);
    assertEquals(walkEpoch(b, ex, 1, 4, 2, maxSeqLen, true).size(), 300);
  }

  @Test
  void resumingFromAPositionReplaysTheSameSteps() {
    var ex = examples(97, 30);
    for (boolean packing : new boolean[] {false, true}) {
      var b = new SftBatcher(ex, 3, 2, 64, packing, 3407);
      List<StepBatch> run = new ArrayList<>();
      DataPosition pos = DataPosition.START;
      for (int i = 0; i < 40; i++) { // crosses epochs
        StepBatch s = b.step(pos);
        run.add(s);
        pos = s.next();
      }
      DataPosition saved = run.get(17).next();
      var resumed = new SftBatcher(ex, 3, 2, 64, packing, 3407);
      pos = saved;
      for (int i = 18; i < 40; i++) {
        StepBatch s = resumed.step(pos);
        StepBatch want = run.get(i);
        assertEquals(want.start(), s.start());
        assertEquals(want.countedTokens(), s.countedTokens());
        for (int m = 0; m < s.microBatches().size(); m++) {
          assertArrayEquals(want.microBatches().get(m).inputIds(), s.microBatches().get(m).inputIds());
          assertArrayEquals(want.microBatches().get(m).targets(), s.microBatches().get(m).targets());
        }
        pos = s.next();
      }
    }
  }

  @Test
  void stepNormaliserMakesAccumulationEqualOneLargeBatch() {
    // Per-token losses from any fixed rule: the accumulated step loss (sum over micro-batches of
    // sum(loss) / step normaliser) must be the mean over all counted tokens of the step, whatever
    // the split into micro-batches - unlike the mean of per-micro-batch means.
    var ex = examples(64, 50);
    var b = new SftBatcher(ex, 2, 4, 64, false, 3407);
    StepBatch s = b.step(DataPosition.START);
    double accumulated = 0;
    double meanOfMeans = 0;
    double all = 0;
    long n = 0;
    for (MicroBatch mb : s.microBatches()) {
      double mbSum = 0;
      for (int i = 0; i < mb.targets().length; i++) {
        if (mb.targets()[i] != TokenizedExample.IGNORE) {
          double loss = 1 + (mb.targets()[i] * 31 + mb.positions()[i]) % 7;
          mbSum += loss;
          all += loss;
          n++;
        }
      }
      accumulated += mbSum / s.countedTokens();
      meanOfMeans += mbSum / mb.countedTokens() / s.microBatches().size();
    }
    assertEquals(n, s.countedTokens());
    assertEquals(all / n, accumulated, 1e-12);
    assertNotEquals(all / n, meanOfMeans, 1e-6);
  }

  @Test
  void refusesExamplesLongerThanTheRowsAndBadSizes() {
    var ex = examples(10, 40);
    assertThrows(IllegalArgumentException.class, () -> new SftBatcher(ex, 2, 4, 20, false, 1));
    assertThrows(IllegalArgumentException.class, () -> new SftBatcher(ex, 0, 4, 64, false, 1));
    assertThrows(IllegalArgumentException.class, () -> new SftBatcher(List.of(), 2, 4, 64, false, 1));
  }

  @Test
  void evalPassSeesEveryExampleOnceLongestFirst() {
    var ex = examples(25, 40);
    var b = new SftBatcher(ex, 4, 3, 64, true, 3407); // eval ignores packing, accumulation and seed
    List<MicroBatch> mbs = b.evalMicroBatches();
    assertEquals(7, mbs.size());
    List<Integer> seen = new ArrayList<>();
    long counted = 0;
    int previous = Integer.MAX_VALUE;
    for (MicroBatch mb : mbs) {
      assertTrue(mb.length() <= previous, "longest first");
      previous = mb.length();
      for (int r = 0; r < mb.rows(); r++) {
        seen.add(mb.inputIds()[r * mb.length() + 1]);
        assertEquals(0, mb.sequenceIds()[r * mb.length()]);
      }
      counted += mb.countedTokens();
    }
    assertEquals(25, seen.stream().distinct().count());
    assertEquals(ex.stream().mapToLong(TokenizedExample::counted).sum(), counted);
    assertEquals(seen, new ArrayList<>(new SftBatcher(ex, 4, 1, 64, false, 1).evalMicroBatches().stream()
        .flatMap(mb -> java.util.stream.IntStream.range(0, mb.rows()).mapToObj(r -> mb.inputIds()[r * mb.length() + 1]))
        .toList()), "the same order whatever the seed");
  }

  @Test
  void permutationIsUniform() {
    SplitMix64 r = new SplitMix64(5);
    Map<String, Integer> counts = new HashMap<>();
    for (int i = 0; i < 6000; i++) {
      counts.merge(java.util.Arrays.toString(SftBatcher.permutation(3, r)), 1, Integer::sum);
    }
    assertEquals(6, counts.size());
    counts.values().forEach(c -> assertTrue(Math.abs(c - 1000) < 150, "count " + c));
  }
}
