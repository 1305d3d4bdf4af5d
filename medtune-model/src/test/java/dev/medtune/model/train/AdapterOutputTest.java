package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.medtune.model.Json;
import dev.medtune.model.ModelPresets;
import dev.medtune.model.RandomInit;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.LoraConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AdapterOutputTest {
  @TempDir Path tmp;

  @Test
  void writesPeftAdapterTokenizerAndRecordThenReplacesWhole() throws Exception {
    Path model = tmp.resolve("tiny");
    var r = RandomInit.write(ModelPresets.get("tiny"), model, 3, null, false, s -> {});
    Path data = tmp.resolve("train.jsonl");
    Files.writeString(data, "{\"text\": \"x\"}\n");
    var record = new TrainingRecord("dev", "abc", Fingerprints.model(model), data, null,
        SftConfig.recipe().allSettings(), 3407, Map.of("steps", 60));
    LoraAdapter a = LoraAdapter.initialize(r.config(), LoraConfig.recipe(), 3407);
    Path out = tmp.resolve("out");
    Path dir = AdapterOutput.write(out, a, model, "medtune/tiny", record);
    try (var s = Files.list(dir)) {
      assertEquals(List.of("adapter_config.json", "adapter_model.safetensors", "tokenizer.json",
          "tokenizer_config.json", "training.json"), s.map(p -> p.getFileName().toString()).sorted().toList());
    }
    assertArrayEquals(Files.readAllBytes(model.resolve("tokenizer.json")), Files.readAllBytes(dir.resolve("tokenizer.json")));
    assertEquals("medtune/tiny", Json.read(dir.resolve("adapter_config.json")).get("base_model_name_or_path").asText());
    assertEquals(3407, Json.read(dir.resolve("training.json")).get("seed").asInt());

    LoraAdapter b = LoraAdapter.initialize(r.config(), new LoraConfig(4, 8, 0, LoraConfig.recipe().targets(), false), 1);
    AdapterOutput.write(out, b, model, "medtune/tiny", record);
    assertEquals(4, LoraAdapter.load(dir, r.config()).config().r());
    try (var s = Files.list(out)) {
      assertEquals(List.of("adapter"), s.map(p -> p.getFileName().toString()).toList());
    }
    assertFalse(Files.exists(out.resolve("adapter.tmp")));
  }
}
