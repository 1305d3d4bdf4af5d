package dev.medtune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.TensorInfo;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RandomInitTest {
  @TempDir Path tmp;

  @Test
  void tinyIsACompleteHuggingFaceFolder() throws IOException {
    Path dir = tmp.resolve("tiny");
    List<String> progress = new ArrayList<>();
    var r = RandomInit.write(ModelPresets.get("tiny"), dir, 7, null, false, progress::add);
    try (var s = Files.list(dir)) {
      assertEquals(List.of("config.json", "generation_config.json", "model.safetensors",
          "tokenizer.json", "tokenizer_config.json"), s.map(p -> p.getFileName().toString()).sorted().toList());
    }
    try (var s = Files.list(tmp)) {
      assertEquals(1, s.count(), "no temporary folder left beside it");
    }
    assertTrue(Files.size(dir.resolve("model.safetensors")) < 3_000_000, "a few MB");
    try (Checkpoint c = Checkpoint.open(dir)) {
      LlamaConfig cfg = c.config();
      assertEquals(ModelPresets.get("tiny").config(), cfg);
      assertEquals(4, cfg.numHeads());
      assertEquals(2, cfg.numKvHeads());
      assertTrue(cfg.ropeScaling() != null);
      assertEquals(r.parameters(), cfg.parameterCount());
      assertEquals(2 + 9 * cfg.numLayers() + 1, c.tensorNames().size());
      TensorInfo q = c.tensor("model.layers.0.self_attn.q_proj.weight");
      assertArrayEquals(new long[] {64, 64}, q.shape());
      assertArrayEquals(new long[] {32, 64}, c.tensor("model.layers.3.self_attn.k_proj.weight").shape());
      assertArrayEquals(new long[] {176, 64}, c.tensor("model.layers.1.mlp.gate_proj.weight").shape());
      assertArrayEquals(new long[] {64, 176}, c.tensor("model.layers.1.mlp.down_proj.weight").shape());
      assertArrayEquals(new long[] {1024, 64}, c.tensor("lm_head.weight").shape());
      assertEquals(DType.F32, q.dtype());
      // normal(0, 0.02): mean and standard deviation over the 65536 embedding values
      float[] e = c.tensor("model.embed_tokens.weight").toFloatArray();
      double sum = 0;
      double sq = 0;
      for (float v : e) {
        sum += v;
        sq += v * v;
      }
      double mean = sum / e.length;
      double std = Math.sqrt(sq / e.length - mean * mean);
      assertEquals(0, mean, 0.0005);
      assertEquals(0.02, std, 0.0005);
      for (float v : c.tensor("model.layers.2.input_layernorm.weight").toFloatArray()) {
        assertEquals(1f, v);
      }
      assertFalse(java.util.Arrays.equals(e, c.tensor("lm_head.weight").toFloatArray()),
          "each tensor has its own random stream");
    }
    try (LlamaTokenizer tok = LlamaTokenizer.load(dir)) {
      assertEquals(768, tok.bosId());
      assertEquals(769, tok.eosId());
      assertArrayEquals(new int[] {769, 777}, tok.eosIds(), "generation_config adds <|eot_id|>");
      assertEquals(1024, tok.vocabSize());
      assertEquals("<|finetune_right_pad_id|>", tok.token(772));
      assertEquals("<|eot_id|>", tok.token(777));
    }
    JsonNode tc = Json.read(dir.resolve("tokenizer_config.json"));
    assertEquals(131072, tc.get("model_max_length").intValue());
  }

  @Test
  void sameSeedSameBytesOtherSeedOtherBytes() throws IOException {
    var p = ModelPresets.get("tiny");
    RandomInit.write(p, tmp.resolve("a"), 1, null, false, s -> {});
    RandomInit.write(p, tmp.resolve("b"), 1, null, false, s -> {});
    RandomInit.write(p, tmp.resolve("c"), 2, null, false, s -> {});
    byte[] a = Files.readAllBytes(tmp.resolve("a/model.safetensors"));
    assertArrayEquals(a, Files.readAllBytes(tmp.resolve("b/model.safetensors")));
    assertFalse(java.util.Arrays.equals(a, Files.readAllBytes(tmp.resolve("c/model.safetensors"))));
    assertEquals(Files.readString(tmp.resolve("a/tokenizer.json")),
        Files.readString(tmp.resolve("c/tokenizer.json")));
  }

  @Test
  void refusesANonEmptyFolderUnlessOverwrite() throws IOException {
    Path dir = tmp.resolve("m");
    Files.createDirectories(dir);
    Files.writeString(dir.resolve("notes.txt"), "mine");
    var p = ModelPresets.get("tiny");
    var e = assertThrows(IllegalArgumentException.class,
        () -> RandomInit.write(p, dir, 0, null, false, s -> {}));
    assertTrue(e.getMessage().contains("--overwrite"), e.getMessage());
    assertEquals("mine", Files.readString(dir.resolve("notes.txt")));
    RandomInit.write(p, dir, 0, null, true, s -> {});
    assertFalse(Files.exists(dir.resolve("notes.txt")), "replaced as a whole");
    assertTrue(Files.exists(dir.resolve("model.safetensors")));
    Files.createDirectories(tmp.resolve("empty"));
    RandomInit.write(p, tmp.resolve("empty"), 0, null, false, s -> {}); // empty is fine
  }

  @Test
  void shardsWithAnIndexWhenOverTheLimit() throws IOException {
    Path dir = tmp.resolve("sharded");
    // tiny's weights are 1.3 MB; a 300 kB limit forces several shards
    RandomInit.write(ModelPresets.get("tiny"), dir, 3, null, false, s -> {}, 300_000);
    JsonNode index = Json.read(dir.resolve(Checkpoint.INDEX_FILE));
    assertFalse(Files.exists(dir.resolve(Checkpoint.SINGLE_FILE)));
    long shards;
    try (var s = Files.list(dir)) {
      shards = s.filter(p -> p.getFileName().toString().matches("model-\\d{5}-of-\\d{5}\\.safetensors")).count();
    }
    assertTrue(shards >= 4, "shards: " + shards);
    assertTrue(Files.exists(dir.resolve(String.format("model-00001-of-%05d.safetensors", shards))));
    try (Checkpoint c = Checkpoint.open(dir)) {
      assertEquals(index.get("weight_map").size(), c.tensorNames().size());
      long total = 0;
      for (String n : c.tensorNames()) {
        total += c.tensor(n).data().byteSize();
      }
      assertEquals(index.get("metadata").get("total_size").longValue(), total);
      try (Checkpoint single = Checkpoint.open(writeSingle())) {
        for (String n : c.tensorNames()) {
          assertEquals(single.tensor(n).data().asByteBuffer(), c.tensor(n).data().asByteBuffer(),
              "sharding does not change the values of " + n);
        }
      }
    }
  }

  private Path writeSingle() {
    Path d = tmp.resolve("single");
    RandomInit.write(ModelPresets.get("tiny"), d, 3, null, false, s -> {});
    return d;
  }

  @Test
  void bigPresetsHaveThePublishedShapesAndShardLikeTransformers() {
    assertEquals(LlamaConfig.read(LlamaConfigTest.resource("llama-3.2-1b.json")),
        ModelPresets.get("llama-3.2-1b").config());
    assertEquals(LlamaConfig.read(LlamaConfigTest.resource("llama-3.1-8b.json")),
        ModelPresets.get("llama-3.1-8b").config());
    LlamaConfig c70 = ModelPresets.get("llama-3.1-70b").config();
    assertEquals(70_553_706_496L, c70.parameterCount());
    var s8 = RandomInit.tensors(ModelPresets.get("llama-3.1-8b").config());
    assertEquals(4, RandomInit.planShards(s8, DType.BF16, RandomInit.MAX_SHARD_BYTES).size());
    var s1 = RandomInit.tensors(ModelPresets.get("llama-3.2-1b").config());
    assertEquals(1, RandomInit.planShards(s1, DType.BF16, RandomInit.MAX_SHARD_BYTES).size());
    assertFalse(s1.stream().anyMatch(s -> s.name().equals("lm_head.weight")), "tied: no lm_head");
    var s70 = RandomInit.tensors(c70);
    int n70 = RandomInit.planShards(s70, DType.BF16, RandomInit.MAX_SHARD_BYTES).size();
    assertEquals(30, n70, "70B shards, as Meta's own upload");
  }
}
