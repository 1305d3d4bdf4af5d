package dev.medtune.model.safetensors;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.medtune.model.Json;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.ArrayDeque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Writes a safetensors file as the Rust crate does: header padded with spaces to a multiple of 8
 * bytes, {@code __metadata__ = {"format": "pt"}} (transformers requires it), tensors contiguous in
 * the order added. Data is streamed in chunks (a {@link FloatSource} is never materialised whole),
 * float chunks are produced and converted on all cores while earlier chunks are written, and the file appears only when complete
 * (temp file, fsync, rename).
 */
public final class SafetensorsWriter {
  /** Elements per chunk: big enough for sequential writes, small enough to stay in cache-ish memory. */
  static final int CHUNK = 1 << 20;

  /**
   * Produces a tensor's elements, row-major, chunk by chunk: {@code fill(first, dst, n)} writes
   * elements {@code [first, first + n)} into {@code dst[0..n)}. Called from several threads for
   * different chunks, so it must depend only on its arguments (e.g. a RNG seeded by {@code first}).
   */
  @FunctionalInterface
  public interface FloatSource {
    void fill(long first, float[] dst, int n);
  }

  private record Entry(String name, DType dtype, long[] shape, MemorySegment bytes, FloatSource source) {
    long count() {
      long n = 1;
      for (long d : shape) {
        n *= d;
      }
      return n;
    }

    long byteSize() {
      return count() * dtype.byteSize();
    }
  }

  private final List<Entry> entries = new ArrayList<>();
  private final Map<String, String> metadata = new LinkedHashMap<>();

  public SafetensorsWriter() {
    metadata.put("format", "pt");
  }

  public SafetensorsWriter metadata(String key, String value) {
    metadata.put(key, value);
    return this;
  }

  /** A tensor from raw little-endian bytes already in {@code dtype}. */
  public SafetensorsWriter add(String name, DType dtype, long[] shape, MemorySegment bytes) {
    Entry e = new Entry(name, dtype, shape.clone(), bytes, null);
    if (bytes.byteSize() != e.byteSize()) {
      throw new IllegalArgumentException("tensor " + name + ": shape needs " + e.byteSize()
          + " bytes of " + dtype + ", got " + bytes.byteSize());
    }
    return add(e);
  }

  /** A tensor from floats, converted to {@code dtype} (bf16 rounds to nearest even). */
  public SafetensorsWriter add(String name, DType dtype, long[] shape, float[] values) {
    Entry e = new Entry(name, dtype, shape.clone(), null,
        (first, dst, n) -> System.arraycopy(values, (int) first, dst, 0, n));
    if (e.count() != values.length) {
      throw new IllegalArgumentException("tensor " + name + ": shape needs " + e.count()
          + " values, got " + values.length);
    }
    return add(e);
  }

  /** A tensor whose elements {@code source} produces while the file is written. */
  public SafetensorsWriter add(String name, DType dtype, long[] shape, FloatSource source) {
    return add(new Entry(name, dtype, shape.clone(), null, source));
  }

  private SafetensorsWriter add(Entry e) {
    for (Entry x : entries) {
      if (x.name.equals(e.name)) {
        throw new IllegalArgumentException("tensor " + e.name + " added twice");
      }
    }
    entries.add(e);
    return this;
  }

  /** Bytes of tensor data added so far. */
  public long dataBytes() {
    long n = 0;
    for (Entry e : entries) {
      n += e.byteSize();
    }
    return n;
  }

  public List<String> names() {
    return entries.stream().map(Entry::name).toList();
  }

  /** Writes the file atomically; an existing file at {@code file} is replaced only when done. */
  public void write(Path file) {
    byte[] header = header();
    Path dir = file.toAbsolutePath().getParent();
    Path tmp = null;
    try {
      Files.createDirectories(dir);
      tmp = Json.tempSibling(file);
      try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE,
          StandardOpenOption.CREATE_NEW)) {
        ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length);
        writeFully(ch, len.flip());
        writeFully(ch, ByteBuffer.wrap(header));
        for (Entry e : entries) {
          if (e.bytes != null) {
            // ByteBuffers index with int: write a big segment in slices
            for (long at = 0; at < e.bytes.byteSize(); at += 1 << 30) {
              long n = Math.min(1 << 30, e.bytes.byteSize() - at);
              writeFully(ch, e.bytes.asSlice(at, n).asByteBuffer());
            }
          } else {
            writeConverted(ch, e);
          }
        }
        ch.force(true);
      }
      Json.moveAtomically(tmp, file);
      tmp = null;
    } catch (IOException e) {
      throw new UncheckedIOException(file + ": cannot write: " + e.getMessage(), e);
    } finally {
      if (tmp != null) {
        try {
          Files.deleteIfExists(tmp);
        } catch (IOException ignored) {
          // best effort
        }
      }
    }
  }

  private byte[] header() {
    ObjectNode root = Json.MAPPER.createObjectNode();
    ObjectNode meta = root.putObject("__metadata__");
    metadata.forEach(meta::put);
    long offset = 0;
    for (Entry e : entries) {
      ObjectNode t = root.putObject(e.name);
      t.put("dtype", e.dtype.name());
      var sh = t.putArray("shape");
      for (long d : e.shape) {
        sh.add(d);
      }
      var off = t.putArray("data_offsets");
      off.add(offset);
      offset += e.byteSize();
      off.add(offset);
    }
    byte[] json = root.toString().getBytes(StandardCharsets.UTF_8);
    int padded = (json.length + 7) & ~7; // data starts 8-byte aligned, as the Rust crate pads
    byte[] out = new byte[padded];
    System.arraycopy(json, 0, out, 0, json.length);
    java.util.Arrays.fill(out, json.length, padded, (byte) ' ');
    return out;
  }

  /**
   * Produces and converts chunks on the common pool, up to two per core ahead of the writer, and
   * writes them in order as they complete: generation and disk writes overlap.
   */
  private static void writeConverted(FileChannel ch, Entry e) throws IOException {
    long count = e.count();
    long chunks = (count + CHUNK - 1) / CHUNK;
    int ahead = Math.max(2, Runtime.getRuntime().availableProcessors() * 2);
    ArrayDeque<CompletableFuture<ByteBuffer>> inFlight = new ArrayDeque<>();
    long next = 0;
    while (next < chunks || !inFlight.isEmpty()) {
      while (next < chunks && inFlight.size() < ahead) {
        long first = next * CHUNK;
        inFlight.add(CompletableFuture.supplyAsync(() -> convert(e, first, (int) Math.min(CHUNK, count - first))));
        next++;
      }
      try {
        writeFully(ch, inFlight.removeFirst().join());
      } catch (CompletionException ex) {
        inFlight.forEach(f -> f.cancel(false));
        throw ex.getCause() instanceof RuntimeException r ? r : ex;
      }
    }
  }

  private static ByteBuffer convert(Entry e, long first, int n) {
    float[] vals = new float[n];
    e.source.fill(first, vals, n);
    ByteBuffer b = ByteBuffer.allocate(n * e.dtype.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
    switch (e.dtype) {
      case F32 -> b.asFloatBuffer().put(vals, 0, n);
      case BF16 -> {
        for (int k = 0; k < n; k++) {
          b.putShort(k * 2, DType.toBf16(vals[k]));
        }
      }
      case F16 -> {
        for (int k = 0; k < n; k++) {
          b.putShort(k * 2, Float.floatToFloat16(vals[k]));
        }
      }
    }
    return b;
  }

  private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
    while (b.hasRemaining()) {
      ch.write(b);
    }
  }
}
