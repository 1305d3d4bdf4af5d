package dev.medtune.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.Json;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Token ids of the real Llama 3 tokenizer through medtune equal Hugging Face transformers' on every
 * text of {@code tokenizer/texts.json}, with and without BOS; decodes equal too. The expected ids
 * come from {@code reference/tokenizer_ids.py} (transformers 5.17.0), see tokenizer/README.md.
 */
class LlamaTokenizerParityTest {

  static JsonNode fixture(String name) throws Exception {
    return Json.read(Path.of(LlamaTokenizerParityTest.class.getResource(name).toURI()));
  }

  static int[] ints(JsonNode a) {
    int[] out = new int[a.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = a.get(i).intValue();
    }
    return out;
  }

  @Test
  void idsAndDecodesMatchTransformers() throws Exception {
    JsonNode f = fixture("/tokenizer/llama3_1_ids.json");
    assertEquals(2 * LlamaTokenizerTest.texts().size(), f.get("cases").size(),
        "the fixture covers every text of texts.json; run reference/tokenizer_ids.py again");
    try (LlamaTokenizer tok = LlamaTokenizer.load(RealLlama31Tokenizer.dir())) {
      assertEquals(f.get("bos_token_id").intValue(), tok.bosId());
      assertEquals(f.get("eos_token_id").intValue(), tok.eosId());
      int compared = 0;
      for (JsonNode c : f.get("cases")) {
        String text = c.get("text").asText();
        boolean bos = c.get("add_special_tokens").asBoolean();
        int[] expected = ints(c.get("ids"));
        assertArrayEquals(expected, tok.encode(text, bos), "ids of " + text + " (BOS " + bos + ")");
        assertEquals(c.get("decoded").asText(), tok.decode(expected), "decode of " + text);
        compared++;
      }
      assertTrue(compared >= 34);
    }
  }
}
