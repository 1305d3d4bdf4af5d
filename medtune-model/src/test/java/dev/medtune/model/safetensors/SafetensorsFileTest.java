package dev.medtune.model.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.ModelFormatException;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The reader on files built byte by byte from the format's definition (so it is not only checked
 * against our own writer), the writer read back, and one test per kind of corruption.
 */
class SafetensorsFileTest {
  @TempDir Path tmp;

  /** 8-byte little-endian header length, the header text, then the data. */
  static byte[] file(String header, byte[] data) {
    byte[] h = header.getBytes(StandardCharsets.UTF_8);
    return ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN)
        .putLong(h.length).put(h).put(data).array();
  }

  static byte[] le(float... v) {
    ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (float f : v) {
      b.putFloat(f);
    }
    return b.array();
  }

  static byte[] le16(int... v) {
    ByteBuffer b = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (int s : v) {
      b.putShort((short) s);
    }
    return b.array();
  }

  static byte[] concat(byte[]... parts) {
    ByteBuffer b = ByteBuffer.allocate(java.util.Arrays.stream(parts).mapToInt(p -> p.length).sum());
    for (byte[] p : parts) {
      b.put(p);
    }
    return b.array();
  }

  Path put(String name, byte[] bytes) throws IOException {
    Path f = tmp.resolve(name);
    Files.write(f, bytes);
    return f;
  }

  static final String GOOD_HEADER = "{\"__metadata__\":{\"format\":\"pt\"},"
      + "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
      + "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[24,28]},"
      + "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[28,32]}}";

  static byte[] goodData() {
    // bf16 0x3fc0 = 1.5, 0xc000 = -2; f16 0x3c00 = 1, 0xc400 = -4
    return concat(le(1, 2, 3, -4, 5.5f, 1e-3f), le16(0x3fc0, 0xc000), le16(0x3c00, 0xc400));
  }

  @Test
  void readsHandBuiltFile() throws IOException {
    Path f = put("hand.safetensors", file(GOOD_HEADER, goodData()));
    try (SafetensorsFile st = SafetensorsFile.open(f)) {
      assertEquals(List.of("w", "b", "h"), List.copyOf(st.tensors().keySet()), "file order");
      assertEquals(Map.of("format", "pt"), st.metadata());
      TensorInfo w = st.tensor("w");
      assertEquals(DType.F32, w.dtype());
      assertArrayEquals(new long[] {2, 3}, w.shape());
      assertArrayEquals(new float[] {1, 2, 3, -4, 5.5f, 1e-3f}, w.toFloatArray());
      assertArrayEquals(new float[] {1.5f, -2f}, st.tensor("b").toFloatArray());
      assertArrayEquals(new float[] {1f, -4f}, st.tensor("h").toFloatArray());
      assertEquals(24, w.data().byteSize());
    }
  }

  @Test
  void missingTensorNamesFileAndTensor() throws IOException {
    Path f = put("hand.safetensors", file(GOOD_HEADER, goodData()));
    try (SafetensorsFile st = SafetensorsFile.open(f)) {
      var e = assertThrows(ModelFormatException.class, () -> st.tensor("model.norm.weight"));
      assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("model.norm.weight"),
          e.getMessage());
    }
  }

  @Test
  void writerOutputReadsBackWithRustCratePadding() throws IOException {
    float[] vals = {0.1f, -0.2f, 3.14159f, 65504f, -1e-8f, 1f / 3};
    Path f = tmp.resolve("w.safetensors");
    new SafetensorsWriter()
        .add("a.f32", DType.F32, new long[] {2, 3}, vals)
        .add("a.bf16", DType.BF16, new long[] {6}, vals)
        .add("a.f16", DType.F16, new long[] {3, 2}, vals)
        .add("gen", DType.F32, new long[] {3, 1_000_000}, (first, dst, n) -> {
          for (int i = 0; i < n; i++) {
            dst[i] = (first + i) % 1000;
          }
        })
        .write(f);
    byte[] bytes = Files.readAllBytes(f);
    long headerLen = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
    assertEquals(0, headerLen % 8, "header padded to 8 bytes");
    String header = new String(bytes, 8, (int) headerLen, StandardCharsets.UTF_8);
    assertTrue(header.startsWith("{\"__metadata__\":{\"format\":\"pt\"}"), header);
    assertTrue(header.endsWith("}") || header.stripTrailing().endsWith("}"), "spaces pad: " + header);
    try (SafetensorsFile st = SafetensorsFile.open(f)) {
      assertArrayEquals(vals, st.tensor("a.f32").toFloatArray());
      float[] bf = st.tensor("a.bf16").toFloatArray();
      float[] hf = st.tensor("a.f16").toFloatArray();
      for (int i = 0; i < vals.length; i++) {
        assertEquals(vals[i], bf[i], Math.abs(vals[i]) * 0x1p-8, "bf16 within half an ulp");
        assertEquals(Float.float16ToFloat(Float.floatToFloat16(vals[i])), hf[i]);
      }
      // round to nearest even: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 -> 1
      assertEquals((short) 0x3f80, DType.toBf16(1f + 0x1p-8f));
      assertEquals((short) 0x3f82, DType.toBf16(1f + 3 * 0x1p-8f));
      TensorInfo g = st.tensor("gen");
      assertEquals(2_999_999 % 1000, g.getFloat(2_999_999));
      assertEquals(1_048_577 % 1000, g.getFloat(1_048_577), "second chunk");
    }
  }

  @Test
  void filesOver2GbAreMappedAndIndexedWithLongs() throws IOException {
    long big = (1L << 31) + 4096; // one F32 tensor of ~2 GB then a small tensor past 2^31
    long n = big / 4;
    String header = "{\"big\":{\"dtype\":\"F32\",\"shape\":[" + n + "],\"data_offsets\":[0," + big
        + "]},\"tail\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" + big + "," + (big + 8)
        + "]}}";
    Path f = put("big.safetensors", file(header, new byte[0]));
    long dataStart = Files.size(f);
    try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
      raf.setLength(dataStart + big + 8); // sparse: takes no disk space
      raf.seek(dataStart + big - 4);
      raf.write(le(7.25f, 1.5f, -2.5f));
    }
    try (SafetensorsFile st = SafetensorsFile.open(f)) {
      assertEquals(7.25f, st.tensor("big").getFloat(n - 1));
      assertEquals(0f, st.tensor("big").getFloat(n / 2));
      assertArrayEquals(new float[] {1.5f, -2.5f}, st.tensor("tail").toFloatArray());
    }
  }

  // --- one test per corruption; each error names the file (and the tensor where there is one)

  void assertCorrupt(byte[] bytes, String... mustMention) throws IOException {
    Path f = put("bad.safetensors", bytes);
    var e = assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(f).close());
    assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
    for (String m : mustMention) {
      assertTrue(e.getMessage().contains(m), "expected '" + m + "' in: " + e.getMessage());
    }
    assertEquals(-1, e.getMessage().indexOf('\n'), "one line");
  }

  @Test
  void headerLengthPastTheEnd() throws IOException {
    byte[] b = file(GOOD_HEADER, goodData());
    ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, b.length);
    assertCorrupt(b, "header length", "past the end");
  }

  @Test
  void fileShorterThanTheHeaderLength() throws IOException {
    assertCorrupt(new byte[] {1, 2, 3}, "8-byte header length");
  }

  @Test
  void headerNotJson() throws IOException {
    assertCorrupt(file("{\"w\": {\"dtype\": \"F32\", ", goodData()), "not JSON");
    assertCorrupt(file("[1, 2, 3]", goodData()), "not a JSON object");
  }

  @Test
  void offsetsOverlapping() throws IOException {
    String h = GOOD_HEADER.replace("\"data_offsets\":[24,28]", "\"data_offsets\":[20,24]");
    assertCorrupt(file(h, goodData()), "tensor b", "overlaps tensor w");
  }

  @Test
  void offsetsOutsideTheData() throws IOException {
    String h = GOOD_HEADER.replace("\"data_offsets\":[28,32]", "\"data_offsets\":[100,104]");
    assertCorrupt(file(h, goodData()), "tensor h", "past the end of the data");
    String reversed = GOOD_HEADER.replace("\"data_offsets\":[28,32]", "\"data_offsets\":[32,28]");
    assertCorrupt(file(reversed, goodData()), "tensor h", "outside the data");
  }

  @Test
  void unknownDtype() throws IOException {
    String h = GOOD_HEADER.replace("\"dtype\":\"BF16\"", "\"dtype\":\"F8_E4M3\"");
    assertCorrupt(file(h, goodData()), "tensor b", "F8_E4M3");
  }

  @Test
  void shapeAndByteCountDisagree() throws IOException {
    String h = GOOD_HEADER.replace("\"shape\":[2,3]", "\"shape\":[3,3]");
    assertCorrupt(file(h, goodData()), "tensor w", "needs 36 bytes", "hold 24");
  }

  @Test
  void truncatedData() throws IOException {
    byte[] b = file(GOOD_HEADER, goodData());
    assertCorrupt(java.util.Arrays.copyOf(b, b.length - 3), "tensor h", "truncated");
  }
}
