package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.Json;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainingRecordTest {
  @TempDir Path tmp;

  @Test
  void recordsModelDataHyperparametersAndBuild() throws Exception {
    Path model = Files.createDirectories(tmp.resolve("model"));
    Files.writeString(model.resolve("config.json"), "{}");
    Files.write(model.resolve("model.safetensors"), new byte[64]);
    Path data = tmp.resolve("train.jsonl");
    Files.writeString(data, "abc");
    Map<String, Object> hp = new LinkedHashMap<>();
    hp.put("lr", 2e-4);
    hp.put("lora_r", 16);
    Map<String, Object> results = Map.of("steps", 60, "final_loss", 1.5);
    new TrainingRecord("0.1.0", "deadbeef", Fingerprints.model(model), data, null, hp, 3407, results).write(tmp);
    var n = Json.read(tmp.resolve("training.json"));
    assertEquals("0.1.0", n.get("medtune_version").asText());
    assertEquals("deadbeef", n.get("git_commit").asText());
    assertEquals(3407, n.get("seed").asLong());
    assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        n.at("/data/train/sha256").asText());
    assertFalse(n.get("data").has("val"));
    assertEquals(Fingerprints.sha256(model.resolve("config.json")), n.at("/base_model/config_sha256").asText());
    assertEquals("model.safetensors", n.at("/base_model/weights/0/file").asText());
    assertTrue(n.at("/base_model/hash_note").asText().contains("first MiB"));
    assertEquals(2e-4, n.at("/hyperparameters/lr").asDouble());
    assertEquals(60, n.at("/results/steps").asInt());
  }
}
