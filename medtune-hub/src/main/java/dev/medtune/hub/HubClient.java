package dev.medtune.hub;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Pattern;

/**
 * A client of the Hugging Face hub's HTTP API that follows the official Python client
 * ({@code huggingface_hub}): {@link #snapshot} is its {@code snapshot_download} into the same
 * cache, {@link #push} its {@code upload_folder} through the commit API and Git LFS.
 *
 * <pre>{@code
 * HubClient hub = new HubClient(HubConfig.fromEnvironment(null));
 * Path model = hub.snapshot("meta-llama/Llama-3.2-1B", RepoType.MODEL, "main",
 *     List.of("*.json", "*.safetensors"), List.of(), DownloadProgress.NONE);
 * }</pre>
 */
public final class HubClient implements AutoCloseable {
  private static final Pattern REPO_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)?");

  private final HubConfig config;
  private final HubHttp http;
  private final HubCache cache;
  private final FileDownload download;

  public HubClient(HubConfig config) {
    this.config = config;
    this.http = new HubHttp(config);
    this.cache = new HubCache(config.cacheDir());
    this.download = new FileDownload(http);
  }

  public HubConfig config() {
    return config;
  }

  /**
   * True when {@code s} has the shape of a hub id ({@code name} or {@code org/name}) and names no
   * existing local path: that is how {@code --model}/{@code --input} tell the two apart.
   */
  public static boolean isRepoId(String s) {
    return s != null && REPO_ID.matcher(s).matches() && !s.contains("--") && !s.contains("..")
        && !Files.exists(Path.of(s));
  }

  /** A local path as it is, or a hub id downloaded (or found in the cache) as a snapshot folder. */
  public Path resolve(String pathOrRepoId, RepoType type, DownloadProgress progress) {
    if (!isRepoId(pathOrRepoId)) {
      return Path.of(pathOrRepoId);
    }
    return snapshot(pathOrRepoId, type, "main", List.of(), List.of(), progress);
  }

  /**
   * Downloads the files of {@code repoId} at {@code revision} that match {@code includes} (all when
   * empty) and no {@code excludes}, into the hub cache; returns {@code snapshots/<commit>}. Files
   * already in the cache are not downloaded again. Offline ({@code HF_HUB_OFFLINE}), or when the
   * hub cannot be reached, the cached snapshot is returned if there is one.
   */
  public Path snapshot(String repoId, RepoType type, String revision, List<String> includes, List<String> excludes,
      DownloadProgress progress) {
    String rev = revision == null || revision.isBlank() ? "main" : revision;
    Path repoDir = cache.repoFolder(type, repoId);
    HubHttp.Target target = new HubHttp.Target(type, repoId, rev, null);
    if (config.offline()) {
      return cached(repoDir, rev).orElseThrow(() -> new HubException(HubException.Kind.OFFLINE,
          "offline (HF_HUB_OFFLINE is set) and " + target.describe() + " at revision " + rev
              + " is not in the cache " + config.cacheDir() + "; unset HF_HUB_OFFLINE to download it"));
    }
    JsonNode info;
    try {
      info = http.json("GET", http.api("/api/" + type.plural() + "/" + repoId + "/revision/" + HubHttp.quote(rev)),
          null, Map.of(), target);
    } catch (HubException e) {
      if (e.kind() == HubException.Kind.NETWORK) {
        Optional<Path> c = cached(repoDir, rev);
        if (c.isPresent()) {
          progress.note("the hub is unreachable (" + e.getMessage() + "); using the cached snapshot " + c.get());
          return c.get();
        }
      }
      throw e;
    } catch (IOException e) {
      throw new UncheckedIOException("reading the file list of " + target.describe() + ": " + e.getMessage(), e);
    }
    String commit = info.path("sha").asText(null);
    if (commit == null) {
      throw new HubException(HubException.Kind.OTHER, "the hub's answer for " + target.describe() + " has no commit (sha)");
    }
    List<String> files = new ArrayList<>();
    for (JsonNode s : info.path("siblings")) {
      String f = s.path("rfilename").asText();
      if (!f.isEmpty() && Globs.keep(f, includes, excludes)) {
        files.add(f);
      }
    }
    try {
      HubCache.writeRef(repoDir, rev, commit);
    } catch (IOException e) {
      throw ioFailure(e, repoDir);
    }
    downloadAll(repoDir, type, repoId, commit, files, progress);
    try {
      // the folder exists only once its files do (offline use takes an existing folder as complete)
      return Files.createDirectories(HubCache.snapshotDir(repoDir, commit));
    } catch (IOException e) {
      throw ioFailure(e, repoDir);
    }
  }

  private void downloadAll(Path repoDir, RepoType type, String repoId, String commit, List<String> files,
      DownloadProgress progress) {
    int workers = Math.max(1, Math.min(config.workers(), files.size()));
    ExecutorService pool = Executors.newFixedThreadPool(workers, r -> {
      Thread t = new Thread(r, "hub-download");
      t.setDaemon(true);
      return t;
    });
    try {
      List<Future<Path>> jobs = new ArrayList<>();
      for (String f : files) {
        jobs.add(pool.submit(() -> fetchOne(repoDir, type, repoId, commit, f, progress)));
      }
      RuntimeException first = null;
      for (Future<Path> j : jobs) {
        try {
          j.get();
        } catch (ExecutionException e) {
          RuntimeException r = e.getCause() instanceof RuntimeException re ? re
              : e.getCause() instanceof IOException io ? ioFailure(io, repoDir)
              : new IllegalStateException(e.getCause());
          if (first == null) {
            first = r;
          }
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new HubException(HubException.Kind.OTHER, "interrupted while downloading " + repoId);
        }
      }
      if (first != null) {
        throw first;
      }
    } finally {
      pool.shutdownNow();
    }
  }

  private Path fetchOne(Path repoDir, RepoType type, String repoId, String commit, String file,
      DownloadProgress progress) throws IOException {
    Path snapshot = HubCache.snapshotFile(repoDir, commit, file);
    if (HubCache.present(snapshot)) {
      return snapshot; // a commit never changes: what is linked is right
    }
    HubHttp.Target target = new HubHttp.Target(type, repoId, commit, file);
    URI url = http.api("/" + type.urlPrefix() + repoId + "/resolve/" + commit + "/" + HubHttp.quotePath(file));
    FileDownload.Metadata meta = download.head(url, target);
    return download.fetch(repoDir, commit, file, meta, target, progress);
  }

  private Optional<Path> cached(Path repoDir, String rev) {
    return HubCache.commitOf(repoDir, rev).map(c -> HubCache.snapshotDir(repoDir, c)).filter(HubClient::nonEmptyDir);
  }

  private static boolean nonEmptyDir(Path p) {
    try (var s = Files.list(p)) {
      return s.findAny().isPresent();
    } catch (IOException e) {
      return false;
    }
  }

  private RuntimeException ioFailure(IOException e, Path where) {
    if (FileDownload.isDiskFull(e)) {
      return new HubException(HubException.Kind.DISK_FULL, "disk full writing to " + where + "; free some space or set HF_HUB_CACHE to another disk", e);
    }
    return new UncheckedIOException(where + ": " + e.getMessage(), e);
  }

  /**
   * Uploads the files of {@code folder} to {@code repoId} in one commit (see {@link PushOptions}),
   * creating the repository when it does not exist; files the hub already has unchanged are not
   * sent again.
   */
  public PushResult push(Path folder, String repoId, RepoType type, PushOptions options, DownloadProgress progress) {
    if (config.offline()) {
      throw new HubException(HubException.Kind.OFFLINE, "cannot push while offline (HF_HUB_OFFLINE is set)");
    }
    try {
      return new CommitUpload(http, type, repoId, options, progress).run(folder);
    } catch (IOException e) {
      throw new UncheckedIOException(e.getMessage() == null ? "push of " + folder + " failed" : e.getMessage(), e);
    }
  }

  /** Nothing is held between calls today; kept so callers scope a client (connections may be later). */
  @Override
  public void close() {}
}
