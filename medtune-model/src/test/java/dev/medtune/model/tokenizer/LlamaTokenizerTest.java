package dev.medtune.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.Json;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The real Llama 3.1 tokenizer through {@link LlamaTokenizer}. */
class LlamaTokenizerTest {
  static LlamaTokenizer tok;

  @BeforeAll
  static void load() {
    tok = LlamaTokenizer.load(RealLlama31Tokenizer.dir());
  }

  @AfterAll
  static void close() {
    tok.close();
  }

  static List<String> texts() throws Exception {
    JsonNode n = Json.read(Path.of(LlamaTokenizerTest.class.getResource("/tokenizer/texts.json").toURI()));
    List<String> out = new ArrayList<>();
    n.path("texts").forEach(t -> out.add(t.asText()));
    return out;
  }

  @Test
  void idsOfWellKnownTokens() {
    // published Llama 3 ids: "Hello" 9906, " world" 1917; <|begin_of_text|> 128000
    assertArrayEquals(new int[] {128000, 9906, 1917}, tok.encode("Hello world", true));
    assertArrayEquals(new int[] {9906, 1917}, tok.encode("Hello world", false));
    assertEquals(128000, tok.bosId());
    assertEquals(128009, tok.eosId(), "tokenizer_config eos_token is <|eot_id|>");
    assertEquals(128256, tok.vocabSize());
    assertEquals("<|eot_id|>", tok.token(128009));
    assertTrue(tok.isSpecial(128009));
    assertFalse(tok.isSpecial(9906));
    assertEquals(128006, tok.tokenId("<|start_header_id|>"));
  }

  @Test
  void specialTokenStringsInTheTextBecomeTheirIds() {
    assertArrayEquals(new int[] {128006, 882, 128007, 271, 13347, 128009},
        tok.encode("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", false));
  }

  @Test
  void decodeRoundTripsEveryText() throws Exception {
    for (String t : texts()) {
      assertEquals(t, tok.decode(tok.encode(t, false)), "round trip of " + t);
      assertEquals("<|begin_of_text|>" + t, tok.decode(tok.encode(t, true)));
    }
  }

  @Test
  void longTextsAreNotTruncated() {
    String t = "x ".repeat(3000);
    assertEquals(3001, tok.encode(t, false).length);
  }

  @Test
  void unknownIdIsAClearError() {
    var e = assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[] {200000}));
    assertTrue(e.getMessage().contains("200000"), e.getMessage());
  }

  @Test
  void streamingNeverReturnsHalfACharacterAndEqualsDecode() throws Exception {
    List<String> cases = new ArrayList<>(texts());
    cases.add("🫀🩺💊 心筋梗塞 당뇨병 👨‍👩‍👧‍👦");
    boolean sawHeldBack = false;
    for (String t : cases) {
      int[] ids = tok.encode(t, true);
      StreamingDecoder sd = tok.streamingDecoder();
      StringBuilder sb = new StringBuilder();
      for (int id : ids) {
        String piece = sd.push(id);
        assertFalse(piece.contains("\uFFFD"), "replacement char streamed for " + t);
        if (!piece.isEmpty()) {
          assertFalse(Character.isHighSurrogate(piece.charAt(piece.length() - 1)), "half a surrogate pair");
        }
        byte[] single = tok.tokenBytes(id);
        sawHeldBack |= StreamingDecoder.completePrefix(single) < single.length;
        sb.append(piece);
      }
      sb.append(sd.flush());
      assertEquals(tok.decode(ids), sb.toString(), t);
    }
    assertTrue(sawHeldBack, "the texts include tokens that end inside a UTF-8 character");
  }

  @Test
  void streamingCanSkipSpecialTokensAsDecodeDoes() {
    // BOS, text, a reserved special token and <|eot_id|> mid-stream (what a barely trained model emits)
    int[] text = tok.encode("Terbutaline. 🫀 is a heart", true);
    int reserved = tok.tokenId("<|reserved_special_token_163|>");
    int eot = tok.tokenId("<|eot_id|>");
    assertTrue(reserved >= 0 && eot >= 0 && tok.isSpecial(reserved) && tok.isSpecial(eot));
    int[] ids = new int[text.length + 2];
    System.arraycopy(text, 0, ids, 0, 4);
    ids[4] = reserved;
    System.arraycopy(text, 4, ids, 5, text.length - 4);
    ids[ids.length - 1] = eot;
    for (boolean skip : new boolean[] {false, true}) {
      StreamingDecoder sd = tok.streamingDecoder(skip);
      StringBuilder sb = new StringBuilder();
      for (int id : ids) {
        sb.append(sd.push(id));
      }
      sb.append(sd.flush());
      assertEquals(tok.decode(ids, skip), sb.toString(), "skip " + skip);
      assertEquals(!skip, sb.toString().contains("<|reserved_special_token_163|>"), sb.toString());
    }
  }

  @Test
  void emojiSplitAcrossByteTokensIsHeldBackUntilComplete() {
    // 🫀 is F0 9F AB 80: Llama 3 has no single token for it, so it spans byte tokens
    int[] ids = tok.encode("🫀", false);
    assertTrue(ids.length >= 2, "split into " + ids.length + " tokens");
    StreamingDecoder sd = tok.streamingDecoder();
    for (int i = 0; i < ids.length - 1; i++) {
      assertEquals("", sd.push(ids[i]), "nothing until the last byte arrives");
    }
    assertEquals("🫀", sd.push(ids[ids.length - 1]));
    assertEquals("", sd.flush());
  }

  @Test
  void completePrefixOfUtf8() {
    byte[] euro = "€".getBytes(StandardCharsets.UTF_8); // E2 82 AC
    assertEquals(0, StreamingDecoder.completePrefix(new byte[] {euro[0]}));
    assertEquals(0, StreamingDecoder.completePrefix(new byte[] {euro[0], euro[1]}));
    assertEquals(3, StreamingDecoder.completePrefix(euro));
    assertEquals(1, StreamingDecoder.completePrefix(new byte[] {'a', euro[0], euro[1]}));
    byte[] four = "😀".getBytes(StandardCharsets.UTF_8);
    assertEquals(1, StreamingDecoder.completePrefix(new byte[] {'a', four[0], four[1], four[2]}));
    assertEquals(2, StreamingDecoder.completePrefix(new byte[] {'a', 'b'}));
  }
}
