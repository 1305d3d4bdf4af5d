package dev.medtune.model.train;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.TreeMap;

/**
 * Turns tokenized examples into optimizer steps, deterministically from the seed.
 *
 * <p>Without packing, each epoch's order is transformers' {@code get_length_grouped_indices}
 * as the Trainer uses it with {@code group_by_length} (its sampler's batch is
 * {@code batch * grad_accum}, call it g): a random permutation cut into mega-batches of
 * {@code min(n / (4 g), 50) * g} examples (at least g), each sorted longest first, the first
 * element of the mega-batch holding the longest example swapped to the front (so a memory problem
 * shows on the first step); micro-batches of {@code --batch-size} rows are then padded only to
 * their own longest row.
 *
 * <p>With packing, the epoch's shuffled examples are packed best-fit-decreasing (as TRL's
 * {@code bfd} strategy) into rows of at most {@code maxSeqLen} tokens, whole examples only; the rows
 * are shuffled and grouped {@code --batch-size} per micro-batch. Positions restart and the
 * sequence id changes at each example, so attention stays inside it.
 *
 * <p>A step is {@code --grad-accum} consecutive micro-batches of one epoch; the last step of an
 * epoch takes what is left. Randomness: {@link SplitMix64#forStream}(seed, epoch), a Fisher-Yates
 * shuffle; the permutation is not torch's {@code randperm}.
 */
public final class SftBatcher {
  private final List<TokenizedExample> examples;
  private final int batchSize;
  private final int gradAccum;
  private final int maxSeqLen;
  private final boolean packing;
  private final long seed;
  private int plannedEpoch = -1;
  private int[][][] plan; // micro-batch -> row -> example indices

  public SftBatcher(List<TokenizedExample> examples, int batchSize, int gradAccum, int maxSeqLen,
      boolean packing, long seed) {
    if (examples.isEmpty()) {
      throw new IllegalArgumentException("no training examples");
    }
    if (batchSize < 1 || gradAccum < 1) {
      throw new IllegalArgumentException("batch size and gradient accumulation must be >= 1, found "
          + batchSize + " and " + gradAccum);
    }
    for (TokenizedExample e : examples) {
      if (e.length() > maxSeqLen) {
        throw new IllegalArgumentException("an example has " + e.length()
            + " tokens, more than the maximum sequence length " + maxSeqLen);
      }
    }
    this.examples = examples;
    this.batchSize = batchSize;
    this.gradAccum = gradAccum;
    this.maxSeqLen = maxSeqLen;
    this.packing = packing;
    this.seed = seed;
  }

  /** Micro-batches in one epoch (the same for every epoch). */
  public int microBatchesPerEpoch() {
    return plan(0).length;
  }

  /** Optimizer steps in one epoch. */
  public int stepsPerEpoch() {
    return (microBatchesPerEpoch() + gradAccum - 1) / gradAccum;
  }

  /** The step that starts at {@code pos} (a step boundary: micro-batch index a multiple of grad-accum). */
  public StepBatch step(DataPosition pos) {
    int[][][] p = plan(pos.epoch());
    if (pos.microBatch() % gradAccum != 0 || pos.microBatch() >= p.length) {
      throw new IllegalArgumentException("data position " + pos + " is not the start of a step (epoch has "
          + p.length + " micro-batches, " + gradAccum + " per step)");
    }
    int end = Math.min(p.length, pos.microBatch() + gradAccum);
    List<MicroBatch> mbs = new ArrayList<>(end - pos.microBatch());
    long counted = 0;
    for (int i = pos.microBatch(); i < end; i++) {
      MicroBatch mb = build(p[i]);
      counted += mb.countedTokens();
      mbs.add(mb);
    }
    DataPosition next = end == p.length ? new DataPosition(pos.epoch() + 1, 0) : new DataPosition(pos.epoch(), end);
    return new StepBatch(List.copyOf(mbs), counted, pos, next);
  }

  /**
   * The micro-batches of an evaluation pass ({@code --val}): every example once, in a fixed order
   * (longest first, so rows of similar length share a batch and padding stays small), no
   * shuffling and no packing; the eval loss is the sum of token losses over all of them divided
   * by the sum of their {@link MicroBatch#countedTokens()}.
   */
  public List<MicroBatch> evalMicroBatches() {
    Integer[] order = new Integer[examples.size()];
    for (int i = 0; i < order.length; i++) {
      order[i] = i;
    }
    Arrays.sort(order, (a, b) -> Integer.compare(len(b), len(a)));
    List<MicroBatch> out = new ArrayList<>();
    for (int b = 0; b < order.length; b += batchSize) {
      int rows = Math.min(batchSize, order.length - b);
      int[][] r = new int[rows][];
      for (int i = 0; i < rows; i++) {
        r[i] = new int[] {order[b + i]};
      }
      out.add(build(r));
    }
    return out;
  }

  private MicroBatch build(int[][] rows) {
    int length = 0;
    for (int[] row : rows) {
      length = Math.max(length, rowLength(row));
    }
    int n = rows.length * length;
    int[] ids = new int[n];
    int[] targets = new int[n];
    int[] positions = new int[n];
    int[] seqIds = new int[n];
    Arrays.fill(targets, TokenizedExample.IGNORE);
    Arrays.fill(seqIds, -1);
    int counted = 0;
    int real = 0;
    for (int r = 0; r < rows.length; r++) {
      int at = r * length;
      for (int s = 0; s < rows[r].length; s++) {
        TokenizedExample e = examples.get(rows[r][s]);
        System.arraycopy(e.tokens(), 0, ids, at, e.length());
        System.arraycopy(e.targets(), 0, targets, at, e.length());
        for (int i = 0; i < e.length(); i++) {
          positions[at + i] = i;
          seqIds[at + i] = s;
        }
        at += e.length();
        counted += e.counted();
        real += e.length();
      }
    }
    return new MicroBatch(rows.length, length, ids, targets, positions, seqIds, counted, real);
  }

  private int rowLength(int[] row) {
    int n = 0;
    for (int i : row) {
      n += examples.get(i).length();
    }
    return n;
  }

  private int[][][] plan(int epoch) {
    if (epoch != plannedEpoch) {
      plan = packing ? packedPlan(epoch) : groupedPlan(epoch);
      plannedEpoch = epoch;
    }
    return plan;
  }

  private int[][][] groupedPlan(int epoch) {
    int n = examples.size();
    SplitMix64 rng = SplitMix64.forStream(seed, epoch);
    int[] perm = permutation(n, rng);
    int group = batchSize * gradAccum; // Trainer: LengthGroupedSampler(train_batch_size * gradient_accumulation_steps)
    int mult = Math.min(n / (group * 4), 50);
    if (mult == 0) {
      mult = 1;
    }
    int mega = mult * group;
    List<List<Integer>> megabatches = new ArrayList<>();
    for (int i = 0; i < n; i += mega) {
      List<Integer> m = new ArrayList<>();
      for (int j = i; j < Math.min(n, i + mega); j++) {
        m.add(perm[j]);
      }
      m.sort((a, b) -> Integer.compare(examples.get(b).length(), examples.get(a).length())); // stable, longest first
      megabatches.add(m);
    }
    int maxIdx = 0;
    for (int i = 1; i < megabatches.size(); i++) {
      if (len(megabatches.get(i).get(0)) > len(megabatches.get(maxIdx).get(0))) {
        maxIdx = i; // torch.argmax: first maximum
      }
    }
    Integer first = megabatches.get(0).get(0);
    megabatches.get(0).set(0, megabatches.get(maxIdx).get(0));
    megabatches.get(maxIdx).set(0, first);
    int[] order = megabatches.stream().flatMap(List::stream).mapToInt(Integer::intValue).toArray();
    int count = (n + batchSize - 1) / batchSize;
    int[][][] out = new int[count][][];
    for (int b = 0; b < count; b++) {
      int rows = Math.min(batchSize, n - b * batchSize);
      out[b] = new int[rows][];
      for (int r = 0; r < rows; r++) {
        out[b][r] = new int[] {order[b * batchSize + r]};
      }
    }
    return out;
  }

  private int len(int example) {
    return examples.get(example).length();
  }

  private int[][][] packedPlan(int epoch) {
    int n = examples.size();
    SplitMix64 rng = SplitMix64.forStream(seed, epoch);
    int[] perm = permutation(n, rng);
    Integer[] byLength = Arrays.stream(perm).boxed().toArray(Integer[]::new);
    Arrays.sort(byLength, (a, b) -> Integer.compare(len(b), len(a))); // stable over the shuffle
    // best fit decreasing: the fullest row that still has room
    List<List<Integer>> rows = new ArrayList<>();
    int[] used = new int[n];
    TreeMap<Integer, Deque<Integer>> byRemaining = new TreeMap<>();
    for (int ex : byLength) {
      int l = len(ex);
      var fit = byRemaining.ceilingEntry(l);
      int row;
      if (fit == null) {
        row = rows.size();
        rows.add(new ArrayList<>());
      } else {
        row = fit.getValue().pollFirst();
        if (fit.getValue().isEmpty()) {
          byRemaining.remove(fit.getKey());
        }
      }
      rows.get(row).add(ex);
      used[row] += l;
      int remaining = maxSeqLen - used[row];
      if (remaining > 0) {
        byRemaining.computeIfAbsent(remaining, k -> new ArrayDeque<>()).addLast(row);
      }
    }
    int[] rowOrder = permutation(rows.size(), rng);
    int count = (rows.size() + batchSize - 1) / batchSize;
    int[][][] out = new int[count][][];
    for (int b = 0; b < count; b++) {
      int k = Math.min(batchSize, rows.size() - b * batchSize);
      out[b] = new int[k][];
      for (int r = 0; r < k; r++) {
        out[b][r] = rows.get(rowOrder[b * batchSize + r]).stream().mapToInt(Integer::intValue).toArray();
      }
    }
    return out;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates, Durstenfeld's version). */
  static int[] permutation(int n, SplitMix64 rng) {
    int[] p = new int[n];
    for (int i = 0; i < n; i++) {
      p[i] = i;
    }
    for (int i = n - 1; i > 0; i--) {
      int j = rng.nextInt(i + 1);
      int t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
}
