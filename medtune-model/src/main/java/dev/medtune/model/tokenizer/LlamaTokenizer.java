package dev.medtune.model.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.Json;
import dev.medtune.model.ModelFormatException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A Llama 3 tokenizer from its Hugging Face {@code tokenizer.json}, run by the Hugging Face
 * tokenizers library itself (Rust, through DJL's JNI binding), so ids are those transformers gives.
 *
 * <p>{@link #encode(String, boolean)} is {@code tokenizer(text, add_special_tokens=addBos)}: special
 * token strings in the text (e.g. {@code <|eot_id|>}) become their ids, and the post-processor adds
 * {@code <|begin_of_text|>} when asked. {@link #decode(int[])} is
 * {@code decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)}: lossless, so
 * {@code decode(encode(text, false)) == text}. The ids of {@code bos_token} and {@code eos_token}
 * come from {@code tokenizer_config.json} next to {@code tokenizer.json}.
 */
public final class LlamaTokenizer implements AutoCloseable {
  private final Path file;
  private final HuggingFaceTokenizer hf;
  private final String[] tokens; // id -> token string as in tokenizer.json (byte-level spelling)
  private final boolean[] special;
  private final Map<String, Integer> ids;
  private final boolean byteLevel;
  private final int bosId;
  private final int[] eosIds;

  private LlamaTokenizer(Path file, HuggingFaceTokenizer hf, String[] tokens, boolean[] special,
      Map<String, Integer> ids, boolean byteLevel, int bosId, int[] eosIds) {
    this.file = file;
    this.hf = hf;
    this.tokens = tokens;
    this.special = special;
    this.ids = ids;
    this.byteLevel = byteLevel;
    this.bosId = bosId;
    this.eosIds = eosIds;
  }

  /**
   * Loads {@code tokenizer.json}, given as the file or as the model folder holding it (with its
   * {@code tokenizer_config.json} and {@code generation_config.json} when present).
   */
  public static LlamaTokenizer load(Path tokenizerJsonOrModelDir) {
    Path file = Files.isDirectory(tokenizerJsonOrModelDir)
        ? tokenizerJsonOrModelDir.resolve("tokenizer.json") : tokenizerJsonOrModelDir;
    JsonNode root = Json.read(file);
    JsonNode model = root.path("model");
    if (!"BPE".equals(model.path("type").asText()) || !model.path("vocab").isObject()) {
      throw new ModelFormatException(file + ": key model.type: expected a BPE model with a vocab"
          + " (Llama 3's tokenizer), found " + model.path("type"));
    }
    Map<String, Integer> ids = new HashMap<>();
    int size = 0;
    for (Map.Entry<String, JsonNode> e : model.path("vocab").properties()) {
      ids.put(e.getKey(), e.getValue().intValue());
      size = Math.max(size, e.getValue().intValue() + 1);
    }
    List<JsonNode> added = new ArrayList<>();
    root.path("added_tokens").forEach(added::add);
    for (JsonNode a : added) {
      size = Math.max(size, a.path("id").intValue() + 1);
    }
    String[] tokens = new String[size];
    boolean[] special = new boolean[size];
    ids.forEach((t, id) -> tokens[id] = t);
    for (JsonNode a : added) {
      int id = a.path("id").intValue();
      tokens[id] = a.path("content").asText();
      special[id] = a.path("special").asBoolean();
      ids.put(tokens[id], id);
    }
    boolean byteLevel = "ByteLevel".equals(root.path("decoder").path("type").asText());

    Path dir = file.toAbsolutePath().getParent();
    int bos = -1;
    Set<Integer> eos = new LinkedHashSet<>();
    Path configFile = dir.resolve("tokenizer_config.json");
    if (Files.isRegularFile(configFile)) {
      JsonNode cfg = Json.read(configFile);
      bos = tokenId(configFile, "bos_token", cfg.get("bos_token"), ids);
      int e = tokenId(configFile, "eos_token", cfg.get("eos_token"), ids);
      if (e >= 0) {
        eos.add(e);
      }
    } else {
      // no tokenizer_config.json: Llama 3's own names
      bos = ids.getOrDefault("<|begin_of_text|>", -1);
      if (ids.containsKey("<|end_of_text|>")) {
        eos.add(ids.get("<|end_of_text|>"));
      }
    }
    Path gen = dir.resolve("generation_config.json");
    if (Files.isRegularFile(gen)) {
      JsonNode g = Json.read(gen).get("eos_token_id");
      if (g != null && g.isIntegralNumber()) {
        eos.add(g.intValue());
      } else if (g != null && g.isArray()) {
        g.forEach(x -> eos.add(x.intValue()));
      }
    }

    NativeLibrary.prepare();
    HuggingFaceTokenizer hf;
    // From the stream, not the folder: DJL would otherwise apply tokenizer_config.json itself
    // (clean_up_tokenization_spaces, model_max_length truncation) and decode would not round-trip.
    try (InputStream in = Files.newInputStream(file)) {
      hf = HuggingFaceTokenizer.newInstance(in, Map.of(
          "addSpecialTokens", "false",
          "truncation", "false",
          "padding", "false",
          "withOverflowingTokens", "false"));
    } catch (IOException e) {
      throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
    } catch (RuntimeException e) {
      throw new ModelFormatException(file + ": the tokenizers library rejects it: " + e.getMessage(), e);
    }
    return new LlamaTokenizer(file, hf, tokens, special, ids, byteLevel, bos,
        eos.stream().mapToInt(Integer::intValue).toArray());
  }

  private static int tokenId(Path file, String key, JsonNode v, Map<String, Integer> ids) {
    if (v == null || v.isNull()) {
      return -1;
    }
    String content = v.isObject() ? v.path("content").asText() : v.asText();
    Integer id = ids.get(content);
    if (id == null) {
      throw new ModelFormatException(file + ": key " + key + ": token \"" + content
          + "\" is not in the tokenizer's vocabulary");
    }
    return id;
  }

  /** Token ids of {@code text}, as transformers' {@code tokenizer(text, add_special_tokens=addBos)}. */
  public int[] encode(String text, boolean addBos) {
    long[] l = hf.encode(text, addBos, false).getIds();
    int[] out = new int[l.length];
    for (int i = 0; i < l.length; i++) {
      out[i] = (int) l[i];
    }
    return out;
  }

  /** The text of {@code ids}, special tokens included, with no clean-up: lossless. */
  public String decode(int[] ids) {
    return decode(ids, false);
  }

  public String decode(int[] ids, boolean skipSpecialTokens) {
    long[] l = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      checkId(ids[i]);
      l[i] = ids[i];
    }
    return hf.decode(l, skipSpecialTokens);
  }

  /** {@code <|begin_of_text|>} (tokenizer_config's {@code bos_token}), or -1. */
  public int bosId() {
    return bosId;
  }

  /** tokenizer_config's {@code eos_token} (for Llama 3.1 Instruct {@code <|eot_id|>}), or -1. */
  public int eosId() {
    return eosIds.length == 0 ? -1 : eosIds[0];
  }

  /** All end ids: {@code eos_token}, then generation_config.json's {@code eos_token_id}s. */
  public int[] eosIds() {
    return eosIds.clone();
  }

  /** Number of ids (model vocabulary plus added tokens). */
  public int vocabSize() {
    return tokens.length;
  }

  /** The id of a token string (byte-level spelling, or a special token's text), or -1. */
  public int tokenId(String token) {
    return ids.getOrDefault(token, -1);
  }

  /** The token string of an id, as tokenizer.json spells it. */
  public String token(int id) {
    checkId(id);
    return tokens[id];
  }

  public boolean isSpecial(int id) {
    checkId(id);
    return special[id];
  }

  public Path path() {
    return file;
  }

  /** A decoder for generated ids, one at a time, that never returns half a UTF-8 character. */
  public StreamingDecoder streamingDecoder() {
    return new StreamingDecoder(this, false);
  }

  /**
   * {@link #streamingDecoder()} that drops special tokens ({@code <|eot_id|>}, the reserved ones)
   * as {@link #decode(int[], boolean)} with {@code skipSpecialTokens} does: what an answer shows.
   */
  public StreamingDecoder streamingDecoder(boolean skipSpecialTokens) {
    return new StreamingDecoder(this, skipSpecialTokens);
  }

  /** The bytes a token stands for (byte-level tokenizers). */
  byte[] tokenBytes(int id) {
    checkId(id);
    return ByteLevel.decode(tokens[id]);
  }

  boolean byteLevel() {
    return byteLevel;
  }

  private void checkId(int id) {
    if (id < 0 || id >= tokens.length || tokens[id] == null) {
      throw new IllegalArgumentException("token id " + id + " is not in the tokenizer " + file
          + " (" + tokens.length + " ids)");
    }
  }

  @Override
  public void close() {
    hf.close();
  }
}
