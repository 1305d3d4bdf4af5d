package dev.medtune.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A fixed pool of worker threads (one per core, the caller included) that runs a loop over
 * {@code [0, n)} in chunks. Chunks are handed out from a shared counter so a core slowed by a
 * neighbour process does not hold the others back.
 */
final class Parallel implements AutoCloseable {

  /** The body of a parallel loop: handles {@code [from, to)}. */
  interface Range {
    void run(int from, int to);
  }

  final int threads;
  private final ForkJoinPool pool;

  Parallel(int threads) {
    this.threads = threads;
    this.pool = threads > 1 ? new ForkJoinPool(threads - 1) : null;
  }

  /** Runs {@code body} over {@code [0, n)} in chunks of {@code grain}, on all threads. */
  void forRange(int n, int grain, Range body) {
    int g = Math.max(1, grain);
    int chunks = (n + g - 1) / g;
    if (pool == null || chunks <= 1) {
      if (n > 0) {
        body.run(0, n);
      }
      return;
    }
    AtomicInteger next = new AtomicInteger();
    Runnable worker = () -> {
      for (int c = next.getAndIncrement(); c < chunks; c = next.getAndIncrement()) {
        body.run(c * g, Math.min(n, (c + 1) * g));
      }
    };
    int helpers = Math.min(threads - 1, chunks - 1);
    ForkJoinTask<?>[] tasks = new ForkJoinTask<?>[helpers];
    for (int i = 0; i < helpers; i++) {
      tasks[i] = pool.submit(worker);
    }
    worker.run();
    for (ForkJoinTask<?> t : tasks) {
      t.join();
    }
  }

  /** A grain that gives every thread about four chunks of {@code n}. */
  int grainFor(int n, int multipleOf) {
    int g = Math.max(1, n / (threads * 4));
    return (g + multipleOf - 1) / multipleOf * multipleOf;
  }

  @Override
  public void close() {
    if (pool != null) {
      pool.shutdownNow();
    }
  }
}
