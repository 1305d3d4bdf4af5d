package dev.medtune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What transformers 5.17 read from {@code init-model --preset tiny} (fixture
 * {@code init-model/tiny_check.json}, made by {@code reference/check_init_model.py}) agrees with
 * medtune: config, parameter count, tokenizer ids; and init-model still writes the very files the
 * fixture's logits were computed from, so the fixture stays usable as a forward-pass reference.
 */
class TinyModelParityTest {
  @TempDir Path tmp;

  static final String MODEL_SHA256 = "2f388efc3e7879d1a77b0345acf92012775fb895d0c3daaefe04bea231516631";
  static final String TOKENIZER_SHA256 = "c41a44d9ca002aca06423031e91ba83ae5569428bb3a6321e2a064c0f00358b3";

  static JsonNode fixture(String name) throws Exception {
    return Json.read(Path.of(TinyModelParityTest.class.getResource(name).toURI()));
  }

  static String sha256(Path f) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(f)));
  }

  @Test
  void transformersReadsTinyAsMedtuneWroteIt() throws Exception {
    JsonNode f = fixture("/init-model/tiny_check.json");
    Path dir = tmp.resolve("tiny");
    RandomInit.write(ModelPresets.get("tiny"), dir, 0, null, false, s -> {});
    assertEquals(MODEL_SHA256, sha256(dir.resolve("model.safetensors")),
        "init-model's tiny output changed; run reference/check_init_model.py again");
    assertEquals(TOKENIZER_SHA256, sha256(dir.resolve("tokenizer.json")));

    LlamaConfig c = LlamaConfig.read(dir.resolve("config.json"));
    JsonNode hf = f.get("config");
    assertEquals(hf.get("hidden_size").intValue(), c.hiddenSize());
    assertEquals(hf.get("intermediate_size").intValue(), c.intermediateSize());
    assertEquals(hf.get("num_hidden_layers").intValue(), c.numLayers());
    assertEquals(hf.get("num_attention_heads").intValue(), c.numHeads());
    assertEquals(hf.get("num_key_value_heads").intValue(), c.numKvHeads());
    assertEquals(hf.get("head_dim").intValue(), c.headDim());
    assertEquals(hf.get("vocab_size").intValue(), c.vocabSize());
    assertEquals(hf.get("tie_word_embeddings").booleanValue(), c.tieWordEmbeddings());
    assertEquals(hf.get("rms_norm_eps").doubleValue(), c.rmsNormEps());
    JsonNode rope = f.get("rope");
    assertEquals(rope.get("rope_theta").doubleValue(), c.ropeTheta());
    assertEquals(new LlamaConfig.RopeScaling(rope.get("factor").doubleValue(),
        rope.get("low_freq_factor").doubleValue(), rope.get("high_freq_factor").doubleValue(),
        rope.get("original_max_position_embeddings").intValue()), c.ropeScaling());
    assertEquals(f.get("parameters").longValue(), c.parameterCount());

    try (LlamaTokenizer tok = LlamaTokenizer.load(dir)) {
      assertEquals(f.get("tokenizer_len").intValue(), tok.vocabSize());
      assertEquals(f.get("bos_token_id").intValue(), tok.bosId());
      assertEquals(f.get("eos_token_id").intValue(), tok.eosId());
      assertArrayEquals(ints(f.get("prompt_ids")), tok.encode(f.get("prompt").asText(), true));
      for (JsonNode tc : f.get("token_cases")) {
        String text = tc.get("text").asText();
        int[] ids = ints(tc.get("ids"));
        assertArrayEquals(ids, tok.encode(text, tc.get("add_special_tokens").asBoolean()), text);
        assertEquals(tc.get("decoded").asText(), tok.decode(ids), text);
      }
    }
    try (Checkpoint cp = Checkpoint.open(dir)) {
      assertEquals(39, cp.tensorNames().size(), "transformers loaded 39 tensors");
    }
  }

  @Test
  void transformersReadsThe1bConfigAsMedtuneWroteIt() throws Exception {
    JsonNode f = fixture("/init-model/config_1b_check.json");
    LlamaConfig c = ModelPresets.get("llama-3.2-1b").config();
    assertEquals(f.get("parameters").longValue(), c.parameterCount());
    assertEquals(f.get("config").get("head_dim").intValue(), c.headDim());
    assertEquals(f.get("config").get("tie_word_embeddings").booleanValue(), c.tieWordEmbeddings());
    // and medtune reads the config.json transformers 5 saves (rope_parameters, dtype)
    assertEquals(c, LlamaConfig.read(LlamaConfigTest.resource("transformers5-saved-llama-3.2-1b.json")));
  }

  static int[] ints(JsonNode a) {
    int[] out = new int[a.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = a.get(i).intValue();
    }
    return out;
  }
}
