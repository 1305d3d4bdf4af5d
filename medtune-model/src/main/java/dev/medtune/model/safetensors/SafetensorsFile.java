package dev.medtune.model.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.Json;
import dev.medtune.model.ModelFormatException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A memory-mapped safetensors file (format: https://github.com/huggingface/safetensors, "Format"):
 * an 8-byte little-endian header length N, N bytes of JSON header
 * ({@code {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}}),
 * then the tensor bytes, offsets relative to the end of the header.
 *
 * <p>The whole file is mapped once ({@link FileChannel#map(FileChannel.MapMode, long, long, Arena)},
 * so files over 2 GB work) in a shared arena: tensors are slices usable from any thread until
 * {@link #close()}. Every header entry is validated on open, so a corrupt file fails at once with
 * the file and tensor named.
 */
public final class SafetensorsFile implements AutoCloseable {
  /** The Rust crate refuses headers over 100 MB; so do we (a garbage length is caught early). */
  static final long MAX_HEADER = 100_000_000L;

  private final Path path;
  private final Arena arena;
  private final Map<String, TensorInfo> tensors;
  private final Map<String, String> metadata;

  private SafetensorsFile(Path path, Arena arena, Map<String, TensorInfo> tensors,
      Map<String, String> metadata) {
    this.path = path;
    this.arena = arena;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /** Maps and validates {@code file}; corruption is a {@link ModelFormatException} naming it. */
  public static SafetensorsFile open(Path file) {
    if (!Files.isRegularFile(file)) {
      throw new ModelFormatException(file + ": no such safetensors file");
    }
    Arena arena = Arena.ofShared();
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      if (size < 8) {
        throw new ModelFormatException(file + ": " + size
            + " bytes, shorter than the 8-byte header length of a safetensors file");
      }
      MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
      long headerLen = all.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
      if (headerLen < 0 || headerLen > size - 8) {
        throw new ModelFormatException(file + ": header length " + Long.toUnsignedString(headerLen)
            + " runs past the end of the file (" + size + " bytes): not a safetensors file or truncated");
      }
      if (headerLen > MAX_HEADER) {
        throw new ModelFormatException(file + ": header length " + headerLen
            + " is over the 100 MB limit of the format");
      }
      byte[] headerBytes = all.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
      MemorySegment data = all.asSlice(8 + headerLen);
      var parsed = parseHeader(file, headerBytes, data);
      SafetensorsFile f = new SafetensorsFile(file, arena, parsed.tensors, parsed.metadata);
      arena = null; // owned by f now
      return f;
    } catch (IOException e) {
      throw new UncheckedIOException(file + ": cannot map: " + e.getMessage(), e);
    } finally {
      if (arena != null) {
        arena.close();
      }
    }
  }

  private record Header(Map<String, TensorInfo> tensors, Map<String, String> metadata) {}

  private static Header parseHeader(Path file, byte[] headerBytes, MemorySegment data) {
    JsonNode root;
    try {
      root = Json.MAPPER.readTree(new String(headerBytes, StandardCharsets.UTF_8).strip());
    } catch (JsonProcessingException e) {
      throw new ModelFormatException(file + ": the safetensors header is not JSON: "
          + e.getOriginalMessage());
    }
    if (root == null || !root.isObject()) {
      throw new ModelFormatException(file + ": the safetensors header is not a JSON object");
    }
    Map<String, TensorInfo> tensors = new LinkedHashMap<>();
    Map<String, String> metadata = new LinkedHashMap<>();
    long dataSize = data.byteSize();
    List<long[]> ranges = new ArrayList<>(); // begin, end, index into names
    List<String> names = new ArrayList<>();
    for (Map.Entry<String, JsonNode> e : root.properties()) {
      String name = e.getKey();
      JsonNode t = e.getValue();
      if (name.equals("__metadata__")) {
        if (!t.isObject()) {
          throw new ModelFormatException(file + ": __metadata__ must be an object of strings");
        }
        t.properties().forEach(m -> metadata.put(m.getKey(), m.getValue().asText()));
        continue;
      }
      String where = file + ": tensor " + name;
      if (!t.isObject()) {
        throw new ModelFormatException(where + ": expected an object with dtype, shape and"
            + " data_offsets, found " + t.getNodeType());
      }
      JsonNode dt = t.get("dtype");
      DType dtype;
      try {
        dtype = DType.valueOf(dt == null ? "" : dt.asText());
      } catch (IllegalArgumentException ex) {
        throw new ModelFormatException(where + ": unknown or unsupported dtype "
            + (dt == null ? "(none)" : dt.toString()) + "; medtune reads BF16, F16 and F32");
      }
      JsonNode sh = t.get("shape");
      if (sh == null || !sh.isArray()) {
        throw new ModelFormatException(where + ": shape must be a list of integers, found " + sh);
      }
      long[] shape = new long[sh.size()];
      long count = 1;
      for (int i = 0; i < shape.length; i++) {
        JsonNode d = sh.get(i);
        if (!d.isIntegralNumber() || d.longValue() < 0) {
          throw new ModelFormatException(where + ": shape must be a list of integers >= 0, found " + sh);
        }
        shape[i] = d.longValue();
        count = Math.multiplyExact(count, shape[i]);
      }
      JsonNode off = t.get("data_offsets");
      if (off == null || !off.isArray() || off.size() != 2 || !off.get(0).isIntegralNumber()
          || !off.get(1).isIntegralNumber()) {
        throw new ModelFormatException(where + ": data_offsets must be [begin, end], found " + off);
      }
      long begin = off.get(0).longValue();
      long end = off.get(1).longValue();
      if (begin < 0 || end < begin) {
        throw new ModelFormatException(where + ": data_offsets " + off
            + " are outside the data (begin must be >= 0 and <= end)");
      }
      long expected = Math.multiplyExact(count, (long) dtype.byteSize());
      if (end - begin != expected) {
        throw new ModelFormatException(where + ": shape " + sh + " of " + dtype + " needs "
            + expected + " bytes but data_offsets " + off + " hold " + (end - begin));
      }
      if (end > dataSize) {
        throw new ModelFormatException(where + ": data_offsets " + off + " run past the end of the"
            + " data (" + dataSize + " bytes after the header): the file is truncated or the"
            + " offsets are outside the data");
      }
      ranges.add(new long[] {begin, end, names.size()});
      names.add(name);
      tensors.put(name, new TensorInfo(name, dtype, shape, data.asSlice(begin, end - begin)));
    }
    ranges.sort(Comparator.<long[]>comparingLong(r -> r[0]).thenComparingLong(r -> r[1]));
    for (int i = 1; i < ranges.size(); i++) {
      long[] prev = ranges.get(i - 1);
      long[] cur = ranges.get(i);
      if (cur[0] < prev[1] && cur[1] > cur[0] && prev[1] > prev[0]) {
        throw new ModelFormatException(file + ": tensor " + names.get((int) cur[2])
            + " (data_offsets [" + cur[0] + ", " + cur[1] + "]) overlaps tensor "
            + names.get((int) prev[2]) + " ([" + prev[0] + ", " + prev[1] + "])");
      }
    }
    return new Header(Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
  }

  public Path path() {
    return path;
  }

  /** All tensors, in the order the header lists them. */
  public Map<String, TensorInfo> tensors() {
    return tensors;
  }

  /** The named tensor; a missing one is a {@link ModelFormatException} naming the file. */
  public TensorInfo tensor(String name) {
    TensorInfo t = tensors.get(name);
    if (t == null) {
      throw new ModelFormatException(path + ": no tensor named " + name + " (the file has "
          + tensors.size() + " tensors)");
    }
    return t;
  }

  public boolean has(String name) {
    return tensors.containsKey(name);
  }

  /** The header's {@code __metadata__} (e.g. {@code {"format": "pt"}}), possibly empty. */
  public Map<String, String> metadata() {
    return metadata;
  }

  /** Unmaps the file; tensors of this file must not be used afterwards. */
  @Override
  public void close() {
    if (arena.scope().isAlive()) {
      arena.close();
    }
  }
}
