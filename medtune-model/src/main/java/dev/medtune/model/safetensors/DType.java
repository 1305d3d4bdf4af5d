package dev.medtune.model.safetensors;

/** Element types medtune reads and writes, named as safetensors names them. */
public enum DType {
  BF16(2, "bfloat16"),
  F16(2, "float16"),
  F32(4, "float32");

  private final int byteSize;
  private final String torchName;

  DType(int byteSize, String torchName) {
    this.byteSize = byteSize;
    this.torchName = torchName;
  }

  public int byteSize() {
    return byteSize;
  }

  /** The name PyTorch and {@code config.json}'s {@code torch_dtype} use, e.g. "bfloat16". */
  public String torchName() {
    return torchName;
  }

  /** The dtype of a {@code torch_dtype} name; an unknown name is an IllegalArgumentException. */
  public static DType fromTorchName(String name) {
    for (DType d : values()) {
      if (d.torchName.equals(name)) {
        return d;
      }
    }
    throw new IllegalArgumentException("unsupported dtype \"" + name
        + "\"; expected bfloat16, float16 or float32");
  }

  /** Float to bf16 bits, rounding to nearest even as PyTorch does; NaN stays a quiet NaN. */
  public static short toBf16(float f) {
    int bits = Float.floatToRawIntBits(f);
    if ((bits & 0x7fffffff) > 0x7f800000) {
      return (short) ((bits >>> 16) | 0x40);
    }
    return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
  }
}
