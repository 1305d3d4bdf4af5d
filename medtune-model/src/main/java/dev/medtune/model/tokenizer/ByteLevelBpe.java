package dev.medtune.model.tokenizer;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.medtune.model.Json;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * medtune's own byte-level BPE tokenizer in Hugging Face {@code tokenizer.json} form, for models
 * made by {@code init-model}: Llama 3's pre-tokenizer (the same split regex, then ByteLevel), the
 * 256 byte tokens, merges learned from a small medical text (Sennrich et al. 2016, "Neural Machine
 * Translation of Rare Words with Subword Units", the byte-level variant of GPT-2, Radford et al.
 * 2019), and Llama 3.1's 256 special tokens in Llama 3.1's order from {@code firstSpecialId}.
 * Every text encodes (unknown text falls back to bytes) and decodes back exactly.
 */
public final class ByteLevelBpe {
  /** Llama 3's pre-tokenizer split pattern, as in its tokenizer.json. */
  public static final String LLAMA3_SPLIT =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
          + "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

  /** The named special tokens of Llama 3.1 at their offsets from 128000; the rest are reserved. */
  static final Map<Integer, String> LLAMA31_SPECIAL = Map.of(
      0, "<|begin_of_text|>",
      1, "<|end_of_text|>",
      4, "<|finetune_right_pad_id|>",
      6, "<|start_header_id|>",
      7, "<|end_header_id|>",
      8, "<|eom_id|>",
      9, "<|eot_id|>",
      10, "<|python_tag|>");

  public static final int SPECIAL_COUNT = 256;
  public static final String BOS = "<|begin_of_text|>";
  public static final String EOS = "<|end_of_text|>";
  public static final String EOT = "<|eot_id|>";

  private ByteLevelBpe() {}

  /** Content of Llama 3.1's special token at {@code offset} (0..255) from the first special id. */
  public static String specialToken(int offset) {
    String named = LLAMA31_SPECIAL.get(offset);
    if (named != null) {
      return named;
    }
    // Llama 3.1 numbers the reserved tokens 0, 1 at offsets 2, 3, then 2.. from offset 5 on
    int reserved = offset < 4 ? offset - 2 : offset == 5 ? 2 : offset - 8;
    return "<|reserved_special_token_" + reserved + "|>";
  }

  /** The medical text medtune learns its merges from (a resource of this module). */
  public static String medicalCorpus() {
    try (InputStream in = ByteLevelBpe.class.getResourceAsStream("medical-corpus.txt")) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Learns up to {@code maxMerges} merges: repeatedly joins the most frequent adjacent pair of
   * symbols within pre-tokens (ties broken by the pair's text, so the result is deterministic);
   * stops early when no pair occurs twice.
   */
  public static List<String[]> learnMerges(String corpus, int maxMerges) {
    Matcher m = Pattern.compile(LLAMA3_SPLIT, Pattern.UNICODE_CHARACTER_CLASS).matcher(corpus);
    Map<String, Integer> wordCounts = new TreeMap<>();
    while (m.find()) {
      wordCounts.merge(ByteLevel.encode(m.group().getBytes(StandardCharsets.UTF_8)), 1, Integer::sum);
    }
    // symbols as ints, pairs as longs: the whole learning takes milliseconds
    List<String> symbols = new ArrayList<>();
    Map<String, Integer> symbolIds = new HashMap<>();
    List<int[]> words = new ArrayList<>();
    List<Integer> lengths = new ArrayList<>();
    List<Integer> counts = new ArrayList<>();
    wordCounts.forEach((w, c) -> {
      int[] word = w.codePoints().map(cp -> symbolIds.computeIfAbsent(
          new String(Character.toChars(cp)), k -> {
            symbols.add(k);
            return symbols.size() - 1;
          })).toArray();
      words.add(word);
      lengths.add(word.length);
      counts.add(c);
    });
    List<String[]> merges = new ArrayList<>();
    while (merges.size() < maxMerges) {
      Map<Long, Integer> pairs = new HashMap<>();
      for (int w = 0; w < words.size(); w++) {
        int[] s = words.get(w);
        for (int i = 0; i + 1 < lengths.get(w); i++) {
          pairs.merge(((long) s[i] << 32) | s[i + 1], counts.get(w), Integer::sum);
        }
      }
      long best = -1;
      int bestCount = 1;
      String bestText = null;
      for (Map.Entry<Long, Integer> e : pairs.entrySet()) {
        int c = e.getValue();
        if (c < bestCount) {
          continue;
        }
        long k = e.getKey();
        String text = symbols.get((int) (k >>> 32)) + " " + symbols.get((int) k);
        if (c > bestCount || bestText == null || text.compareTo(bestText) < 0) {
          best = k;
          bestCount = c;
          bestText = text;
        }
      }
      if (bestText == null) {
        break;
      }
      int a = (int) (best >>> 32);
      int b = (int) best;
      merges.add(new String[] {symbols.get(a), symbols.get(b)});
      String joinedText = symbols.get(a) + symbols.get(b);
      Integer joined = symbolIds.get(joinedText);
      if (joined == null) {
        symbols.add(joinedText);
        joined = symbols.size() - 1;
        symbolIds.put(joinedText, joined);
      }
      for (int w = 0; w < words.size(); w++) {
        int[] s = words.get(w);
        int n = lengths.get(w);
        int out = 0;
        for (int i = 0; i < n; i++) {
          if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            s[out++] = joined;
            i++;
          } else {
            s[out++] = s[i];
          }
        }
        lengths.set(w, out);
      }
    }
    return merges;
  }

  /**
   * {@code tokenizer.json}: ids 0..255 the bytes (GPT-2 order), then one id per merge, then unused
   * placeholder entries up to {@code firstSpecialId} (never produced: BPE only yields merge
   * results), then the 256 special tokens.
   */
  public static ObjectNode tokenizerJson(List<String[]> merges, int firstSpecialId) {
    if (firstSpecialId < 256 + merges.size()) {
      throw new IllegalArgumentException("first special id " + firstSpecialId + " is below the "
          + (256 + merges.size()) + " byte and merge tokens");
    }
    ObjectNode root = Json.MAPPER.createObjectNode();
    root.put("version", "1.0");
    root.putNull("truncation");
    root.putNull("padding");
    ArrayNode added = root.putArray("added_tokens");
    for (int i = 0; i < SPECIAL_COUNT; i++) {
      ObjectNode t = added.addObject();
      t.put("id", firstSpecialId + i);
      t.put("content", specialToken(i));
      t.put("single_word", false);
      t.put("lstrip", false);
      t.put("rstrip", false);
      t.put("normalized", false);
      t.put("special", true);
    }
    root.putNull("normalizer");
    ObjectNode pre = root.putObject("pre_tokenizer");
    pre.put("type", "Sequence");
    ArrayNode pres = pre.putArray("pretokenizers");
    ObjectNode split = pres.addObject();
    split.put("type", "Split");
    split.putObject("pattern").put("Regex", LLAMA3_SPLIT);
    split.put("behavior", "Isolated");
    split.put("invert", false);
    ObjectNode bl = pres.addObject();
    bl.put("type", "ByteLevel");
    bl.put("add_prefix_space", false);
    bl.put("trim_offsets", true);
    bl.put("use_regex", false);

    ObjectNode post = root.putObject("post_processor");
    post.put("type", "Sequence");
    ArrayNode procs = post.putArray("processors");
    ObjectNode pbl = procs.addObject();
    pbl.put("type", "ByteLevel");
    pbl.put("add_prefix_space", true);
    pbl.put("trim_offsets", false);
    pbl.put("use_regex", true);
    ObjectNode tp = procs.addObject();
    tp.put("type", "TemplateProcessing");
    ArrayNode single = tp.putArray("single");
    single.addObject().putObject("SpecialToken").put("id", BOS).put("type_id", 0);
    single.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
    ArrayNode pair = tp.putArray("pair");
    pair.addObject().putObject("SpecialToken").put("id", BOS).put("type_id", 0);
    pair.addObject().putObject("Sequence").put("id", "A").put("type_id", 0);
    pair.addObject().putObject("SpecialToken").put("id", BOS).put("type_id", 1);
    pair.addObject().putObject("Sequence").put("id", "B").put("type_id", 1);
    ObjectNode st = tp.putObject("special_tokens").putObject(BOS);
    st.put("id", BOS);
    st.putArray("ids").add(firstSpecialId);
    st.putArray("tokens").add(BOS);

    ObjectNode dec = root.putObject("decoder");
    dec.put("type", "ByteLevel");
    dec.put("add_prefix_space", true);
    dec.put("trim_offsets", true);
    dec.put("use_regex", true);

    ObjectNode model = root.putObject("model");
    model.put("type", "BPE");
    model.putNull("dropout");
    model.putNull("unk_token");
    model.putNull("continuing_subword_prefix");
    model.putNull("end_of_word_suffix");
    model.put("fuse_unk", false);
    model.put("byte_fallback", false);
    // false: a word is only ever built by merges, so the placeholder entries are unreachable
    model.put("ignore_merges", false);
    ObjectNode vocab = model.putObject("vocab");
    Map<String, Integer> ids = new LinkedHashMap<>();
    for (char c : byteOrder()) {
      ids.put(String.valueOf(c), ids.size());
    }
    for (String[] mg : merges) {
      ids.putIfAbsent(mg[0] + mg[1], ids.size());
    }
    for (int i = ids.size(); i < firstSpecialId; i++) {
      ids.put("<|medtune_unused_" + i + "|>", i);
    }
    ids.forEach(vocab::put);
    ArrayNode mj = model.putArray("merges");
    for (String[] mg : merges) {
      mj.add(mg[0] + " " + mg[1]);
    }
    return root;
  }

  /** Bytes in GPT-2's order (printable first), as their byte-level characters. */
  private static char[] byteOrder() {
    char[] out = new char[256];
    int n = 0;
    for (int b = 0; b < 256; b++) {
      if (ByteLevel.BYTE_TO_CHAR[b] == b) {
        out[n++] = (char) b;
      }
    }
    for (int b = 0; b < 256; b++) {
      if (ByteLevel.BYTE_TO_CHAR[b] != b) {
        out[n++] = ByteLevel.BYTE_TO_CHAR[b];
      }
    }
    return out;
  }

  /** {@code tokenizer_config.json} for a tokenizer with Llama 3's special tokens. */
  public static ObjectNode tokenizerConfig(int firstSpecialId, int modelMaxLength) {
    ObjectNode c = Json.MAPPER.createObjectNode();
    ObjectNode dec = c.putObject("added_tokens_decoder");
    for (int i = 0; i < SPECIAL_COUNT; i++) {
      ObjectNode t = dec.putObject(String.valueOf(firstSpecialId + i));
      t.put("content", specialToken(i));
      t.put("lstrip", false);
      t.put("normalized", false);
      t.put("rstrip", false);
      t.put("single_word", false);
      t.put("special", true);
    }
    c.put("bos_token", BOS);
    // medtune decodes losslessly; transformers' space clean-up would not round-trip
    c.put("clean_up_tokenization_spaces", false);
    c.put("eos_token", EOS);
    c.putArray("model_input_names").add("input_ids").add("attention_mask");
    c.put("model_max_length", modelMaxLength);
    c.put("tokenizer_class", "PreTrainedTokenizerFast");
    return c;
  }
}
