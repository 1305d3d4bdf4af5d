package dev.medtune.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Generator;
import dev.medtune.model.Json;
import dev.medtune.model.Llama;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.ModelPresets;
import dev.medtune.model.RandomInit;
import dev.medtune.model.Sampler;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code init-model --preset tiny} (seed 0) end to end against Hugging Face transformers 5.17,
 * which loaded the same files with {@code LlamaForCausalLM.from_pretrained} and {@code AutoTokenizer}
 * (fixture {@code init-model/tiny_check.json}, made by {@code reference/check_init_model.py}):
 * the config and parameter count it read, its token ids for every parity text, the float32 logits
 * of the recipe prompt (1e-4 max absolute error) and its 12-token greedy continuation (identical).
 */
class InitModelTinyReferenceTest {
  @TempDir static Path tmp;
  static Path dir;
  static JsonNode f;
  private static final Backend cpu = CpuBackendProvider.create(2);

  /** SHA-256 of the files the fixture was computed from: init-model must still write exactly these. */
  static final String MODEL_SHA256 = "2f388efc3e7879d1a77b0345acf92012775fb895d0c3daaefe04bea231516631";
  static final String TOKENIZER_SHA256 = "c41a44d9ca002aca06423031e91ba83ae5569428bb3a6321e2a064c0f00358b3";

  @BeforeAll
  static void writeTiny() throws Exception {
    f = Json.read(Path.of(InitModelTinyReferenceTest.class.getResource("/init-model/tiny_check.json").toURI()));
    dir = tmp.resolve("tiny");
    RandomInit.write(ModelPresets.get("tiny"), dir, 0, null, false, s -> {});
    assertEquals(MODEL_SHA256, sha256(dir.resolve("model.safetensors")),
        "init-model's tiny output changed; run reference/check_init_model.py again");
    assertEquals(TOKENIZER_SHA256, sha256(dir.resolve("tokenizer.json")));
  }

  @AfterAll
  static void close() {
    cpu.close();
  }

  static String sha256(Path p) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
  }

  static int[] ints(JsonNode a) {
    int[] out = new int[a.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = a.get(i).intValue();
    }
    return out;
  }

  @Test
  void configAndTokenizerAsTransformersReadThem() {
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
      int n = 0;
      for (JsonNode tc : f.get("token_cases")) {
        String text = tc.get("text").asText();
        int[] ids = ints(tc.get("ids"));
        assertArrayEquals(ids, tok.encode(text, tc.get("add_special_tokens").asBoolean()), text);
        assertEquals(tc.get("decoded").asText(), tok.decode(ids), text);
        n++;
      }
      assertTrue(n >= 34);
    }
  }

  @Test
  void logitsAndGreedyContinuationMatchTransformers() {
    int[] prompt = ints(f.get("prompt_ids"));
    try (Checkpoint ckpt = Checkpoint.open(dir)) {
      assertEquals(39, ckpt.tensorNames().size(), "transformers loaded 39 tensors");
      int vocab = ckpt.config().vocabSize();
      int n = prompt.length;
      Llama model = new Llama(ckpt, cpu, n, n, 64);
      int[] slots = new int[n];
      int[] positions = new int[n];
      int[] rows = new int[n];
      for (int i = 0; i < n; i++) {
        positions[i] = i;
        rows[i] = i;
      }
      float[] logits = new float[n * vocab];
      model.forward(prompt, slots, positions, n, model.newCache(1), rows, n, logits);
      JsonNode want = f.get("logits");
      assertEquals(n, want.size());
      double worst = 0;
      for (int t = 0; t < n; t++) {
        for (int v = 0; v < vocab; v++) {
          double err = Math.abs(want.get(t).get(v).asDouble() - logits[t * vocab + v]);
          worst = Math.max(worst, err);
          assertTrue(err <= 1e-4, "position " + t + " token " + v + ": transformers "
              + want.get(t).get(v).asDouble() + ", medtune " + logits[t * vocab + v]);
        }
      }
      System.out.printf("init-model tiny: max |logit - transformers| %.2e%n", worst);

      Generator generator = new Generator(model, model.newCache(1));
      Generator.Result greedy = generator.generate(List.of(prompt), Sampler.Params.greedy(),
          f.get("greedy_ids").size(), (p, token, eos) -> {});
      assertArrayEquals(ints(f.get("greedy_ids")), greedy.tokens().get(0));
    }
  }
}
