package dev.medtune.model;

import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.safetensors.SafetensorsFile;
import dev.medtune.model.safetensors.TensorInfo;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A Llama checkpoint folder in Hugging Face layout: {@code config.json} and either
 * {@code model.safetensors} or shards listed by {@code model.safetensors.index.json}
 * ({@code {"weight_map": {"tensor name": "shard file"}}}). Each shard is mapped once; tensors are
 * looked up by their Hugging Face names, e.g. {@code model.layers.0.self_attn.q_proj.weight}.
 */
public final class Checkpoint implements AutoCloseable {
  public static final String SINGLE_FILE = "model.safetensors";
  public static final String INDEX_FILE = "model.safetensors.index.json";

  private final Path dir;
  private final LlamaConfig config;
  private final List<SafetensorsFile> files;
  private final Map<String, TensorInfo> tensors;

  private Checkpoint(Path dir, LlamaConfig config, List<SafetensorsFile> files,
      Map<String, TensorInfo> tensors) {
    this.dir = dir;
    this.config = config;
    this.files = files;
    this.tensors = tensors;
  }

  /** Opens {@code modelDir}; a missing or corrupt part is a one-line {@link ModelFormatException}. */
  public static Checkpoint open(Path modelDir) {
    if (!Files.isDirectory(modelDir)) {
      throw new ModelFormatException(modelDir + ": not a model folder (no such directory)");
    }
    LlamaConfig config = LlamaConfig.read(modelDir.resolve("config.json"));
    List<SafetensorsFile> files = new ArrayList<>();
    Map<String, TensorInfo> tensors = new LinkedHashMap<>();
    try {
      Path index = modelDir.resolve(INDEX_FILE);
      Path single = modelDir.resolve(SINGLE_FILE);
      if (Files.isRegularFile(index)) {
        JsonNode map = Json.read(index).get("weight_map");
        if (map == null || !map.isObject()) {
          throw new ModelFormatException(index + ": key weight_map: expected an object of"
              + " tensor name to shard file");
        }
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
          String shardName = e.getValue().asText();
          if (shardName.contains("/") || shardName.contains("\\")) {
            throw new ModelFormatException(index + ": tensor " + e.getKey() + ": shard \""
                + shardName + "\" is not a file name in the folder");
          }
          SafetensorsFile shard = shards.get(shardName);
          if (shard == null) {
            shard = SafetensorsFile.open(modelDir.resolve(shardName));
            shards.put(shardName, shard);
            files.add(shard);
          }
          if (!shard.has(e.getKey())) {
            throw new ModelFormatException(index + ": tensor " + e.getKey() + " is mapped to "
                + shardName + ", which has no such tensor");
          }
          tensors.put(e.getKey(), shard.tensor(e.getKey()));
        }
      } else if (Files.isRegularFile(single)) {
        SafetensorsFile f = SafetensorsFile.open(single);
        files.add(f);
        tensors.putAll(f.tensors());
      } else {
        throw new ModelFormatException(modelDir + ": no " + SINGLE_FILE + " and no " + INDEX_FILE);
      }
    } catch (RuntimeException e) {
      files.forEach(SafetensorsFile::close);
      throw e;
    }
    return new Checkpoint(modelDir, config, List.copyOf(files), Collections.unmodifiableMap(tensors));
  }

  public Path dir() {
    return dir;
  }

  public LlamaConfig config() {
    return config;
  }

  /** The tensor named as in Hugging Face checkpoints; missing is an error naming dir and tensor. */
  public TensorInfo tensor(String hfName) {
    TensorInfo t = tensors.get(hfName);
    if (t == null) {
      throw new ModelFormatException(dir + ": the checkpoint has no tensor " + hfName);
    }
    return t;
  }

  /** {@link #tensor(String)}, checked to have the shape {@code config.json} implies. */
  public TensorInfo tensor(String hfName, long... expectedShape) {
    TensorInfo info = tensor(hfName);
    if (!java.util.Arrays.equals(info.shape(), expectedShape)) {
      throw new ModelFormatException(dir + ": tensor " + hfName + " has shape "
          + java.util.Arrays.toString(info.shape()) + ", config.json implies "
          + java.util.Arrays.toString(expectedShape));
    }
    return info;
  }

  public boolean has(String hfName) {
    return tensors.containsKey(hfName);
  }

  /** Tensor names in file order (shards in index order). */
  public Set<String> tensorNames() {
    return tensors.keySet();
  }

  /**
   * This checkpoint with some tensors replaced (same names and shapes), e.g. LoRA merged into the
   * projections in memory for {@code generate --adapter}. The view owns no file: close the
   * original, not the view, when done.
   */
  public Checkpoint withTensors(Map<String, TensorInfo> replacements) {
    Map<String, TensorInfo> m = new LinkedHashMap<>(tensors);
    for (Map.Entry<String, TensorInfo> e : replacements.entrySet()) {
      TensorInfo old = m.get(e.getKey());
      if (old == null || !java.util.Arrays.equals(old.shape(), e.getValue().shape())) {
        throw new IllegalArgumentException(dir + ": cannot replace tensor " + e.getKey()
            + (old == null ? ": no such tensor" : ": shape " + java.util.Arrays.toString(e.getValue().shape())
                + " differs from " + java.util.Arrays.toString(old.shape())));
      }
      m.put(e.getKey(), e.getValue());
    }
    return new Checkpoint(dir, config, List.of(), Collections.unmodifiableMap(m));
  }

  /** Unmaps every shard; tensors must not be used afterwards. */
  @Override
  public void close() {
    files.forEach(SafetensorsFile::close);
  }
}
