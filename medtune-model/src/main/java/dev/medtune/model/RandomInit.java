package dev.medtune.model;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.SafetensorsWriter;
import dev.medtune.model.tokenizer.ByteLevelBpe;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * Writes a randomly initialised Llama model in Hugging Face layout: {@code config.json},
 * {@code generation_config.json}, {@code tokenizer.json}, {@code tokenizer_config.json} and the
 * weights ({@code model.safetensors}, or shards of at most 5 GB with
 * {@code model.safetensors.index.json}, as transformers' {@code save_pretrained} does).
 *
 * <p>Initialisation follows transformers' {@code LlamaPreTrainedModel._init_weights}: linear and
 * embedding weights from normal(0, {@code initializer_range} = 0.02), RMSNorm weights 1. Values come
 * from {@link SplittableRandom} streams seeded by (seed, tensor, chunk), so the result depends only
 * on the seed, not on the number of threads, and chunks are generated on all cores while earlier
 * chunks are written: the model is never held in memory.
 *
 * <p>The folder is written next to its destination under a temporary name and renamed into place
 * when complete; an existing non-empty destination is replaced only when {@code overwrite} is set.
 */
public final class RandomInit {
  /** transformers' default {@code max_shard_size="5GB"} (decimal gigabytes). */
  public static final long MAX_SHARD_BYTES = 5_000_000_000L;

  public static final double INITIALIZER_RANGE = 0.02;

  /** Merges medtune's tokenizer learns at most (the tiny preset has room for exactly this many). */
  public static final int MAX_MERGES = 512;

  private RandomInit() {}

  /** What was written. */
  public record Result(Path dir, LlamaConfig config, List<String> files, long parameters, long bytes) {}

  record Spec(String name, long[] shape, boolean ones) {
    long count() {
      long n = 1;
      for (long d : shape) {
        n *= d;
      }
      return n;
    }
  }

  /**
   * Writes {@code preset} to {@code outDir}. {@code tokenizerFile} (optional) is a
   * {@code tokenizer.json} to copy in (with the {@code tokenizer_config.json} beside it, if any);
   * without it medtune's byte-level tokenizer is written, its special tokens at the preset's ids.
   */
  public static Result write(ModelPresets.Preset preset, Path outDir, long seed, Path tokenizerFile,
      boolean overwrite, Consumer<String> progress) {
    return write(preset, outDir, seed, tokenizerFile, overwrite, progress, MAX_SHARD_BYTES);
  }

  static Result write(ModelPresets.Preset preset, Path outDir, long seed, Path tokenizerFile,
      boolean overwrite, Consumer<String> progress, long maxShardBytes) {
    checkDestination(outDir, overwrite);
    LlamaConfig config = preset.config();
    ObjectNode tokenizerJson = null;
    ObjectNode tokenizerConfig = null;
    int eot;
    if (tokenizerFile != null) {
      try (LlamaTokenizer tok = LlamaTokenizer.load(tokenizerFile)) {
        int bos = requireToken(tok, ByteLevelBpe.BOS);
        int eos = requireToken(tok, ByteLevelBpe.EOS);
        eot = tok.tokenId(ByteLevelBpe.EOT);
        int vocab = config.vocabSize();
        if (preset.name().equals("tiny")) {
          vocab = tok.vocabSize(); // tiny takes the tokenizer's vocabulary
        } else if (tok.vocabSize() > vocab) {
          throw new IllegalArgumentException(tokenizerFile + ": the tokenizer has " + tok.vocabSize()
              + " ids, more than the " + vocab + " of preset " + preset.name());
        }
        config = withTokens(config, vocab, bos, eos);
      }
    } else {
      var merges = ByteLevelBpe.learnMerges(ByteLevelBpe.medicalCorpus(),
          Math.min(MAX_MERGES, preset.firstSpecialId() - 256));
      tokenizerJson = ByteLevelBpe.tokenizerJson(merges, preset.firstSpecialId());
      tokenizerConfig = ByteLevelBpe.tokenizerConfig(preset.firstSpecialId(),
          config.maxPositionEmbeddings());
      eot = preset.firstSpecialId() + 9;
    }
    DType dtype = preset.dtype();

    Path parent = outDir.toAbsolutePath().getParent();
    Path tmp;
    try {
      Files.createDirectories(parent);
      tmp = Files.createDirectory(Json.tempSibling(outDir));
    } catch (IOException e) {
      throw new UncheckedIOException(outDir + ": cannot create: " + e.getMessage(), e);
    }
    try {
      config.write(tmp.resolve("config.json"));
      ObjectNode gen = Json.MAPPER.createObjectNode();
      gen.put("bos_token_id", config.bosTokenId());
      gen.put("do_sample", true);
      var eosList = gen.putArray("eos_token_id");
      for (int e : config.eosTokenIds()) {
        eosList.add(e);
      }
      if (eot >= 0 && !config.isEos(eot)) {
        eosList.add(eot);
      }
      gen.put("temperature", 0.6);
      gen.put("top_p", 0.9);
      Json.write(tmp.resolve("generation_config.json"), gen);
      if (tokenizerFile != null) {
        copy(tokenizerFile, tmp.resolve("tokenizer.json"));
        Path cfg = tokenizerFile.toAbsolutePath().resolveSibling("tokenizer_config.json");
        if (Files.isRegularFile(cfg)) {
          copy(cfg, tmp.resolve("tokenizer_config.json"));
        } else {
          ObjectNode c = Json.MAPPER.createObjectNode();
          c.put("bos_token", ByteLevelBpe.BOS);
          c.put("clean_up_tokenization_spaces", false);
          c.put("eos_token", ByteLevelBpe.EOS);
          c.put("model_max_length", config.maxPositionEmbeddings());
          c.put("tokenizer_class", "PreTrainedTokenizerFast");
          Json.write(tmp.resolve("tokenizer_config.json"), c);
        }
      } else {
        Json.write(tmp.resolve("tokenizer.json"), tokenizerJson);
        Json.write(tmp.resolve("tokenizer_config.json"), tokenizerConfig);
      }

      List<Spec> specs = tensors(config);
      List<List<Integer>> shards = planShards(specs, dtype, maxShardBytes);
      List<String> files = new ArrayList<>();
      Map<String, String> weightMap = new LinkedHashMap<>();
      long total = 0;
      long params = 0;
      String how = "preset=" + preset.name() + " seed=" + seed + " init=normal(0," + INITIALIZER_RANGE
          + ") norms=1";
      for (int s = 0; s < shards.size(); s++) {
        String file = shards.size() == 1 ? Checkpoint.SINGLE_FILE
            : String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
        SafetensorsWriter w = new SafetensorsWriter().metadata("medtune_init", how);
        for (int t : shards.get(s)) {
          Spec spec = specs.get(t);
          if (spec.ones) {
            w.add(spec.name, dtype, spec.shape, (first, dst, n) -> java.util.Arrays.fill(dst, 0, n, 1f));
          } else {
            long tensorSeed = mix(seed, t);
            w.add(spec.name, dtype, spec.shape, (first, dst, n) -> {
              SplittableRandom r = new SplittableRandom(mix(tensorSeed, first));
              for (int i = 0; i < n; i++) {
                dst[i] = (float) (r.nextGaussian() * INITIALIZER_RANGE);
              }
            });
          }
          weightMap.put(spec.name, file);
          params += spec.count();
        }
        w.write(tmp.resolve(file));
        total += w.dataBytes();
        files.add(file);
        progress.accept("wrote " + file + " (" + size(w.dataBytes()) + ")");
      }
      if (shards.size() > 1) {
        ObjectNode index = Json.MAPPER.createObjectNode();
        index.putObject("metadata").put("total_size", total);
        ObjectNode wm = index.putObject("weight_map");
        weightMap.forEach(wm::put);
        Json.write(tmp.resolve(Checkpoint.INDEX_FILE), index);
        files.add(Checkpoint.INDEX_FILE);
      }
      replace(tmp, outDir);
      tmp = null;
      return new Result(outDir, config, files, params, total);
    } finally {
      if (tmp != null) {
        deleteTree(tmp);
      }
    }
  }

  /** Bytes for people: "1.3 MB", "4.97 GB". */
  public static String size(long bytes) {
    return bytes >= 1e9 ? String.format("%.2f GB", bytes / 1e9) : String.format("%.1f MB", bytes / 1e6);
  }

  private static int requireToken(LlamaTokenizer tok, String token) {
    int id = tok.tokenId(token);
    if (id < 0) {
      throw new IllegalArgumentException(tok.path() + ": the tokenizer has no " + token
          + " token; init-model needs a Llama 3 tokenizer");
    }
    return id;
  }

  private static LlamaConfig withTokens(LlamaConfig c, int vocab, int bos, int eos) {
    return new LlamaConfig(c.hiddenSize(), c.intermediateSize(), c.numLayers(), c.numHeads(),
        c.numKvHeads(), c.headDim(), vocab, c.maxPositionEmbeddings(), c.rmsNormEps(), c.ropeTheta(),
        c.ropeScaling(), c.tieWordEmbeddings(), bos, new int[] {eos}, c.torchDtype());
  }

  /** The tensors of a Llama checkpoint, Hugging Face names and shapes, in state_dict order. */
  static List<Spec> tensors(LlamaConfig c) {
    long h = c.hiddenSize();
    long q = (long) c.numHeads() * c.headDim();
    long kv = c.kvDim();
    long f = c.intermediateSize();
    List<Spec> out = new ArrayList<>();
    out.add(new Spec("model.embed_tokens.weight", new long[] {c.vocabSize(), h}, false));
    for (int l = 0; l < c.numLayers(); l++) {
      String p = "model.layers." + l + ".";
      out.add(new Spec(p + "self_attn.q_proj.weight", new long[] {q, h}, false));
      out.add(new Spec(p + "self_attn.k_proj.weight", new long[] {kv, h}, false));
      out.add(new Spec(p + "self_attn.v_proj.weight", new long[] {kv, h}, false));
      out.add(new Spec(p + "self_attn.o_proj.weight", new long[] {h, q}, false));
      out.add(new Spec(p + "mlp.gate_proj.weight", new long[] {f, h}, false));
      out.add(new Spec(p + "mlp.up_proj.weight", new long[] {f, h}, false));
      out.add(new Spec(p + "mlp.down_proj.weight", new long[] {h, f}, false));
      out.add(new Spec(p + "input_layernorm.weight", new long[] {h}, true));
      out.add(new Spec(p + "post_attention_layernorm.weight", new long[] {h}, true));
    }
    out.add(new Spec("model.norm.weight", new long[] {h}, true));
    if (!c.tieWordEmbeddings()) {
      out.add(new Spec("lm_head.weight", new long[] {c.vocabSize(), h}, false));
    }
    return out;
  }

  /** Tensor indices per shard: in order, a new shard when the next tensor would pass the limit. */
  static List<List<Integer>> planShards(List<Spec> specs, DType dtype, long maxShardBytes) {
    List<List<Integer>> shards = new ArrayList<>();
    List<Integer> cur = new ArrayList<>();
    long bytes = 0;
    for (int i = 0; i < specs.size(); i++) {
      long b = specs.get(i).count() * dtype.byteSize();
      if (!cur.isEmpty() && bytes + b > maxShardBytes) {
        shards.add(cur);
        cur = new ArrayList<>();
        bytes = 0;
      }
      cur.add(i);
      bytes += b;
    }
    shards.add(cur);
    return shards;
  }

  /** SplitMix64's finaliser over two words: well-spread seeds for neighbouring inputs. */
  static long mix(long a, long b) {
    long z = a * 0x9E3779B97F4A7C15L + b + 0x632BE59BD9B4E019L;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  /** Refuses a destination that is a file, or a non-empty folder without {@code overwrite}. */
  public static void checkDestination(Path outDir, boolean overwrite) {
    if (Files.exists(outDir) && !Files.isDirectory(outDir)) {
      throw new IllegalArgumentException(outDir + " exists and is not a folder");
    }
    if (!overwrite && Files.isDirectory(outDir)) {
      try (Stream<Path> s = Files.list(outDir)) {
        if (s.findAny().isPresent()) {
          throw new IllegalArgumentException(outDir + " exists and is not empty; pass --overwrite"
              + " to replace it");
        }
      } catch (IOException e) {
        throw new UncheckedIOException(outDir + ": cannot list: " + e.getMessage(), e);
      }
    }
  }

  private static void copy(Path from, Path to) {
    try {
      Files.copy(from, to);
    } catch (IOException e) {
      throw new UncheckedIOException(from + ": cannot copy: " + e.getMessage(), e);
    }
  }

  /** Renames the finished folder into place; an old folder is moved aside first, then deleted. */
  private static void replace(Path finished, Path outDir) {
    try {
      Path old = null;
      if (Files.exists(outDir)) {
        old = finished.resolveSibling("." + outDir.getFileName() + ".old-" + System.nanoTime());
        Files.move(outDir, old);
      }
      Files.move(finished, outDir);
      if (old != null) {
        deleteTree(old);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(outDir + ": cannot move the new model into place: "
          + e.getMessage(), e);
    }
  }

  static void deleteTree(Path root) {
    try (Stream<Path> s = Files.walk(root)) {
      s.sorted(Comparator.reverseOrder()).forEach(p -> {
        try {
          Files.deleteIfExists(p);
        } catch (IOException ignored) {
          // best effort; the folder is named as temporary
        }
      });
    } catch (IOException ignored) {
      // best effort
    }
  }
}
