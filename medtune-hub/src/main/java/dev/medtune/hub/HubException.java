package dev.medtune.hub;

/**
 * A hub operation failed for a reason this message explains in one line. It never contains the
 * token.
 */
public final class HubException extends RuntimeException {
  /** What went wrong, for callers that react differently (a command may fall back on the cache). */
  public enum Kind {
    REPO_NOT_FOUND, GATED, BAD_TOKEN, FORBIDDEN, REVISION_NOT_FOUND, ENTRY_NOT_FOUND,
    CHECKSUM, DISK_FULL, OFFLINE, NETWORK, SERVER, OTHER
  }

  private final Kind kind;

  HubException(Kind kind, String message) {
    super(message);
    this.kind = kind;
  }

  HubException(Kind kind, String message, Throwable cause) {
    super(message, cause);
    this.kind = kind;
  }

  public Kind kind() {
    return kind;
  }
}
