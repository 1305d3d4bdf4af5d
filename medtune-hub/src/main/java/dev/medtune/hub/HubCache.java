package dev.medtune.hub;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * The hub cache layout shared with the Python client ({@code huggingface_hub/file_download.py}):
 *
 * <pre>
 * {cache}/models--org--name/
 *   blobs/{etag}               the file, named by its sha256 (LFS) or git blob id
 *   blobs/{etag}.incomplete    a partial download, resumed with an HTTP range
 *   snapshots/{commit}/{path}  relative symlink to ../../blobs/{etag} (one more ../ per folder)
 *   refs/{revision}            the commit hash a branch or tag pointed at, no newline
 * </pre>
 */
final class HubCache {
  static final Pattern COMMIT = Pattern.compile("[0-9a-f]{40}");

  private final Path root;

  HubCache(Path root) {
    this.root = root;
  }

  Path root() {
    return root;
  }

  /** {@code models--org--name}, the Python client's {@code repo_folder_name}. */
  Path repoFolder(RepoType type, String repoId) {
    return root.resolve(type.plural() + "--" + repoId.replace("/", "--"));
  }

  static Path blob(Path repo, String etag) {
    return repo.resolve("blobs").resolve(etag);
  }

  static Path incomplete(Path repo, String etag) {
    return repo.resolve("blobs").resolve(etag + ".incomplete");
  }

  static Path snapshotDir(Path repo, String commit) {
    return repo.resolve("snapshots").resolve(commit);
  }

  static Path snapshotFile(Path repo, String commit, String file) {
    Path p = snapshotDir(repo, commit);
    for (String part : file.split("/")) {
      p = p.resolve(part);
    }
    return p;
  }

  /** The commit a revision resolves to in the cache: itself when it is a commit, else its ref. */
  static Optional<String> commitOf(Path repo, String revision) {
    if (COMMIT.matcher(revision).matches()) {
      return Optional.of(revision);
    }
    Path ref = repo.resolve("refs").resolve(revision);
    try {
      if (Files.isRegularFile(ref)) {
        String c = Files.readString(ref, StandardCharsets.UTF_8).strip();
        return c.isEmpty() ? Optional.empty() : Optional.of(c);
      }
    } catch (IOException e) {
      // an unreadable ref is a missing ref
    }
    return Optional.empty();
  }

  /** Records that {@code revision} points at {@code commit} (written whole, then renamed). */
  static void writeRef(Path repo, String revision, String commit) throws IOException {
    if (revision.equals(commit)) {
      return;
    }
    Path ref = repo.resolve("refs").resolve(revision);
    if (commit.equals(commitOf(repo, revision).orElse(null))) {
      return;
    }
    Files.createDirectories(ref.getParent());
    Path tmp = Files.createTempFile(ref.getParent(), ".ref", ".tmp");
    Files.writeString(tmp, commit, StandardCharsets.UTF_8);
    moveReplacing(tmp, ref);
  }

  /**
   * Points {@code snapshotFile} at {@code blob} with a relative symlink, as the Python client's
   * {@code _create_symlink} does, so the cache can be moved; copies where links are not allowed.
   */
  static void link(Path blob, Path snapshotFile) throws IOException {
    Files.createDirectories(snapshotFile.getParent());
    Path target = snapshotFile.getParent().relativize(blob);
    Path tmp = snapshotFile.resolveSibling("." + snapshotFile.getFileName() + "." + ProcessHandle.current().pid()
        + "." + Thread.currentThread().threadId() + ".lnk");
    Files.deleteIfExists(tmp);
    try {
      Files.createSymbolicLink(tmp, target);
    } catch (UnsupportedOperationException | FileSystemException e) {
      Files.copy(blob, tmp, StandardCopyOption.REPLACE_EXISTING);
    }
    moveReplacing(tmp, snapshotFile);
  }

  static boolean present(Path p) {
    return Files.exists(p); // follows the link: a dangling link is not a cached file
  }

  static boolean isLink(Path p) {
    return Files.isSymbolicLink(p) || Files.exists(p, LinkOption.NOFOLLOW_LINKS);
  }

  static void moveReplacing(Path from, Path to) throws IOException {
    try {
      Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (AtomicMoveNotSupportedException e) {
      Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
    }
  }
}
