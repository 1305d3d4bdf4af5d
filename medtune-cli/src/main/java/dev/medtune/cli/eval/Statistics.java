package dev.medtune.cli.eval;

/** Confidence intervals for accuracies and for paired differences between two systems. */
public final class Statistics {
  /** The two-sided 95% normal quantile, z = Φ⁻¹(0.975). */
  public static final double Z95 = 1.959963984540054;

  private Statistics() {}

  /** A closed interval [low, high]. */
  public record Interval(double low, double high) {}

  /**
   * The Wilson score interval for a proportion k/n (E. B. Wilson, "Probable inference, the law of
   * succession, and statistical inference", JASA 22 (1927) 209-212; recommended over the Wald
   * interval by R. G. Newcombe, "Two-sided confidence intervals for the single proportion",
   * Statistics in Medicine 17 (1998) 857-872, whose Table I this is tested against):
   * (p + z²/2n ± z √(p(1-p)/n + z²/4n²)) / (1 + z²/n). Empty for n = 0 (NaN bounds).
   */
  public static Interval wilson(long k, long n, double z) {
    if (n == 0) {
      return new Interval(Double.NaN, Double.NaN);
    }
    if (k < 0 || k > n) {
      throw new IllegalArgumentException("k = " + k + " is outside 0.." + n);
    }
    double p = (double) k / n;
    double z2 = z * z;
    double denom = 1 + z2 / n;
    double centre = (p + z2 / (2.0 * n)) / denom;
    double half = z / denom * Math.sqrt(p * (1 - p) / n + z2 / (4.0 * n * n));
    return new Interval(Math.max(0, centre - half), Math.min(1, centre + half));
  }

  /** The 95% Wilson interval. */
  public static Interval wilson95(long k, long n) {
    return wilson(k, n, Z95);
  }

  /**
   * The mean of per-question differences between two systems scored on the same questions, with
   * its 95% normal-approximation (Wald) interval: d̄ ± z·s/√n with s² = Σ(dᵢ - d̄)²/n. For 0/1
   * correctness this is the interval for the difference of two dependent proportions,
   * ((b - c) ± z √((b + c) - (b - c)²/n)) / n where b, c count the questions only one system got
   * right (A. Agresti, Categorical Data Analysis, 2nd ed., Wiley 2002, §10.1.1, eq. 10.2; it is
   * tested on that section's example). Pairing removes the between-question variance that two
   * independent Wilson intervals would double-count.
   *
   * @param diffs per-question differences (system B minus system A)
   */
  public static PairedDifference paired(double[] diffs) {
    int n = diffs.length;
    if (n == 0) {
      return new PairedDifference(0, Double.NaN, Double.NaN, new Interval(Double.NaN, Double.NaN));
    }
    double sum = 0;
    for (double d : diffs) {
      sum += d;
    }
    double mean = sum / n;
    double ss = 0;
    for (double d : diffs) {
      ss += (d - mean) * (d - mean);
    }
    double se = Math.sqrt(ss / n / n);
    return new PairedDifference(n, mean, se, new Interval(mean - Z95 * se, mean + Z95 * se));
  }

  /** A paired difference: its mean, standard error and 95% interval over n questions. */
  public record PairedDifference(int n, double mean, double standardError, Interval ci95) {}
}
