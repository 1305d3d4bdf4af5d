package dev.medtune.data;

/** A failure of {@code prepare} explained in one line: the file or row, what was expected, what was found. */
public final class PrepareException extends RuntimeException {
  public PrepareException(String message) {
    super(message);
  }

  public PrepareException(String message, Throwable cause) {
    super(message, cause);
  }
}
