package dev.medtune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {
  @TempDir Path dir;

  private void config() throws IOException {
    Files.copy(LlamaConfigTest.resource("llama-3.2-1b.json"), dir.resolve("config.json"));
  }

  @Test
  void singleFile() throws IOException {
    config();
    new SafetensorsWriter().add("model.norm.weight", DType.F32, new long[] {3}, new float[] {1, 2, 3})
        .write(dir.resolve("model.safetensors"));
    try (Checkpoint c = Checkpoint.open(dir)) {
      assertEquals(2048, c.config().hiddenSize());
      assertEquals(2f, c.tensor("model.norm.weight").getFloat(1));
      assertTrue(c.has("model.norm.weight"));
      assertFalse(c.has("lm_head.weight"));
      assertEquals(dir, c.dir());
    }
  }

  @Test
  void shardedThroughTheIndex() throws IOException {
    config();
    new SafetensorsWriter()
        .add("model.embed_tokens.weight", DType.BF16, new long[] {2, 2}, new float[] {1, 2, 3, 4})
        .add("model.layers.0.self_attn.q_proj.weight", DType.BF16, new long[] {1, 2}, new float[] {5, 6})
        .write(dir.resolve("model-00001-of-00002.safetensors"));
    new SafetensorsWriter()
        .add("model.norm.weight", DType.F16, new long[] {2}, new float[] {7, 8})
        .write(dir.resolve("model-00002-of-00002.safetensors"));
    Files.writeString(dir.resolve("model.safetensors.index.json"), """
        {"metadata": {"total_size": 16},
         "weight_map": {
           "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
           "model.layers.0.self_attn.q_proj.weight": "model-00001-of-00002.safetensors",
           "model.norm.weight": "model-00002-of-00002.safetensors"}}
        """);
    try (Checkpoint c = Checkpoint.open(dir)) {
      assertEquals(List.of("model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
          "model.norm.weight"), List.copyOf(c.tensorNames()));
      assertEquals(6f, c.tensor("model.layers.0.self_attn.q_proj.weight").getFloat(1));
      assertEquals(8f, c.tensor("model.norm.weight").getFloat(1));
      var e = assertThrows(ModelFormatException.class, () -> c.tensor("lm_head.weight"));
      assertTrue(e.getMessage().contains(dir.toString()) && e.getMessage().contains("lm_head.weight"));
    }
  }

  @Test
  void indexPointingAtAShardWithoutTheTensor() throws IOException {
    config();
    new SafetensorsWriter().add("a", DType.F32, new long[] {1}, new float[] {1})
        .write(dir.resolve("s1.safetensors"));
    Files.writeString(dir.resolve("model.safetensors.index.json"),
        "{\"weight_map\": {\"model.norm.weight\": \"s1.safetensors\"}}");
    var e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(dir));
    assertTrue(e.getMessage().contains("model.norm.weight") && e.getMessage().contains("s1.safetensors"),
        e.getMessage());
  }

  @Test
  void missingWeightsOrConfig() throws IOException {
    var e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(dir));
    assertTrue(e.getMessage().contains("config.json"), e.getMessage());
    config();
    e = assertThrows(ModelFormatException.class, () -> Checkpoint.open(dir));
    assertTrue(e.getMessage().contains("model.safetensors"), e.getMessage());
  }
}
