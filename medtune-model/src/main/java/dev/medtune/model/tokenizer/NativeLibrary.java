package dev.medtune.model.tokenizer;

/**
 * Makes DJL load the CPU build of the Hugging Face tokenizers library that ships inside its jar,
 * with no network. DJL 0.38's {@code ai.djl.huggingface.tokenizers.jni.LibUtils} picks a "flavor":
 * on a machine with CUDA it chooses a {@code cuXXX} build and downloads it from the internet, which
 * fails offline and is pointless for a tokenizer. It takes the flavor from {@code RUST_FLAVOR}
 * (environment or system property) first, and also falls back to {@code cpu} in offline mode
 * ({@code ai.djl.offline}); we set both before the first DJL class loads. A flavor or offline
 * setting the user made explicitly is kept.
 */
final class NativeLibrary {
  private NativeLibrary() {}

  static {
    if (System.getenv("RUST_FLAVOR") == null && System.getProperty("RUST_FLAVOR") == null) {
      System.setProperty("RUST_FLAVOR", "cpu");
    }
    if (System.getenv("DJL_OFFLINE") == null && System.getProperty("ai.djl.offline") == null) {
      System.setProperty("ai.djl.offline", "true");
    }
    // DJL logs through SLF4J and medtune ships no SLF4J provider: without this, SLF4J prints a
    // three-line "no providers" warning on stderr the first time a tokenizer loads.
    if (System.getProperty("slf4j.internal.verbosity") == null) {
      System.setProperty("slf4j.internal.verbosity", "ERROR");
    }
  }

  /** Runs the static initialiser above; call before touching any DJL class. */
  static void prepare() {}
}
