package dev.medtune.model.train;

import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Ctrl-C and SIGTERM as a request to stop after the current step: the JVM runs its shutdown hooks
 * on both, and this hook, instead of letting the JVM die mid-step, sets {@link #requested()} and
 * waits (up to a grace period) until the training loop has saved a checkpoint and called
 * {@link #finished()}. A kill -9 cannot be caught; the atomic checkpoints cover that case.
 *
 * <pre>
 * try (StopRequest stop = StopRequest.install(Duration.ofMinutes(5))) {
 *   for (...) { step(); if (stop.requested()) { saveCheckpoint(); stop.finished(); return; } }
 * }
 * </pre>
 */
public final class StopRequest implements AutoCloseable {
  private final Thread hook;
  private final Duration grace;
  private final CountDownLatch done = new CountDownLatch(1);
  private volatile boolean requested;

  private StopRequest(Duration grace) {
    this.grace = grace;
    this.hook = new Thread(this::onShutdown, "medtune-stop-request");
  }

  /** Installs the hook; the JVM waits at most {@code grace} for {@link #finished()} after a signal. */
  public static StopRequest install(Duration grace) {
    StopRequest s = new StopRequest(grace);
    Runtime.getRuntime().addShutdownHook(s.hook);
    return s;
  }

  private void onShutdown() {
    requested = true;
    try {
      done.await(grace.toMillis(), TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  /** Whether Ctrl-C or SIGTERM arrived: finish the step, save, call {@link #finished()}, return. */
  public boolean requested() {
    return requested;
  }

  /** The checkpoint is saved: the JVM may exit now. */
  public void finished() {
    done.countDown();
  }

  /** Training ended on its own: remove the hook (or release it, if shutdown already began). */
  @Override
  public void close() {
    done.countDown();
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException shuttingDown) {
      // the hook is running or about to; the latch above lets it return at once
    }
  }
}
