package dev.medtune.model.safetensors;

import java.lang.foreign.MemorySegment;

/**
 * One tensor of a safetensors file: its name, element type, shape (row-major, outermost first,
 * as PyTorch) and its bytes, a read-only slice of the memory-mapped file (little-endian), never a copy.
 */
public record TensorInfo(String name, DType dtype, long[] shape, MemorySegment data) {

  public long elementCount() {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }
}
