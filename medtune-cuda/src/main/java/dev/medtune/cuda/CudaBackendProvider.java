package dev.medtune.cuda;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.BackendProvider;

/**
 * Registers the CUDA backend ({@code --device cuda}; {@code --device auto} takes it when this
 * says it is usable). It is usable when the NVIDIA driver ({@code libcuda.so.1}) loads and sees a
 * GPU, and NVRTC ({@code libnvrtc.so.13}) and cuBLASLt ({@code libcublasLt.so.13}) are found
 * (see {@link NativeLibraries} for where, and {@code MEDTUNE_CUDA_LIB_DIR}). It runs on device 0
 * of those the driver shows ({@code CUDA_VISIBLE_DEVICES} picks another).
 */
public final class CudaBackendProvider implements BackendProvider {

  private static String reason;
  private static boolean checked;

  @Override
  public String name() {
    return "cuda";
  }

  @Override
  public String unavailableReason() {
    return check();
  }

  /** Null when a GPU and the libraries are present, else the one-line reason. */
  public static synchronized String check() {
    if (!checked) {
      checked = true;
      try {
        Driver driver = Driver.get();
        if (driver.deviceCount() < 1) {
          reason = "the NVIDIA driver sees no GPU";
        } else {
          Nvrtc.Library.get();
          CublasLt.Functions.get();
        }
      } catch (RuntimeException | LinkageError e) {
        reason = e.getMessage() == null ? e.toString() : e.getMessage();
      }
    }
    return reason;
  }

  @Override
  public Backend create() {
    String why = check();
    if (why != null) {
      throw new CudaException("the CUDA backend is not usable here: " + why);
    }
    return new CudaBackend(0);
  }

  /** The CUDA backend as its concrete type, for this module's tests and benchmarks. */
  static CudaBackend open() {
    String why = check();
    if (why != null) {
      throw new CudaException("the CUDA backend is not usable here: " + why);
    }
    return new CudaBackend(0);
  }
}
