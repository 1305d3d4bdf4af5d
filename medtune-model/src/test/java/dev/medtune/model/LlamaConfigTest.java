package dev.medtune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LlamaConfigTest {
  @TempDir Path tmp;

  static Path resource(String name) {
    try {
      return Path.of(LlamaConfigTest.class.getResource("/configs/" + name).toURI());
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  @Test
  void llama3_8b() {
    LlamaConfig c = LlamaConfig.read(resource("llama-3-8b.json"));
    assertEquals(4096, c.hiddenSize());
    assertEquals(14336, c.intermediateSize());
    assertEquals(32, c.numLayers());
    assertEquals(32, c.numHeads());
    assertEquals(8, c.numKvHeads());
    assertEquals(128, c.headDim(), "head_dim absent: hidden / heads");
    assertEquals(128256, c.vocabSize());
    assertEquals(8192, c.maxPositionEmbeddings());
    assertEquals(1e-5, c.rmsNormEps());
    assertEquals(500000.0, c.ropeTheta());
    assertNull(c.ropeScaling(), "rope_scaling null");
    assertEquals(false, c.tieWordEmbeddings());
    assertEquals(128000, c.bosTokenId());
    assertArrayEquals(new int[] {128001}, c.eosTokenIds());
    assertEquals("bfloat16", c.torchDtype());
    assertEquals(8_030_261_248L, c.parameterCount()); // the published 8.03B
  }

  @Test
  void llama31_8b() {
    LlamaConfig c = LlamaConfig.read(resource("llama-3.1-8b.json"));
    assertEquals(131072, c.maxPositionEmbeddings());
    assertEquals(new LlamaConfig.RopeScaling(8.0, 1.0, 4.0, 8192), c.ropeScaling());
    assertEquals(8_030_261_248L, c.parameterCount());
  }

  @Test
  void llama32_1b() {
    LlamaConfig c = LlamaConfig.read(resource("llama-3.2-1b.json"));
    assertEquals(2048, c.hiddenSize());
    assertEquals(8192, c.intermediateSize());
    assertEquals(16, c.numLayers());
    assertEquals(32, c.numHeads());
    assertEquals(8, c.numKvHeads());
    assertEquals(64, c.headDim());
    assertEquals(512, c.kvDim());
    assertTrue(c.tieWordEmbeddings());
    assertEquals(new LlamaConfig.RopeScaling(32.0, 1.0, 4.0, 8192), c.ropeScaling());
    assertEquals(1_235_814_400L, c.parameterCount()); // the published 1.24B
  }

  @Test
  void llama33_70b_eosList() {
    LlamaConfig c = LlamaConfig.read(resource("llama-3.3-70b-instruct.json"));
    assertEquals(8192, c.hiddenSize());
    assertEquals(80, c.numLayers());
    assertEquals(64, c.numHeads());
    assertEquals(8, c.numKvHeads());
    assertEquals(128, c.headDim());
    assertArrayEquals(new int[] {128001, 128008, 128009}, c.eosTokenIds());
    assertTrue(c.isEos(128009));
    assertEquals(false, c.isEos(128000));
    assertEquals(70_553_706_496L, c.parameterCount()); // the published 70.6B
  }

  @Test
  void writeThenReadIsTheSameConfig() throws IOException {
    for (String n : new String[] {"llama-3-8b.json", "llama-3.1-8b.json", "llama-3.2-1b.json",
        "llama-3.3-70b-instruct.json"}) {
      LlamaConfig c = LlamaConfig.read(resource(n));
      Path out = tmp.resolve(n);
      c.write(out);
      assertEquals(c, LlamaConfig.read(out), n);
      try (var s = Files.list(tmp)) {
        assertTrue(s.noneMatch(p -> p.getFileName().toString().endsWith(".tmp")), "no temp left");
      }
    }
  }

  @Test
  void transformers5RopeParametersAndDtype() throws IOException {
    String text = Files.readString(resource("llama-3.2-1b.json"))
        .replace("\"rope_scaling\": {", "\"rope_parameters\": {\n    \"rope_theta\": 250000.0,")
        .replace("\"rope_theta\": 500000.0,", "")
        .replace("\"torch_dtype\"", "\"dtype\"");
    LlamaConfig c = LlamaConfig.read(write("config.json", text));
    assertEquals(250000.0, c.ropeTheta());
    assertEquals(new LlamaConfig.RopeScaling(32.0, 1.0, 4.0, 8192), c.ropeScaling());
    assertEquals("bfloat16", c.torchDtype());
  }

  @Test
  void legacyTypeKeyOfRopeScaling() throws IOException {
    String text = Files.readString(resource("llama-3.1-8b.json")).replace("\"rope_type\"", "\"type\"");
    assertEquals(8.0, LlamaConfig.read(write("config.json", text)).ropeScaling().factor());
  }

  @Test
  void unsupportedConfigsAreOneLineErrorsNamingFileAndKey() throws IOException {
    String base = Files.readString(resource("llama-3.1-8b.json"));
    assertError(base.replace("LlamaForCausalLM", "MistralForCausalLM"), "architectures");
    assertError(base.replace("\"model_type\": \"llama\"", "\"model_type\": \"mistral\""), "model_type");
    assertError(base.replace("\"llama3\"", "\"yarn\""), "rope_scaling.rope_type");
    assertError(base.replace("\"attention_bias\": false", "\"attention_bias\": true"), "attention_bias");
    assertError(base.replace("\"mlp_bias\": false", "\"mlp_bias\": true"), "mlp_bias");
    assertError(base.replace("\"hidden_size\": 4096,", ""), "hidden_size");
    assertError(base.replace("\"eos_token_id\": 128001", "\"eos_token_id\": \"x\""), "eos_token_id");
    assertError(base.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5"),
        "num_key_value_heads");
    assertError(base.replace("\"factor\": 8.0,", ""), "rope_scaling.factor");
    assertError(base.replace("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\""), "hidden_act");
    assertError(base.substring(0, 100), "not valid JSON");
  }

  private void assertError(String text, String key) throws IOException {
    Path f = write("bad-config.json", text);
    ModelFormatException e = assertThrows(ModelFormatException.class, () -> LlamaConfig.read(f));
    assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
    assertTrue(e.getMessage().contains(key), e.getMessage());
    assertEquals(-1, e.getMessage().indexOf('\n'), "one line");
  }

  private Path write(String name, String text) throws IOException {
    Path f = tmp.resolve(name);
    Files.writeString(f, text);
    return f;
  }
}
