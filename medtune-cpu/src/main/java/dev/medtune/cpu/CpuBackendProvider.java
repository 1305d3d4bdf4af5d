package dev.medtune.cpu;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.BackendProvider;

/**
 * Registers the CPU backend ({@code --device cpu}). It uses every core the JVM sees; the
 * {@code MEDTUNE_CPU_THREADS} environment variable sets another count.
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
    return create(threads());
  }

  /** A CPU backend with this many threads (tests and benchmarks). */
  public static Backend create(int threads) {
    return new CpuBackend(threads);
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
