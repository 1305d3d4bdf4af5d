package dev.medtune.cli;

/** A failure the command explains in one line (exit code 1). */
final class MedtuneFailure extends RuntimeException {
  MedtuneFailure(String message) {
    super(message);
  }

  MedtuneFailure(String message, Throwable cause) {
    super(message, cause);
  }
}
