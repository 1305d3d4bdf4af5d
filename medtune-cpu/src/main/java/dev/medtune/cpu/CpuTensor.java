package dev.medtune.cpu;

import dev.medtune.model.backend.Tensor;
import dev.medtune.model.safetensors.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A CPU tensor: either a float32 buffer on the Java heap ({@code array}, from element
 * {@code offset}), or a weight in the mapped checkpoint ({@code segment}, little-endian, in its
 * file dtype, from element {@code offset}). Views share the memory.
 */
final class CpuTensor implements Tensor {

  static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
  static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

  final DType dtype;
  private final long[] shape;
  final float[] array;
  final MemorySegment segment;
  final long offset;
  private final long size;

  CpuTensor(DType dtype, long[] shape, float[] array, MemorySegment segment, long offset) {
    this.dtype = dtype;
    this.shape = shape.clone();
    this.array = array;
    this.segment = segment;
    this.offset = offset;
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    this.size = n;
    long capacity = array != null ? array.length : segment.byteSize() / dtype.byteSize();
    if (offset < 0 || offset + n > capacity) {
      throw new IllegalArgumentException("view of " + n + " elements at " + offset
          + " is outside a tensor of " + capacity + " elements");
    }
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
    return new CpuTensor(dtype, shape, array, segment, this.offset + offset);
  }

  /** The heap array of a float32 activation buffer; ops write only into these. */
  float[] floats() {
    if (array == null) {
      throw new IllegalArgumentException("expected a float32 buffer made by allocate(), found a "
          + dtype + " weight of shape " + Arrays.toString(shape));
    }
    return array;
  }

  /** Element {@code i} of this tensor (relative to its offset) as a float, any dtype. */
  float get(long i) {
    long e = offset + i;
    if (array != null) {
      return array[(int) e];
    }
    return switch (dtype) {
      case F32 -> segment.get(FLOAT_LE, e * 4);
      case BF16 -> Float.intBitsToFloat((segment.get(SHORT_LE, e * 2) & 0xffff) << 16);
      case F16 -> Float.float16ToFloat(segment.get(SHORT_LE, e * 2));
    };
  }

  @Override
  public String toString() {
    return "CpuTensor[" + dtype + " " + Arrays.toString(shape) + (array != null ? " heap" : " mapped") + "]";
  }
}
