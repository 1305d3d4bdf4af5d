package dev.medtune.cli.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class StatisticsTest {

  /** Newcombe (1998), Statistics in Medicine 17:857, Table I, method 3 (Wilson score), 4 decimals. */
  @Test
  void wilsonMatchesNewcombesTable() {
    check(81, 263, 0.2553, 0.3662);
    check(15, 148, 0.0624, 0.1605);
    check(0, 20, 0.0000, 0.1611);
    check(1, 29, 0.0061, 0.1718);
    check(29, 29, 0.8830, 1.0000);
  }

  @Test
  void wilsonByHand() {
    // k = 5, n = 10, z = 2: p = 0.5, centre = (0.5 + 4/20) / (1 + 4/10) = 0.5,
    // half = 2 / 1.4 * sqrt(0.025 + 4/400) = 1.428571... * sqrt(0.035) = 0.267261...
    Statistics.Interval i = Statistics.wilson(5, 10, 2.0);
    assertEquals(0.5 - 2 / 1.4 * Math.sqrt(0.035), i.low(), 1e-12);
    assertEquals(0.23273876, i.low(), 1e-8);
    assertEquals(0.76726124, i.high(), 1e-8);
    assertTrue(Double.isNaN(Statistics.wilson95(0, 0).low()));
  }

  /**
   * Agresti, Categorical Data Analysis (2002), §10.1.1: approval of the prime minister in two
   * surveys of the same 1600 people, table (794, 150; 86, 570): difference 0.04, standard error
   * 0.0095, 95% interval (0.021, 0.059).
   */
  @Test
  void pairedDifferenceMatchesAgrestisExample() {
    double[] d = new double[1600];
    int i = 0;
    for (int k = 0; k < 794; k++) {
      d[i++] = 0; // approve both times
    }
    for (int k = 0; k < 150; k++) {
      d[i++] = 1; // approve first, not second (first minus second)
    }
    for (int k = 0; k < 86; k++) {
      d[i++] = -1;
    }
    for (int k = 0; k < 570; k++) {
      d[i++] = 0;
    }
    Statistics.PairedDifference p = Statistics.paired(d);
    assertEquals(1600, p.n());
    assertEquals(0.04, p.mean(), 1e-12);
    // √(236 - 64²/1600) / 1600 by hand
    assertEquals(Math.sqrt(236 - 4096.0 / 1600) / 1600, p.standardError(), 1e-12);
    assertEquals(0.0095, p.standardError(), 5e-5);
    assertEquals(0.021, p.ci95().low(), 5e-4);
    assertEquals(0.059, p.ci95().high(), 5e-4);
  }

  @Test
  void pairedDifferenceOfContinuousScores() {
    // d = (1, 2, 3, 6): mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5, se = √(3.5 / 4)
    Statistics.PairedDifference p = Statistics.paired(new double[] {1, 2, 3, 6});
    assertEquals(3.0, p.mean(), 1e-12);
    assertEquals(Math.sqrt(3.5 / 4), p.standardError(), 1e-12);
    assertEquals(3.0 - Statistics.Z95 * Math.sqrt(0.875), p.ci95().low(), 1e-12);
  }

  private static void check(int k, int n, double lo, double hi) {
    Statistics.Interval i = Statistics.wilson95(k, n);
    assertEquals(lo, i.low(), 5e-5, k + "/" + n + " low");
    assertEquals(hi, i.high(), 5e-5, k + "/" + n + " high");
  }
}
