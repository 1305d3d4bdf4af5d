package dev.medtune.model.lora;

import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Json;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.ModelFormatException;
import dev.medtune.model.RandomInit;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Tensor;
import dev.medtune.model.safetensors.SafetensorsFile;
import dev.medtune.model.safetensors.SafetensorsWriter;
import dev.medtune.model.safetensors.TensorInfo;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * A LoRA merged into its base model: every adapted projection becomes
 * {@code W' = W + scale * B A} (PEFT's {@code merge_and_unload}; Hu et al. 2021, section 4.1),
 * written in Hugging Face layout with the base model's sharding, tensor names and dtypes; every
 * other tensor and file is copied unchanged. The sum is formed in float32 and rounded once to the
 * weight's dtype (PEFT rounds the delta to the weight dtype first, so bf16/f16 results may differ
 * from PEFT's by one unit in the last place; float32 weights agree).
 */
public final class LoraMerge {
  private LoraMerge() {}

  /**
   * Merges the PEFT adapter in {@code adapterDir} into the model in {@code modelDir} and writes
   * the result to {@code outDir} (built in a temporary sibling folder and renamed into place; a
   * non-empty {@code outDir} is refused without {@code overwrite}).
   */
  public static void merge(Path modelDir, Path adapterDir, Path outDir, boolean overwrite, Consumer<String> progress) {
    merge(modelDir, adapterDir, outDir, overwrite, progress, null);
  }

  /**
   * {@link #merge} with the products {@code scale * B A} computed by {@code backend} (its
   * {@code matmul}, a block of {@link #DELTA_ROWS} rows at a time: the CPU backend's threads and
   * vectors, or the GPU), each block copied back and added to the weight row by row as the writer
   * streams it. {@code null}: a plain loop on this thread.
   */
  public static void merge(Path modelDir, Path adapterDir, Path outDir, boolean overwrite, Consumer<String> progress,
      Backend backend) {
    merge(modelDir, adapterDir, outDir, overwrite, progress, backend, DELTA_ROWS);
  }

  /** {@link #merge(Path, Path, Path, boolean, Consumer, Backend)} with {@code blockRows} rows per product. */
  public static void merge(Path modelDir, Path adapterDir, Path outDir, boolean overwrite, Consumer<String> progress,
      Backend backend, int blockRows) {
    if (blockRows < 1) {
      throw new IllegalArgumentException("rows per product: " + blockRows + ", expected at least 1");
    }
    RandomInit.checkDestination(outDir, overwrite);
    Path tmp = outDir.toAbsolutePath().resolveSibling("." + outDir.getFileName() + ".tmp-" + System.nanoTime());
    try (Checkpoint base = Checkpoint.open(modelDir)) {
      LlamaConfig model = base.config();
      LoraAdapter adapter = LoraAdapter.load(adapterDir, model);
      DeltaBlocks blocks = backend == null ? null : new DeltaBlocks(backend, adapter, model, blockRows);
      Files.createDirectories(tmp);
      List<Path> shards = new ArrayList<>();
      try (Stream<Path> s = Files.list(modelDir)) {
        for (Path p : s.sorted().toList()) {
          if (p.getFileName().toString().endsWith(".safetensors")) {
            shards.add(p);
          } else if (Files.isRegularFile(p)) {
            Files.copy(p, tmp.resolve(p.getFileName()));
          }
        }
      }
      List<String> used = usedShards(modelDir);
      for (Path shard : shards) {
        if (!used.contains(shard.getFileName().toString())) {
          continue; // a stray file the checkpoint does not reference
        }
        progress.accept("merging " + shard.getFileName());
        try (SafetensorsFile f = SafetensorsFile.open(shard)) {
          SafetensorsWriter w = new SafetensorsWriter();
          f.metadata().forEach(w::metadata);
          for (TensorInfo t : f.tensors().values()) {
            LoraTarget target = adaptedTarget(t.name(), adapter);
            if (target == null) {
              w.add(t.name(), t.dtype(), t.shape(), t.data());
            } else {
              int layer = layerOf(t.name());
              w.add(t.name(), t.dtype(), t.shape(), blocks == null
                  ? merged(t, adapter, layer, target, model) : blocks.merged(t, layer, target));
            }
          }
          w.write(tmp.resolve(shard.getFileName()));
        }
      }
      if (Files.exists(outDir)) {
        Path old = outDir.toAbsolutePath().resolveSibling("." + outDir.getFileName() + ".old-" + System.nanoTime());
        Files.move(outDir, old);
        Files.move(tmp, outDir);
        deleteTree(old);
      } else {
        Files.move(tmp, outDir);
      }
      tmp = null;
    } catch (IOException e) {
      throw new UncheckedIOException(outDir + ": cannot write the merged model: " + e.getMessage(), e);
    } finally {
      if (tmp != null) {
        deleteTree(tmp);
      }
    }
  }

  /** The name of the base weight {@code target} adapts in {@code layer}. */
  public static String weightName(int layer, LoraTarget target) {
    return "model.layers." + layer + "." + target.modulePath() + ".weight";
  }

  /**
   * The base checkpoint with every adapted projection replaced by its merged weight (the same
   * {@code W + scale * B A}, rounded once), held in memory in the weight's dtype, for
   * {@code generate --adapter}; the other tensors stay mapped. Close {@code base}, not the result.
   */
  public static Checkpoint inMemory(Checkpoint base, LoraAdapter adapter) {
    java.util.Map<String, TensorInfo> replaced = new java.util.LinkedHashMap<>();
    LlamaConfig model = base.config();
    for (int l = 0; l < model.numLayers(); l++) {
      for (LoraTarget t : adapter.config().targets()) {
        TensorInfo w = base.tensor(weightName(l, t));
        SafetensorsWriter.FloatSource src = merged(w, adapter, l, t, model);
        long count = w.elementCount();
        java.lang.foreign.MemorySegment seg = java.lang.foreign.Arena.ofAuto().allocate(count * w.dtype().byteSize(), 8);
        int chunk = 1 << 16;
        java.util.stream.IntStream.range(0, (int) ((count + chunk - 1) / chunk)).parallel().forEach(c -> {
          long first = (long) c * chunk;
          int n = (int) Math.min(chunk, count - first);
          float[] buf = new float[n];
          src.fill(first, buf, n);
          for (int i = 0; i < n; i++) {
            long e = first + i;
            switch (w.dtype()) {
              case F32 -> seg.set(FLOAT_LE, e * 4, buf[i]);
              case BF16 -> seg.set(SHORT_LE, e * 2, dev.medtune.model.safetensors.DType.toBf16(buf[i]));
              case F16 -> seg.set(SHORT_LE, e * 2, Float.floatToFloat16(buf[i]));
            }
          }
        });
        replaced.put(w.name(), new TensorInfo(w.name(), w.dtype(), w.shape(), seg));
      }
    }
    return base.withTensors(replaced);
  }

  private static final java.lang.foreign.ValueLayout.OfShort SHORT_LE =
      java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
  private static final java.lang.foreign.ValueLayout.OfFloat FLOAT_LE =
      java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);

  /** W + scale * B A for one projection, computed chunk by chunk as the writer asks. */
  private static SafetensorsWriter.FloatSource merged(TensorInfo w, LoraAdapter adapter, int layer, LoraTarget t,
      LlamaConfig model) {
    int in = t.inFeatures(model);
    int out = t.outFeatures(model);
    checkShape(w, out, in);
    int r = adapter.config().r();
    float scale = (float) adapter.config().scale();
    float[] a = adapter.a(layer, t);
    float[] b = adapter.b(layer, t);
    return (first, dst, n) -> {
      for (int e = 0; e < n; e++) {
        long idx = first + e;
        int o = (int) (idx / in);
        int j = (int) (idx % in);
        float sum = 0;
        for (int k = 0; k < r; k++) {
          sum += b[o * r + k] * a[k * in + j];
        }
        dst[e] = w.getFloat(idx) + scale * sum;
      }
    };
  }

  private static void checkShape(TensorInfo w, int out, int in) {
    if (w.shape().length != 2 || w.shape()[0] != out || w.shape()[1] != in) {
      throw new ModelFormatException(w.name() + ": shape " + java.util.Arrays.toString(w.shape())
          + ", expected [" + out + ", " + in + "] from config.json");
    }
  }

  /** Rows of {@code scale * B A} a backend computes at once (bounded host and device memory). */
  static final int DELTA_ROWS = 512;

  /**
   * {@code scale * B A} by a backend, {@link #DELTA_ROWS} rows at a time, into buffers planned once
   * for the widest projection (a backend frees nothing until it closes).
   */
  private static final class DeltaBlocks {
    private final Backend backend;
    private final LoraAdapter adapter;
    private final LlamaConfig model;
    private final int r;
    private final float scale;
    private final Tensor aBuf;
    private final Tensor bBuf;
    private final Tensor deltaBuf;
    private final float[] host;
    private final int blockRows;
    private Object owner; // the Source whose block host holds

    DeltaBlocks(Backend backend, LoraAdapter adapter, LlamaConfig model, int blockRows) {
      this.blockRows = blockRows;
      this.backend = backend;
      this.adapter = adapter;
      this.model = model;
      this.r = adapter.config().r();
      this.scale = (float) adapter.config().scale();
      int maxIn = 1;
      for (LoraTarget t : adapter.config().targets()) {
        maxIn = Math.max(maxIn, t.inFeatures(model));
      }
      aBuf = backend.allocate((long) r * maxIn);
      bBuf = backend.allocate((long) blockRows * r);
      deltaBuf = backend.allocate((long) blockRows * maxIn);
      host = new float[blockRows * maxIn];
    }

    SafetensorsWriter.FloatSource merged(TensorInfo w, int layer, LoraTarget t) {
      int in = t.inFeatures(model);
      int out = t.outFeatures(model);
      checkShape(w, out, in);
      return new Source(w, adapter.a(layer, t), adapter.b(layer, t), in, out);
    }

    /** One projection's merged elements; the block in {@code host} is this source's while {@code owner == this}. */
    private final class Source implements SafetensorsWriter.FloatSource {
      private final TensorInfo w;
      private final float[] a;
      private final float[] b;
      private final int in;
      private final int out;
      private int first = -1; // the first row of the block in host

      Source(TensorInfo w, float[] a, float[] b, int in, int out) {
        this.w = w;
        this.a = a;
        this.b = b;
        this.in = in;
        this.out = out;
      }

      @Override
      public void fill(long from, float[] dst, int n) {
        for (int e = 0; e < n; ) {
          long idx = from + e;
          int o = (int) (idx / in);
          if (owner != this || o < first || o >= first + blockRows) {
            int rows = Math.min(blockRows, out - o);
            backend.copyFromHost(a, aBuf, 0);
            backend.copyFromHost(java.util.Arrays.copyOfRange(b, o * r, (o + rows) * r), bBuf, 0);
            backend.matmul(deltaBuf, bBuf, false, aBuf, false, rows, in, r, scale, 0f);
            backend.copyToHost(deltaBuf, 0, host, rows * in);
            owner = this;
            first = o;
          }
          int at = (int) (idx - (long) first * in);
          int upTo = Math.min(n - e, Math.min(blockRows, out - first) * in - at);
          for (int i = 0; i < upTo; i++) {
            dst[e + i] = w.getFloat(idx + i) + host[at + i];
          }
          e += upTo;
        }
      }
    }
  }

  private static LoraTarget adaptedTarget(String name, LoraAdapter adapter) {
    if (!name.startsWith("model.layers.") || !name.endsWith(".weight")) {
      return null;
    }
    for (LoraTarget t : adapter.config().targets()) {
      if (name.endsWith("." + t.modulePath() + ".weight")) {
        return t;
      }
    }
    return null;
  }

  private static int layerOf(String name) {
    String rest = name.substring("model.layers.".length());
    return Integer.parseInt(rest.substring(0, rest.indexOf('.')));
  }

  private static List<String> usedShards(Path modelDir) {
    Path index = modelDir.resolve(Checkpoint.INDEX_FILE);
    if (!Files.isRegularFile(index)) {
      return List.of(Checkpoint.SINGLE_FILE);
    }
    List<String> out = new ArrayList<>();
    JsonNode map = Json.read(index).path("weight_map");
    map.forEach(v -> {
      if (!out.contains(v.asText())) {
        out.add(v.asText());
      }
    });
    return out;
  }

  private static void deleteTree(Path root) {
    try (Stream<Path> s = Files.walk(root)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> {
        try {
          Files.deleteIfExists(p);
        } catch (IOException ignored) {
          // best effort: the name marks it temporary
        }
      });
    } catch (IOException ignored) {
      // best effort
    }
  }
}
