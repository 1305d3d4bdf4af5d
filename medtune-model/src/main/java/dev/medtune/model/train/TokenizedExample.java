package dev.medtune.model.train;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * An example as the model sees it: {@code BOS + tokens(prompt + completion) + EOS}, cut to the
 * maximum sequence length, with the next-token target of each position ({@link #IGNORE} where
 * the loss does not count it; the last position never has one).
 *
 * @param tokens input ids, BOS first
 * @param targets {@code targets[i]} is the id position i must predict ({@code tokens[i + 1]}) or {@link #IGNORE}
 * @param counted number of targets that are not {@link #IGNORE}
 * @param fullLength the length before truncation
 */
public record TokenizedExample(int[] tokens, int[] targets, int counted, int fullLength) {

  /** The ignore index of torch's cross-entropy. */
  public static final int IGNORE = -100;

  public int length() {
    return tokens.length;
  }

  public boolean truncated() {
    return fullLength > tokens.length;
  }

  /**
   * Tokenizes one example. The whole text is encoded in one pass (as the recipe did), so the ids
   * are those of the text, not of two separately encoded halves; with {@link LossOn#COMPLETION},
   * the completion starts where the ids of the prompt alone stop matching those of the text (as
   * TRL's completion-only loss finds it), so a token that straddles the boundary counts as
   * completion.
   */
  public static TokenizedExample of(SftExample ex, TokenEncoder encoder, int bos, int eos,
      LossOn lossOn, int maxSeqLen) {
    if (maxSeqLen < 2) {
      throw new IllegalArgumentException("max sequence length must be at least 2, found " + maxSeqLen);
    }
    int[] body = encoder.encode(ex.text(), false);
    int full = body.length + 2;
    int[] ids = new int[full];
    ids[0] = bos;
    System.arraycopy(body, 0, ids, 1, body.length);
    ids[full - 1] = eos;
    int firstCounted = 1; // the first position whose token is a target (BOS never is)
    if (lossOn == LossOn.COMPLETION) {
      if (ex.prompt() == null) {
        throw new IllegalArgumentException("line " + ex.line() + ": the completion-only loss needs \"prompt\" and \"completion\"");
      }
      int[] prompt = encoder.encode(ex.prompt(), false);
      int k = 0;
      while (k < prompt.length && k < body.length && prompt[k] == body[k]) {
        k++;
      }
      firstCounted = 1 + k;
    }
    int n = Math.min(full, maxSeqLen);
    int[] tokens = Arrays.copyOf(ids, n);
    int[] targets = new int[n];
    int counted = 0;
    for (int i = 0; i < n; i++) {
      if (i + 1 < n && i + 1 >= firstCounted) {
        targets[i] = tokens[i + 1];
        counted++;
      } else {
        targets[i] = IGNORE;
      }
    }
    return new TokenizedExample(tokens, targets, counted, full);
  }

  /**
   * What tokenizing a data file gave: the examples with at least one counted token, and counts of
   * those truncated and of those dropped because truncation left them nothing to learn.
   */
  public record Dataset(List<TokenizedExample> examples, int truncated, int droppedNoTargets, long countedTokens) {}

  /** Tokenizes every example; an example with no counted token after truncation is dropped and counted. */
  public static Dataset tokenizeAll(List<SftExample> examples, TokenEncoder encoder, int bos, int eos,
      LossOn lossOn, int maxSeqLen) {
    List<TokenizedExample> out = new ArrayList<>(examples.size());
    int truncated = 0;
    int dropped = 0;
    long counted = 0;
    for (SftExample ex : examples) {
      TokenizedExample t = of(ex, encoder, bos, eos, lossOn, maxSeqLen);
      if (t.truncated()) {
        truncated++;
      }
      if (t.counted() == 0) {
        dropped++;
        continue;
      }
      counted += t.counted();
      out.add(t);
    }
    if (out.isEmpty()) {
      throw new IllegalArgumentException("no example has a token to learn from after truncation to "
          + maxSeqLen + " tokens (" + dropped + " dropped); raise --max-seq-len");
    }
    return new Dataset(List.copyOf(out), truncated, dropped, counted);
  }
}
