package dev.medtune.cli;

import static dev.medtune.hub.DownloadProgress.human;

import dev.medtune.hub.DownloadProgress;
import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * One progress bar per file being transferred and a total line, drawn on stderr. On a terminal
 * the block is redrawn in place at most 10 times a second; elsewhere (a log, CI) a snapshot of
 * the bars is printed every few seconds, so long downloads still show they move.
 */
final class ProgressBars implements DownloadProgress, AutoCloseable {
  private static final int NAME = 36;
  private static final int WIDTH = 24;

  private static final class Bar {
    final long size;
    long done;

    Bar(long size, long done) {
      this.size = size;
      this.done = done;
    }
  }

  private final PrintWriter err;
  private final boolean tty;
  private final long intervalNanos;
  private final long startNanos = System.nanoTime();
  private final Map<String, Bar> bars = new LinkedHashMap<>();
  private long totalSize;
  private long totalDone;
  private long sessionBytes;
  private int files;
  private int finished;
  private int drawnLines;
  private long lastDraw;

  ProgressBars(PrintWriter err, boolean tty) {
    this(err, tty, tty ? 100_000_000L : 3_000_000_000L);
  }

  ProgressBars(PrintWriter err, boolean tty, long intervalNanos) {
    this.err = err;
    this.tty = tty;
    this.intervalNanos = intervalNanos;
  }

  /** True when stderr is a terminal (ANSI redraws work there). */
  static boolean stderrIsTerminal() {
    java.io.Console c = System.console();
    return c != null && c.isTerminal() && System.getenv("TERM") != null && !"dumb".equals(System.getenv("TERM"));
  }

  @Override
  public synchronized void start(String path, long size, long done) {
    bars.put(path, new Bar(size, done));
    files++;
    totalSize += Math.max(0, size);
    totalDone += done;
    if (done > 0) {
      line(path + ": resuming at " + human(done) + " of " + human(size));
    }
    draw(true);
  }

  @Override
  public synchronized void advance(String path, long bytes) {
    Bar b = bars.get(path);
    if (b != null) {
      b.done += bytes;
    }
    totalDone += bytes;
    sessionBytes += bytes;
    draw(false);
  }

  @Override
  public synchronized void finish(String path, boolean ok) {
    Bar b = bars.remove(path);
    finished++;
    if (b != null) {
      line(String.format(Locale.ROOT, "%s %s (%s)", ok ? "done" : "FAILED", path, human(b.size >= 0 ? b.size : b.done)));
    }
    draw(true);
  }

  @Override
  public synchronized void note(String message) {
    line(message);
    draw(true);
  }

  /** Clears the live block and prints the final total. */
  @Override
  public synchronized void close() {
    clear();
    if (files > 0) {
      double s = (System.nanoTime() - startNanos) / 1e9;
      err.printf(Locale.ROOT, "%d file(s), %s transferred in %.1f s (%s/s)%n", finished, human(sessionBytes), s,
          human((long) (sessionBytes / Math.max(s, 1e-3))));
    }
    err.flush();
  }

  private void line(String text) {
    clear();
    err.println(text);
    err.flush();
  }

  private void clear() {
    if (tty && drawnLines > 0) {
      err.print("\033[" + drawnLines + "A");
      for (int i = 0; i < drawnLines; i++) {
        err.print("\033[2K\n");
      }
      err.print("\033[" + drawnLines + "A");
      drawnLines = 0;
    }
  }

  private void draw(boolean force) {
    long now = System.nanoTime();
    if (!force && now - lastDraw < intervalNanos) {
      return;
    }
    if (!tty && (force || bars.isEmpty())) {
      return; // logs get periodic snapshots only
    }
    lastDraw = now;
    clear();
    int n = 0;
    for (Map.Entry<String, Bar> e : bars.entrySet()) {
      err.println(render(e.getKey(), e.getValue().done, e.getValue().size, -1));
      n++;
    }
    double secs = Math.max((now - startNanos) / 1e9, 1e-3);
    err.println(render("total (" + finished + "/" + files + " files)", totalDone, totalSize, (long) (sessionBytes / secs)));
    n++;
    err.flush();
    drawnLines = tty ? n : 0;
  }

  static String render(String name, long done, long size, long rate) {
    String shown = name.length() > NAME ? "..." + name.substring(name.length() - NAME + 3) : name;
    StringBuilder b = new StringBuilder(String.format(Locale.ROOT, "%-" + NAME + "s ", shown));
    if (size > 0) {
      int pct = (int) Math.min(100, done * 100 / size);
      int fill = (int) Math.min(WIDTH, done * WIDTH / size);
      b.append(String.format(Locale.ROOT, "%3d%% [", pct)).append("#".repeat(fill)).append(".".repeat(WIDTH - fill))
          .append("] ").append(human(done)).append(" / ").append(human(size));
    } else {
      b.append(human(done));
    }
    if (rate >= 0) {
      b.append("  ").append(human(rate)).append("/s");
    }
    return b.toString();
  }
}
