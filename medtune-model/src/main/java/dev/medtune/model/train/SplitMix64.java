package dev.medtune.model.train;

import java.util.random.RandomGenerator;

/**
 * SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA
 * 2014; the finaliser is Stafford's "Mix13"), written out here so that the sequence a seed gives is
 * fixed by medtune's own code and never by a JDK version. Every random choice of training (LoRA
 * initialisation, data order) comes from one of these, seeded from the run's seed and a stream
 * number, so the whole random state of a run is (seed, step, data position): a checkpoint that
 * stores those restores it exactly. It does not reproduce torch's generator; parity with PEFT is
 * tested on fixed initial weights instead.
 */
public final class SplitMix64 implements RandomGenerator {
  private static final long GOLDEN_GAMMA = 0x9E3779B97F4A7C15L;

  private long state;

  public SplitMix64(long seed) {
    this.state = seed;
  }

  /** An independent generator for stream {@code stream} of {@code seed} (e.g. one per epoch). */
  public static SplitMix64 forStream(long seed, long stream) {
    return new SplitMix64(mix64(seed) ^ mix64(stream * GOLDEN_GAMMA + 0x632BE59BD9B4E019L));
  }

  @Override
  public long nextLong() {
    state += GOLDEN_GAMMA;
    return mix64(state);
  }

  /** A double uniform in [0, 1) with 53 random bits. */
  @Override
  public double nextDouble() {
    return (nextLong() >>> 11) * 0x1.0p-53;
  }

  /**
   * An int uniform in [0, bound): Lemire's multiply-and-reject ("Fast Random Integer Generation in
   * an Interval", ACM TOMACS 2019) on the high 32 bits of {@link #nextLong()}, defined here so the
   * shuffles do not depend on the JDK's default method.
   */
  @Override
  public int nextInt(int bound) {
    if (bound <= 0) {
      throw new IllegalArgumentException("bound must be positive, found " + bound);
    }
    long m = (nextLong() >>> 32) * bound;
    long low = m & 0xFFFFFFFFL;
    if (low < bound) {
      long threshold = (0x100000000L - bound) % bound;
      while (low < threshold) {
        m = (nextLong() >>> 32) * bound;
        low = m & 0xFFFFFFFFL;
      }
    }
    return (int) (m >>> 32);
  }

  private static long mix64(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }
}
