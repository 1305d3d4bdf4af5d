package dev.medtune.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.Json;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** medtune's byte-level BPE tokenizer, run by the Hugging Face tokenizers library. */
class ByteLevelBpeTest {
  @TempDir Path tmp;

  LlamaTokenizer write(int firstSpecial) {
    var merges = ByteLevelBpe.learnMerges(ByteLevelBpe.medicalCorpus(), Math.min(512, firstSpecial - 256));
    Json.write(tmp.resolve("tokenizer.json"), ByteLevelBpe.tokenizerJson(merges, firstSpecial));
    Json.write(tmp.resolve("tokenizer_config.json"), ByteLevelBpe.tokenizerConfig(firstSpecial, 4096));
    return LlamaTokenizer.load(tmp);
  }

  @Test
  void learnsMergesFromMedicalText() {
    List<String[]> merges = ByteLevelBpe.learnMerges(ByteLevelBpe.medicalCorpus(), 512);
    assertTrue(merges.size() >= 300, "merges: " + merges.size());
    // a valid BPE: each merge joins symbols that exist before it (bytes or earlier merges)
    java.util.Set<String> known = new java.util.HashSet<>();
    for (char c : ByteLevel.BYTE_TO_CHAR) {
      known.add(String.valueOf(c));
    }
    java.util.Set<String> seen = new java.util.HashSet<>();
    for (String[] m : merges) {
      assertTrue(known.contains(m[0]) && known.contains(m[1]), m[0] + " " + m[1]);
      assertTrue(seen.add(m[0] + " " + m[1]), "merge listed twice");
      known.add(m[0] + m[1]);
    }
  }

  @Test
  void encodesMedicalTextCompactlyAndEveryTextExactly() throws Exception {
    try (LlamaTokenizer tok = write(768)) {
      String prompt = "Give an answer for the following medical question.\n\n### Question:\n"
          + "Which nerve is compressed in carpal tunnel syndrome?\n\n### Answer:\n";
      int[] ids = tok.encode(prompt, false);
      assertTrue(ids.length * 3 < prompt.getBytes(StandardCharsets.UTF_8).length,
          ids.length + " tokens for " + prompt.length() + " bytes: merges are used");
      for (String t : LlamaTokenizerTest.texts()) {
        assertEquals(t, tok.decode(tok.encode(t, false)), t);
        for (int id : tok.encode(t, false)) {
          assertTrue(id < 768 + 256);
        }
      }
      assertArrayEquals(new int[] {768, 774}, tok.encode("<|start_header_id|>", true));
      assertEquals(777, tok.encode("<|eot_id|>", false)[0]);
      assertEquals(768, tok.bosId());
      assertEquals(769, tok.eosId());
    }
  }

  @Test
  void specialTokensAtLlama3Ids() {
    try (LlamaTokenizer tok = write(128000)) {
      assertEquals(128256, tok.vocabSize());
      assertArrayEquals(new int[] {128000, 128006}, tok.encode("<|start_header_id|>", true));
      assertEquals("<|finetune_right_pad_id|>", tok.token(128004));
      assertEquals("<|reserved_special_token_2|>", tok.token(128005));
      assertEquals("<|eom_id|>", tok.token(128008));
      assertEquals("<|eot_id|>", tok.token(128009));
      assertEquals("<|python_tag|>", tok.token(128010));
      assertEquals("<|reserved_special_token_3|>", tok.token(128011));
      assertEquals("<|reserved_special_token_247|>", tok.token(128255));
      String t = "Pneumonia 🫀 患者";
      int[] ids = tok.encode(t, false);
      for (int id : ids) {
        assertTrue(id < 1024, "only bytes and merges are produced, never a placeholder: " + id);
      }
      assertEquals(t, tok.decode(ids));
    }
  }

  @Test
  void streamingRandomTokensEqualsDecodeEvenForInvalidUtf8() {
    // random ids make malformed UTF-8 (lone continuation bytes, cut sequences): the streamed text
    // must still equal the tokenizers library's lossy decode, U+FFFD for U+FFFD
    try (LlamaTokenizer tok = write(768)) {
      java.util.SplittableRandom r = new java.util.SplittableRandom(42);
      for (int trial = 0; trial < 200; trial++) {
        int[] ids = new int[1 + r.nextInt(12)];
        for (int i = 0; i < ids.length; i++) {
          ids[i] = r.nextInt(10) == 0 ? 768 + r.nextInt(10) : r.nextInt(768);
        }
        StreamingDecoder sd = tok.streamingDecoder();
        StringBuilder sb = new StringBuilder();
        for (int id : ids) {
          sb.append(sd.push(id));
        }
        sb.append(sd.flush());
        assertEquals(tok.decode(ids), sb.toString(), java.util.Arrays.toString(ids));
      }
    }
  }
}
