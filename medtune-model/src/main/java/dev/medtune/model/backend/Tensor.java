package dev.medtune.model.backend;

import dev.medtune.model.safetensors.DType;

/**
 * A tensor that lives where its {@link Backend} computes: host memory for the CPU backend (a
 * mapped weight or a planned float32 buffer), device memory for CUDA. Row-major, outermost
 * dimension first, like PyTorch. The model only passes tensors to the backend's ops; it never
 * reads their elements (that is what {@link Backend#copyToHost} is for).
 */
public interface Tensor {

  DType dtype();

  /** The shape, outermost first; a copy. */
  long[] shape();

  /** Number of elements. */
  default long size() {
    long n = 1;
    for (long d : shape()) {
      n *= d;
    }
    return n;
  }

  /**
   * The elements {@code [offset, offset + product(shape))} of this tensor seen with a new shape,
   * sharing its memory (a per-layer slice of the KV cache, rows of a batch).
   */
  Tensor view(long offset, long... shape);

  /** Rows {@code [from, from + count)} along the outermost dimension, sharing memory. */
  default Tensor rows(long from, long count) {
    long[] s = shape();
    long rowSize = size() / s[0];
    s[0] = count;
    return view(from * rowSize, s);
  }
}
