package dev.medtune.cuda;

import dev.medtune.model.backend.Tensor;
import dev.medtune.model.safetensors.DType;
import java.util.Arrays;

/**
 * A tensor in device memory: {@code base} is the device address of its allocation, and the
 * tensor starts {@code offset} elements into it. Views share the allocation. Weights keep their
 * checkpoint dtype; buffers from {@code allocate} are float32.
 */
final class CudaTensor implements Tensor {

  final DType dtype;
  private final long[] shape;
  final long base;
  final long offset;
  private final long capacity;
  private final long size;

  CudaTensor(DType dtype, long[] shape, long base, long offset, long capacity) {
    this.dtype = dtype;
    this.shape = shape.clone();
    this.base = base;
    this.offset = offset;
    this.capacity = capacity;
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    this.size = n;
    if (offset < 0 || offset + n > capacity) {
      throw new IllegalArgumentException("view of " + n + " elements at " + offset
          + " is outside a tensor of " + capacity + " elements");
    }
  }

  /** The device address of element 0 of this view. */
  long address() {
    return base + offset * dtype.byteSize();
  }

  /** The device address of element {@code i} of this view. */
  long address(long i) {
    return base + (offset + i) * dtype.byteSize();
  }

  @Override
  public DType dtype() {
    return dtype;
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  @Override
  public long size() {
    return size;
  }

  @Override
  public Tensor view(long offset, long... shape) {
    return new CudaTensor(dtype, shape, base, this.offset + offset, capacity);
  }

  @Override
  public String toString() {
    return "CudaTensor[" + dtype + " " + Arrays.toString(shape) + "]";
  }
}
