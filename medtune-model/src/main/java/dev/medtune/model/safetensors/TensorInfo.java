package dev.medtune.model.safetensors;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * One tensor of a safetensors file: its name, element type, shape (row-major, outermost first,
 * as PyTorch) and its bytes, a read-only slice of the memory-mapped file (little-endian), never a copy.
 */
public record TensorInfo(String name, DType dtype, long[] shape, MemorySegment data) {

  static final ValueLayout.OfFloat F32 =
      ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  static final ValueLayout.OfShort I16 =
      ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  public long elementCount() {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }

  /** Size of dimension {@code i}; negative {@code i} counts from the end as in PyTorch. */
  public long dim(int i) {
    return shape[i < 0 ? shape.length + i : i];
  }

  /**
   * Element {@code index} (row-major) as a float: bf16 is the high half of a float32
   * ({@code bits << 16}), f16 is IEEE half ({@link Float#float16ToFloat}).
   */
  public float getFloat(long index) {
    return switch (dtype) {
      case F32 -> data.get(F32, index * 4);
      case BF16 -> Float.intBitsToFloat((data.get(I16, index * 2) & 0xffff) << 16);
      case F16 -> Float.float16ToFloat(data.get(I16, index * 2));
    };
  }

  /** Elements {@code [from, from + dst.length)} converted to float into {@code dst}. */
  public void getFloats(long from, float[] dst) {
    for (int i = 0; i < dst.length; i++) {
      dst[i] = getFloat(from + i);
    }
  }

  /** All elements as a new float array (small tensors only: at most 2^31 - 1 elements). */
  public float[] toFloatArray() {
    long n = elementCount();
    if (n > Integer.MAX_VALUE - 8) {
      throw new IllegalStateException("tensor " + name + " has " + n + " elements, too many for an array");
    }
    float[] out = new float[(int) n];
    getFloats(0, out);
    return out;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TensorInfo t && name.equals(t.name) && dtype == t.dtype
        && Arrays.equals(shape, t.shape) && data.equals(t.data);
  }

  @Override
  public int hashCode() {
    return name.hashCode() * 31 + Arrays.hashCode(shape);
  }

  @Override
  public String toString() {
    return name + " " + dtype + Arrays.toString(shape);
  }
}
