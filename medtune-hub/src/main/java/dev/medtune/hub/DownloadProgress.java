package dev.medtune.hub;

/**
 * Hears about downloads and uploads as they happen; called from several threads at once, so an
 * implementation must be thread-safe and quick (the command line draws progress bars from it).
 */
public interface DownloadProgress {
  /** A transfer of {@code path} starts; {@code size} bytes in all, {@code done} already on disk. */
  default void start(String path, long size, long done) {}

  /** {@code bytes} more bytes of {@code path} arrived (or were sent). */
  default void advance(String path, long bytes) {}

  /** {@code path} is complete (or failed: then {@code ok} is false), bars may be removed. */
  default void finish(String path, boolean ok) {}

  /** A line worth showing the user (a retry, a file reused from the cache). */
  default void note(String message) {}

  DownloadProgress NONE = new DownloadProgress() {};

  /** A byte count as people read it, in binary units: "512 B", "1.0 KB", "2.4 GB". */
  static String human(long bytes) {
    if (bytes < 1024) {
      return bytes + " B";
    }
    String[] units = {"KB", "MB", "GB", "TB"};
    double v = bytes;
    int u = -1;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return String.format(java.util.Locale.ROOT, "%.1f %s", v, units[u]);
  }
}
