package dev.medtune.model;

import dev.medtune.model.backend.Backend;
import java.util.Arrays;
import java.util.Random;

/**
 * Picks the next token from a row of logits, in the order transformers' {@code generate} applies
 * its processors: repetition penalty ({@code RepetitionPenaltyLogitsProcessor}, Keskar et al.
 * 2019, arXiv:1909.05858: a logit of a token already in the sequence is divided by the penalty
 * when positive, multiplied when negative), then temperature, top-k, top-p (nucleus sampling,
 * Holtzman et al. 2019, arXiv:1904.09751: the smallest set of most likely tokens whose probability
 * reaches {@code topP}), then a draw. Temperature 0 is greedy: the first maximal logit after the
 * penalty, as {@code torch.argmax}
 * (NaN passed over: {@link Backend#argmaxOf}).
 */
public final class Sampler {

  /**
   * How to pick tokens.
   *
   * @param temperature 0 for greedy, else the softmax temperature
   * @param topK keep the K most likely tokens; 0 keeps all
   * @param topP keep the smallest set reaching this probability; 1 keeps all
   * @param repetitionPenalty 1 for none; above 1 discourages tokens already in the sequence
   * @param seed the random generator's seed (sampling is reproducible per seed)
   */
  public record Params(double temperature, int topK, double topP, double repetitionPenalty, long seed) {
    public Params {
      if (!(temperature >= 0) || Double.isInfinite(temperature)) {
        throw new IllegalArgumentException("temperature must be 0 (greedy) or positive, found " + temperature);
      }
      if (topK < 0) {
        throw new IllegalArgumentException("top-k must be 0 (off) or positive, found " + topK);
      }
      if (!(topP > 0 && topP <= 1)) {
        throw new IllegalArgumentException("top-p must be in (0, 1], found " + topP);
      }
      if (!(repetitionPenalty > 0) || Double.isInfinite(repetitionPenalty)) {
        throw new IllegalArgumentException("repetition penalty must be positive, found " + repetitionPenalty);
      }
    }

    public static Params greedy() {
      return new Params(0, 0, 1, 1, 0);
    }
  }

  private final Params params;
  private final Random random;
  private final int vocab;
  // planned once per sampler: no allocation per token
  private final float[] scores;
  private final long[] keys;
  private final boolean[] seen;

  public Sampler(Params params, int vocab) {
    this.params = params;
    this.random = new Random(params.seed());
    this.vocab = vocab;
    this.scores = new float[vocab];
    this.keys = new long[vocab];
    this.seen = new boolean[vocab];
  }

  /**
   * The next token for the logits {@code logits[offset, offset + vocab)}, given the sequence so
   * far ({@code history[0..length)}, prompt included, as transformers' {@code input_ids}).
   */
  public int sample(float[] logits, int offset, int[] history, int length) {
    System.arraycopy(logits, offset, scores, 0, vocab);
    if (params.repetitionPenalty() != 1) {
      float penalty = (float) params.repetitionPenalty();
      Arrays.fill(seen, false);
      for (int i = 0; i < length; i++) {
        int id = history[i];
        if (id >= 0 && id < vocab && !seen[id]) {
          seen[id] = true;
          scores[id] = scores[id] < 0 ? scores[id] * penalty : scores[id] / penalty;
        }
      }
    }
    if (params.temperature() == 0) {
      return argmax(scores);
    }
    float invT = invTemperature();
    if (params.topK() == 0 && params.topP() == 1) {
      return Backend.sampleOf(scores, 0, vocab, invT, random.nextDouble());
    }
    float max = Float.NEGATIVE_INFINITY;
    for (int i = 0; i < vocab; i++) {
      scores[i] *= invT;
      max = Math.max(max, scores[i]);
    }
    // order by score, highest first, lower id first among equals: one primitive sort of
    // (sortable score bits, inverted id) keys
    for (int i = 0; i < vocab; i++) {
      int bits = Float.floatToIntBits(scores[i]);
      int sortable = bits >= 0 ? bits : bits ^ 0x7fffffff;
      keys[i] = ((long) sortable << 32) | (0xffffffffL - i);
    }
    Arrays.sort(keys);
    int keep = params.topK() > 0 ? Math.min(params.topK(), vocab) : vocab;
    double sum = 0;
    for (int i = 0; i < keep; i++) {
      sum += Math.exp(scores[idAt(i)] - max);
    }
    if (params.topP() < 1) {
      double cumulative = 0;
      for (int i = 0; i < keep; i++) {
        cumulative += Math.exp(scores[idAt(i)] - max) / sum;
        if (cumulative >= params.topP()) {
          keep = i + 1;
          break;
        }
      }
      sum = 0;
      for (int i = 0; i < keep; i++) {
        sum += Math.exp(scores[idAt(i)] - max);
      }
    }
    double r = random.nextDouble() * sum;
    for (int i = 0; i < keep; i++) {
      r -= Math.exp(scores[idAt(i)] - max);
      if (r < 0) {
        return idAt(i);
      }
    }
    return idAt(keep - 1);
  }

  /** {@code 1 / temperature} as the scores are scaled by it (float). */
  float invTemperature() {
    return (float) (1 / params.temperature());
  }

  /**
   * The uniform of the next draw, for a backend that samples where the logits are
   * ({@link dev.medtune.model.backend.Backend#sample}): one per token, as {@link #sample} draws,
   * so the seed gives the same stream of uniforms either way.
   */
  double nextUniform() {
    return random.nextDouble();
  }

  /** The id of the {@code rank}-th most likely token after the sort. */
  private int idAt(int rank) {
    return (int) (0xffffffffL - (keys[vocab - 1 - rank] & 0xffffffffL));
  }

  /** The first maximum, NaN passed over ({@link Backend#argmaxOf}, what every backend's argmax means). */
  static int argmax(float[] scores) {
    return Backend.argmaxOf(scores, 0, scores.length);
  }
}
