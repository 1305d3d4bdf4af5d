package dev.medtune.model.backend;

/**
 * A backend implementation, found with {@link java.util.ServiceLoader}: a module registers its
 * provider in {@code META-INF/services/dev.medtune.model.backend.BackendProvider}.
 */
public interface BackendProvider {

  /** The device name users type: {@code cpu}, {@code cuda}. */
  String name();

  /**
   * Null when this backend can run here, else a one-line reason (no GPU, a native library
   * missing), which {@code --device NAME} prints as its error.
   */
  String unavailableReason();

  /** Starts the backend; the caller closes it. */
  Backend create();
}
