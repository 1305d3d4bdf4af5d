package dev.medtune.model.lora;

import dev.medtune.model.Checkpoint;
import dev.medtune.model.RandomInit;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.SafetensorsWriter;
import dev.medtune.model.safetensors.TensorInfo;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;
import java.util.stream.Stream;

/**
 * Folds a LoRA adapter into the base weights, {@code W' = W + s * B A} (PEFT's
 * {@code merge_and_unload}), in the base dtype: the sum is made in float32 and rounded once to
 * the weight's dtype (bf16 to nearest even), where PEFT rounds the delta first and then the sum.
 */
public final class LoraMerge {
  private LoraMerge() {}

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
      deleteTree(tmp);
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
        deleteTree(outDir);
      }
      Files.move(tmp, outDir, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      throw new UncheckedIOException(outDir + ": cannot write the merged model: " + e.getMessage(), e);
    }
  }

  private static void deleteTree(Path p) throws IOException {
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
