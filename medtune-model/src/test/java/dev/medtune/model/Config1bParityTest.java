package dev.medtune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * transformers 5.17 reads the config.json medtune writes for the {@code llama-3.2-1b} preset as
 * medtune does, and medtune reads the config.json transformers 5 saves from it (fixtures
 * {@code init-model/config_1b_check.json} and {@code configs/transformers5-saved-llama-3.2-1b.json},
 * made by {@code reference/check_init_model.py}). The tiny preset end to end against transformers
 * (config, tokenizer, logits, greedy) is {@code InitModelTinyReferenceTest} in medtune-cpu, where
 * the forward pass runs.
 */
class Config1bParityTest {

  @Test
  void transformersReadsThe1bConfigAsMedtuneWroteIt() throws Exception {
    JsonNode f = Json.read(Path.of(Config1bParityTest.class.getResource("/init-model/config_1b_check.json").toURI()));
    LlamaConfig c = ModelPresets.get("llama-3.2-1b").config();
    JsonNode hf = f.get("config");
    assertEquals(f.get("parameters").longValue(), c.parameterCount());
    assertEquals(hf.get("hidden_size").intValue(), c.hiddenSize());
    assertEquals(hf.get("intermediate_size").intValue(), c.intermediateSize());
    assertEquals(hf.get("num_hidden_layers").intValue(), c.numLayers());
    assertEquals(hf.get("num_attention_heads").intValue(), c.numHeads());
    assertEquals(hf.get("num_key_value_heads").intValue(), c.numKvHeads());
    assertEquals(hf.get("head_dim").intValue(), c.headDim());
    assertEquals(hf.get("vocab_size").intValue(), c.vocabSize());
    assertEquals(hf.get("tie_word_embeddings").booleanValue(), c.tieWordEmbeddings());
    assertEquals(hf.get("eos_token_id").intValue(), c.eosTokenIds()[0]);
    JsonNode rope = f.get("rope");
    assertEquals(rope.get("rope_theta").doubleValue(), c.ropeTheta());
    assertEquals(rope.get("factor").doubleValue(), c.ropeScaling().factor());
    // and medtune reads the config.json transformers 5 saves (rope_parameters, dtype)
    assertEquals(c, LlamaConfig.read(LlamaConfigTest.resource("transformers5-saved-llama-3.2-1b.json")));
  }
}
