package dev.medtune.model.lora;

import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Json;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.ModelFormatException;
import dev.medtune.model.RandomInit;
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
import dev.medtune.model.safetensors.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.IntStream;

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
    RandomInit.checkDestination(outDir, overwrite);
    Path tmp = outDir.toAbsolutePath().resolveSibling("." + outDir.getFileName() + ".tmp-" + System.nanoTime());
    try (Checkpoint base = Checkpoint.open(modelDir)) {
      LlamaConfig model = base.config();
      LoraAdapter adapter = LoraAdapter.load(adapterDir, model);
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
              w.add(t.name(), t.dtype(), t.shape(), merged(t, adapter, layer, target, model));
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

  /** W + scale * B A for one projection, computed chunk by chunk as the writer asks. */
  private static SafetensorsWriter.FloatSource merged(TensorInfo w, LoraAdapter adapter, int layer, LoraTarget t,
      LlamaConfig model) {
    int in = t.inFeatures(model);
    int out = t.outFeatures(model);
    if (w.shape().length != 2 || w.shape()[0] != out || w.shape()[1] != in) {
      throw new ModelFormatException(w.name() + ": shape " + java.util.Arrays.toString(w.shape())
          + ", expected [" + out + ", " + in + "] from config.json");
    }
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

  // --- from branch backward: the in-memory merge of generate --adapter and medtune merge's write ---

  private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
  private static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

  /** The name of the base weight adapted by {@code target} in {@code layer}. */
  public static String weightName(int layer, LoraTarget target) {
    return "model.layers." + layer + "." + target.modulePath() + ".weight";
  }

  /** Elements {@code [first, first + n)} of the merged weight, row-major, into {@code dst}. */
  static void fill(TensorInfo w, float[] a, float[] b, int r, int in, float scale, long first, float[] dst, int n) {
    for (int i = 0; i < n; i++) {
      long e = first + i;
      int row = (int) (e / in);
      int col = (int) (e % in);
      float d = 0f;
      for (int k = 0; k < r; k++) {
        d += b[row * r + k] * a[k * in + col];
      }
      dst[i] = w.getFloat(e) + scale * d;
    }
  }

  private static SafetensorsWriter.FloatSource source(Checkpoint base, LoraAdapter adapter, String name) {
    int layers = base.config().numLayers();
    for (int l = 0; l < layers; l++) {
      for (LoraTarget t : adapter.config().targets()) {
        if (weightName(l, t).equals(name)) {
          TensorInfo w = base.tensor(name);
          float[] a = adapter.a(l, t);
          float[] b = adapter.b(l, t);
          int r = adapter.config().r();
          int in = t.inFeatures(base.config());
          float s = (float) adapter.config().scale();
          return (first, dst, n) -> fill(w, a, b, r, in, s, first, dst, n);
        }
      }
    }
    return null;
  }

  /**
   * The base checkpoint with every adapted projection replaced by its merged weight, held in
   * memory in the base dtype (for {@code generate --adapter}); the other tensors stay mapped.
   */
  public static Checkpoint inMemory(Checkpoint base, LoraAdapter adapter) {
    Map<String, TensorInfo> merged = new LinkedHashMap<>();
    for (int l = 0; l < base.config().numLayers(); l++) {
      for (LoraTarget t : adapter.config().targets()) {
        String name = weightName(l, t);
        TensorInfo w = base.tensor(name);
        SafetensorsWriter.FloatSource src = source(base, adapter, name);
        long count = w.elementCount();
        MemorySegment seg = Arena.ofAuto().allocate(count * w.dtype().byteSize(), 8);
        int chunk = 1 << 16;
        IntStream.range(0, (int) ((count + chunk - 1) / chunk)).parallel().forEach(c -> {
          long first = (long) c * chunk;
          int n = (int) Math.min(chunk, count - first);
          float[] buf = new float[n];
          src.fill(first, buf, n);
          for (int i = 0; i < n; i++) {
            long e = first + i;
            switch (w.dtype()) {
              case F32 -> seg.set(FLOAT_LE, e * 4, buf[i]);
              case BF16 -> seg.set(SHORT_LE, e * 2, DType.toBf16(buf[i]));
              case F16 -> seg.set(SHORT_LE, e * 2, Float.floatToFloat16(buf[i]));
            }
          }
        });
        merged.put(name, new TensorInfo(name, w.dtype(), w.shape(), seg));
      }
    }
    return base.withTensors(merged);
  }

  /**
   * Writes the merged model to {@code outDir} in Hugging Face layout: the same safetensors files
   * (and index) as the base, every tensor in its dtype, the adapted projections merged; every
   * other file of the base folder (config.json, generation_config.json, tokenizer files) copied.
   * Written into a temporary folder and renamed; an existing non-empty {@code outDir} needs
   * {@code overwrite}.
   */
  public static void write(Checkpoint base, Path modelDir, LoraAdapter adapter, Path outDir, boolean overwrite) {
    RandomInit.checkDestination(outDir, overwrite);
    Path tmp = outDir.resolveSibling(outDir.getFileName() + ".tmp-merge");
    try {
      deleteTreeQuietly(tmp);
      Files.createDirectories(tmp);
      List<Path> files;
      try (Stream<Path> s = Files.list(modelDir)) {
        files = new ArrayList<>(s.filter(Files::isRegularFile).sorted().toList());
      }
      for (Path f : files) {
        String n = f.getFileName().toString();
        if (n.endsWith(".safetensors")) {
          try (var sf = dev.medtune.model.safetensors.SafetensorsFile.open(f)) {
            SafetensorsWriter w = new SafetensorsWriter().metadata("medtune_merge",
                "W + s*B@A, lora r=" + adapter.config().r() + " alpha=" + adapter.config().alpha());
            for (TensorInfo t : sf.tensors().values()) {
              SafetensorsWriter.FloatSource src = source(base, adapter, t.name());
              if (src == null) {
                w.add(t.name(), t.dtype(), t.shape(), t.data());
              } else {
                w.add(t.name(), t.dtype(), t.shape(), src);
              }
            }
            w.write(tmp.resolve(n));
          }
        } else {
          Files.copy(f, tmp.resolve(n), StandardCopyOption.REPLACE_EXISTING);
        }
      }
      if (Files.exists(outDir)) {
        deleteTreeQuietly(outDir);
      }
      Files.move(tmp, outDir, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      throw new UncheckedIOException(outDir + ": cannot write the merged model: " + e.getMessage(), e);
    }
  }

  private static void deleteTreeQuietly(Path p) throws IOException {
    if (!Files.exists(p)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.delete(q);
      }
    }
  }
}
