package dev.medtune.cuda;

/**
 * A CUDA, NVRTC or cuBLASLt call that failed, or a library that is missing. The message is one
 * line and names the call, e.g. {@code cuMemAlloc_v2(4294967296 bytes) failed:
 * CUDA_ERROR_OUT_OF_MEMORY (out of memory)}.
 */
final class CudaException extends IllegalStateException {

  CudaException(String message) {
    super(message);
  }
}
