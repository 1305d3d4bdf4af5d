package dev.medtune.hub;

import java.io.IOException;
import java.io.InputStream;
import java.net.SocketTimeoutException;
import java.net.URI;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Pattern;

/**
 * One file of a snapshot into the cache, the way {@code hf_hub_download} does it: {@code HEAD} the
 * resolve URL for the commit, etag and size ({@code X-Repo-Commit}, {@code X-Linked-Etag},
 * {@code X-Linked-Size}, else {@code ETag}/{@code Content-Length}), download into
 * {@code blobs/<etag>.incomplete} (resumed with {@code Range} after a cut), check the sha256 of LFS
 * files against their etag, rename to {@code blobs/<etag>} and link the snapshot path to it.
 */
final class FileDownload {
  private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");
  private static final int BUFFER = 1 << 20;

  private final HubHttp http;
  private final java.util.concurrent.ConcurrentHashMap<Path, Object> blobLocks = new java.util.concurrent.ConcurrentHashMap<>();

  FileDownload(HubHttp http) {
    this.http = http;
  }

  /** What the {@code HEAD} of a resolve URL says about a file. */
  record Metadata(String commit, String etag, long size, URI location, URI url) {}

  static String normalizeEtag(String etag) {
    if (etag == null) {
      return null;
    }
    String e = etag.strip();
    if (e.startsWith("W/")) {
      e = e.substring(2);
    }
    return e.replace("\"", "");
  }

  Metadata head(URI url, HubHttp.Target target) throws IOException {
    HttpResponse<InputStream> r = http.send("HEAD", url, Map.of("Accept-Encoding", "identity"), null,
        HubHttp.Redirects.RELATIVE, target);
    r.body().close();
    if (r.statusCode() >= 400) {
      throw http.failure(r, target);
    }
    var h = r.headers();
    String etag = normalizeEtag(h.firstValue("X-Linked-Etag").or(() -> h.firstValue("ETag")).orElse(null));
    String commit = h.firstValue("X-Repo-Commit").orElse(null);
    long size = h.firstValue("X-Linked-Size").or(() -> h.firstValue("Content-Length")).map(Long::parseLong).orElse(-1L);
    if (etag == null || etag.isEmpty() || commit == null) {
      throw new HubException(HubException.Kind.OTHER, "the hub's answer for " + target.file() + " of " + target.describe()
          + " lacks " + (etag == null || etag.isEmpty() ? "an ETag" : "X-Repo-Commit")
          + ": is HF_ENDPOINT (" + http.config().endpoint() + ") a Hugging Face hub?");
    }
    URI location = r.headers().firstValue("Location").map(url::resolve).orElse(url);
    return new Metadata(commit, etag, size, location, url);
  }

  /**
   * Downloads into {@code repoDir} and links {@code snapshots/<commit>/<file>}; returns that path.
   */
  Path fetch(Path repoDir, String commit, String file, Metadata meta, HubHttp.Target target, DownloadProgress progress)
      throws IOException {
    Path blob = HubCache.blob(repoDir, meta.etag());
    // two paths of one snapshot with the same content share a blob: one download, the other waits
    Object lock = blobLocks.computeIfAbsent(blob, k -> new Object());
    synchronized (lock) {
      return fetchLocked(repoDir, commit, file, meta, target, progress, blob);
    }
  }

  private Path fetchLocked(Path repoDir, String commit, String file, Metadata meta, HubHttp.Target target,
      DownloadProgress progress, Path blob) throws IOException {
    Path snapshot = HubCache.snapshotFile(repoDir, commit, file);
    if (HubCache.present(blob)) {
      HubCache.link(blob, snapshot);
      progress.note(file + ": reused from the cache");
      return snapshot;
    }
    Path part = HubCache.incomplete(repoDir, meta.etag());
    Files.createDirectories(part.getParent());
    boolean lfs = SHA256.matcher(meta.etag()).matches();
    MessageDigest sha = sha256();
    long have = Files.exists(part) ? Files.size(part) : 0;
    if (meta.size() >= 0 && have > meta.size()) {
      Files.delete(part);
      have = 0;
    }
    checkSpace(part, meta.size() - have, file);
    if (lfs && have > 0) {
      hashPrefix(part, have, sha);
    }
    progress.start(file, meta.size(), have);
    boolean ok = false;
    try {
      int failures = 0;
      boolean refreshed = false;
      while (meta.size() < 0 || have < meta.size()) {
        long before = have;
        try {
          have = transfer(meta, part, have, sha, lfs, file, target, progress);
          if (meta.size() < 0) {
            break; // no length announced: the end of the body is the end of the file
          }
          if (have < meta.size()) {
            throw new IOException("connection closed after " + have + " of " + meta.size() + " bytes");
          }
        } catch (HubException e) {
          // a presigned storage URL expires (S3/CloudFront answer 403): ask the hub for a fresh one, once
          if (refreshed || meta.location().equals(meta.url()) || e.kind() == HubException.Kind.CHECKSUM) {
            throw e;
          }
          refreshed = true;
          Metadata fresh = head(meta.url(), target);
          if (!fresh.etag().equals(meta.etag())) {
            throw e;
          }
          progress.note(file + ": the storage URL was refused (" + e.getMessage() + "); asked the hub for a new one");
          meta = fresh;
        } catch (IOException e) {
          if (isDiskFull(e)) {
            throw diskFull(part, file, e);
          }
          // a cut or a stall: resume from what is on disk; progress made resets the count
          have = Files.exists(part) ? Files.size(part) : 0;
          failures = have > before ? 0 : failures + 1;
          if (failures > http.config().maxRetries()) {
            throw new HubException(HubException.Kind.NETWORK, "download of " + file + " from " + target.describe()
                + " failed " + failures + " times in a row at byte " + have + " (" + e.getMessage()
                + "); run again to resume", e);
          }
          progress.note(file + ": " + e.getMessage() + "; resuming at byte " + have);
          sha = sha256();
          if (lfs && have > 0) {
            hashPrefix(part, have, sha);
          }
          http.backoff(Math.max(0, failures - 1), null);
        }
      }
      long size = Files.size(part);
      if (meta.size() >= 0 && size != meta.size()) {
        Files.deleteIfExists(part);
        throw new HubException(HubException.Kind.CHECKSUM, file + " of " + target.describe() + ": expected "
            + meta.size() + " bytes, got " + size + "; the partial file was deleted");
      }
      if (lfs) {
        String got = HexFormat.of().formatHex(sha.digest());
        if (!got.equals(meta.etag())) {
          Files.deleteIfExists(part);
          throw new HubException(HubException.Kind.CHECKSUM, file + " of " + target.describe()
              + ": sha256 " + got + " does not match the hub's LFS hash " + meta.etag()
              + "; the partial file was deleted, nothing was added to the cache");
        }
      }
      HubCache.moveReplacing(part, blob);
      HubCache.link(blob, snapshot);
      ok = true;
      return snapshot;
    } catch (IOException e) {
      if (isDiskFull(e)) {
        throw diskFull(part, file, e);
      }
      throw e;
    } finally {
      progress.finish(file, ok);
    }
  }

  /** One GET from {@code have} on; returns the bytes now on disk. */
  private long transfer(Metadata meta, Path part, long have, MessageDigest sha, boolean lfs, String file,
      HubHttp.Target target, DownloadProgress progress) throws IOException {
    Map<String, String> headers = have > 0 ? Map.of("Range", "bytes=" + have + "-", "Accept-Encoding", "identity")
        : Map.of("Accept-Encoding", "identity");
    try (HubHttp.Streamed r = http.stream(meta.location(), headers, target);
        FileChannel out = FileChannel.open(part, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      int s = r.status();
      if (s == 416 && meta.size() >= 0 && have == meta.size()) {
        return have;
      }
      if (s >= 400) {
        throw http.failure(r, target);
      }
      if (s == 200 && have > 0) {
        // the server ignored the range: start over
        progress.advance(file, -have);
        have = 0;
        sha.reset();
      }
      out.truncate(have);
      out.position(have);
      InputStream in = r.body();
      // double buffering: one buffer fills from the socket while the other is hashed and written
      // by a second thread, so reading, sha256 and the disk overlap on machines with a spare core
      byte[][] bufs = {new byte[BUFFER], new byte[BUFFER]};
      int cur = 0;
      int fill = 0;
      long lastFlush = System.nanoTime();
      ExecutorService writer = Executors.newSingleThreadExecutor(t -> {
        Thread th = new Thread(t, "hub-write " + file);
        th.setDaemon(true);
        return th;
      });
      Future<?> pending = null;
      try {
        while (true) {
          byte[] buf = bufs[cur];
          int n;
          try {
            n = in.read(buf, fill, buf.length - fill);
          } catch (IOException e) {
            // keep what arrived: the resume starts after it
            await(pending);
            flush(out, buf, fill, sha, lfs);
            progress.advance(file, fill);
            throw e instanceof SocketTimeoutException
                ? new IOException("no data for " + http.config().readTimeout().toMillis() / 1000.0 + " s", e) : e;
          }
          if (n < 0) {
            await(pending);
            flush(out, buf, fill, sha, lfs);
            progress.advance(file, fill);
            return have + fill;
          }
          fill += n;
          long now = System.nanoTime();
          // hand over when the buffer is full, or at least every 100 ms so progress moves on slow links
          if (fill == buf.length || now - lastFlush > 100_000_000L) {
            lastFlush = now;
            await(pending);
            int len = fill;
            pending = writer.submit(() -> {
              flush(out, buf, len, sha, lfs);
              progress.advance(file, len);
              return null;
            });
            have += fill;
            cur ^= 1;
            fill = 0;
          }
        }
      } finally {
        writer.shutdownNow();
      }
    }
  }

  /** Waits for the previous buffer's write; its failure (a full disk) is this thread's. */
  private static void await(Future<?> pending) throws IOException {
    if (pending == null) {
      return;
    }
    try {
      pending.get();
    } catch (ExecutionException e) {
      if (e.getCause() instanceof IOException io) {
        throw io;
      }
      throw new IllegalStateException(e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new java.io.InterruptedIOException("interrupted");
    }
  }

  private static void flush(FileChannel out, byte[] buf, int len, MessageDigest sha, boolean lfs) throws IOException {
    if (len == 0) {
      return;
    }
    ByteBuffer bb = ByteBuffer.wrap(buf, 0, len);
    while (bb.hasRemaining()) {
      out.write(bb);
    }
    if (lfs) {
      digest(sha, buf, len);
    }
  }

  /**
   * Feeds the digest 16 KB at a time: HotSpot replaces SHA-256's block loop with its SHA-NI/AVX2
   * intrinsic only once the method is compiled, which many small calls reach at once and a few
   * 1 MB calls (run in the interpreter) do not: 4x slower on the first gigabyte otherwise.
   */
  static void digest(MessageDigest sha, byte[] buf, int len) {
    for (int off = 0; off < len; off += 16384) {
      sha.update(buf, off, Math.min(16384, len - off));
    }
  }

  private static void hashPrefix(Path part, long len, MessageDigest sha) throws IOException {
    try (InputStream in = Files.newInputStream(part)) {
      byte[] buf = new byte[BUFFER];
      long left = len;
      while (left > 0) {
        int n = in.read(buf, 0, (int) Math.min(buf.length, left));
        if (n < 0) {
          break;
        }
        digest(sha, buf, n);
        left -= n;
      }
    }
  }

  static MessageDigest sha256() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private static void checkSpace(Path part, long need, String file) throws IOException {
    if (need <= 0) {
      return;
    }
    long free = Files.getFileStore(part.getParent()).getUsableSpace();
    if (free < need) {
      throw new HubException(HubException.Kind.DISK_FULL, "not enough disk space for " + file + ": it needs "
          + DownloadProgress.human(need) + " more and " + part.getParent() + " has " + DownloadProgress.human(free) + " free (set HF_HUB_CACHE to another disk)");
    }
  }

  static boolean isDiskFull(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t.getMessage() != null && (t.getMessage().contains("No space left on device")
          || t.getMessage().contains("Disk quota exceeded"))) {
        return true;
      }
    }
    return false;
  }

  private static HubException diskFull(Path part, String file, IOException e) {
    return new HubException(HubException.Kind.DISK_FULL, "disk full while writing " + file + " to " + part
        + "; free some space or set HF_HUB_CACHE to another disk, then run again to resume", e);
  }
}
