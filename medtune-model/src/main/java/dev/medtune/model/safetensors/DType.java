package dev.medtune.model.safetensors;

/** Element types medtune reads and writes, named as safetensors names them. */
public enum DType {
  BF16(2),
  F16(2),
  F32(4);

  private final int byteSize;

  DType(int byteSize) {
    this.byteSize = byteSize;
  }

  public int byteSize() {
    return byteSize;
  }
}
