package dev.medtune.cpu;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.BackendProvider;

/**
 * Registers the CPU backend ({@code --device cpu}). It uses every core the JVM sees; the
 * {@code MEDTUNE_CPU_THREADS} environment variable sets another count. Weights are read from the
 * memory-mapped checkpoint; {@code MEDTUNE_CPU_WEIGHTS=resident} copies each matrix (in its file
 * dtype, never as float32) into process memory first, which streams several times faster where
 * file mappings are slow (the benchmark VM; see the module README).
 */
public final class CpuBackendProvider implements BackendProvider {

  @Override
  public String name() {
    return "cpu";
  }

  @Override
  public String unavailableReason() {
    return null;
  }

  @Override
  public Backend create() {
    return create(threads(), residentWeights());
  }

  /** A CPU backend with this many threads reading weights from the mapping (tests). */
  public static Backend create(int threads) {
    return new CpuBackend(threads, false);
  }

  /** A CPU backend with this many threads; {@code resident}: weights copied into memory (benchmarks). */
  public static Backend create(int threads, boolean resident) {
    return new CpuBackend(threads, resident);
  }

  static boolean residentWeights() {
    String env = System.getenv("MEDTUNE_CPU_WEIGHTS");
    if (env == null || env.isBlank() || env.equals("mapped")) {
      return false;
    }
    if (env.equals("resident")) {
      return true;
    }
    throw new IllegalStateException("MEDTUNE_CPU_WEIGHTS must be 'mapped' or 'resident', found '" + env + "'");
  }

  static int threads() {
    String env = System.getenv("MEDTUNE_CPU_THREADS");
    if (env != null && !env.isBlank()) {
      try {
        int n = Integer.parseInt(env.trim());
        if (n > 0) {
          return n;
        }
      } catch (NumberFormatException e) {
        // fall through to the core count
      }
      throw new IllegalStateException("MEDTUNE_CPU_THREADS must be a positive integer, found '" + env + "'");
    }
    return Runtime.getRuntime().availableProcessors();
  }
}
