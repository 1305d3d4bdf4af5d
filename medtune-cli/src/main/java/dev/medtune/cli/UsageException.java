package dev.medtune.cli;

/** Bad usage found after parsing (options that contradict each other): exit code 2. */
final class UsageException extends RuntimeException {
  UsageException(String message) {
    super(message);
  }
}
