package dev.medtune.model.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.medtune.model.Json;
import dev.medtune.model.ModelFormatException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * A checkpoint's {@code trainer_state.json}: the optimizer steps taken, where the data stands,
 * the run's random state, and what the run was made of (model fingerprint, data hash,
 * hyperparameters), so {@code --resume} can refuse a folder made for something else.
 *
 * <p>Random state: every random choice of a run is drawn from {@link SplitMix64} streams keyed by
 * (seed, purpose, epoch or step), so (seed, step, data position) is the complete random state;
 * nothing else needs saving.
 *
 * @param step optimizer steps taken
 * @param data the position of the next step's data
 * @param seed the run's seed
 * @param modelFingerprint {@link Fingerprints#model}'s {@code fingerprint}
 * @param dataSha256 SHA-256 of the training data file
 * @param hyperparameters the settings that shape the run ({@link SftConfig#trajectorySettings()}), as JSON values
 */
public record TrainerState(long step, DataPosition data, long seed, String modelFingerprint, String dataSha256,
    Map<String, Object> hyperparameters) {

  public static final String FILE_NAME = "trainer_state.json";

  public TrainerState {
    hyperparameters = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(hyperparameters));
  }

  public void write(Path dir) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("format", "medtune-trainer-state-1");
    m.put("global_step", step);
    m.put("data_position", Map.of("epoch", data.epoch(), "micro_batch", data.microBatch()));
    m.put("rng", Map.of("algorithm", "SplitMix64 streams keyed by (seed, purpose, epoch or step)", "seed", seed));
    m.put("model_fingerprint", modelFingerprint);
    m.put("data_sha256", dataSha256);
    m.put("hyperparameters", hyperparameters);
    Json.write(dir.resolve(FILE_NAME), m);
  }

  /** Reads {@code dir/trainer_state.json}; a missing or malformed field is named. */
  public static TrainerState read(Path dir) {
    Path f = dir.resolve(FILE_NAME);
    JsonNode n = Json.read(f);
    try {
      JsonNode pos = required(n, "data_position", f);
      Map<String, Object> hp = new LinkedHashMap<>();
      JsonNode h = required(n, "hyperparameters", f);
      for (Map.Entry<String, JsonNode> e : h.properties()) {
        hp.put(e.getKey(), Json.MAPPER.treeToValue(e.getValue(), Object.class));
      }
      return new TrainerState(required(n, "global_step", f).asLong(),
          new DataPosition(required(pos, "epoch", f).asInt(), required(pos, "micro_batch", f).asInt()),
          required(required(n, "rng", f), "seed", f).asLong(),
          required(n, "model_fingerprint", f).asText(), required(n, "data_sha256", f).asText(), hp);
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new ModelFormatException(f + ": " + e.getOriginalMessage(), e);
    }
  }

  private static JsonNode required(JsonNode n, String field, Path f) {
    JsonNode v = n.get(field);
    if (v == null || v.isNull()) {
      throw new ModelFormatException(f + ": field " + field + " is missing");
    }
    return v;
  }

  /**
   * Refuses to resume this checkpoint into a run with {@code now}'s inputs: throws an
   * {@link IllegalArgumentException} that lists every difference (model, data, seed, each
   * differing hyperparameter with both values). Hyperparameters are compared as JSON values.
   */
  public void checkResumableAs(TrainerState now, Path checkpoint) {
    List<String> diffs = new ArrayList<>();
    if (!modelFingerprint.equals(now.modelFingerprint)) {
      diffs.add("the base model differs (fingerprint " + abbrev(modelFingerprint) + " in the checkpoint, "
          + abbrev(now.modelFingerprint) + " now)");
    }
    if (!dataSha256.equals(now.dataSha256)) {
      diffs.add("the training data differs (sha256 " + abbrev(dataSha256) + " in the checkpoint, "
          + abbrev(now.dataSha256) + " now)");
    }
    if (seed != now.seed) {
      diffs.add("seed " + seed + " in the checkpoint, " + now.seed + " now");
    }
    ObjectNode a = Json.MAPPER.valueToTree(hyperparameters);
    ObjectNode b = Json.MAPPER.valueToTree(now.hyperparameters);
    TreeSet<String> keys = new TreeSet<>();
    a.fieldNames().forEachRemaining(keys::add);
    b.fieldNames().forEachRemaining(keys::add);
    for (String k : keys) {
      JsonNode x = a.get(k);
      JsonNode y = b.get(k);
      if (x == null || y == null || !numericallyEqual(x, y)) {
        diffs.add(k + " " + (x == null ? "unset" : x) + " in the checkpoint, " + (y == null ? "unset" : y) + " now");
      }
    }
    if (!diffs.isEmpty()) {
      throw new IllegalArgumentException("cannot resume from " + checkpoint + ": " + String.join("; ", diffs));
    }
  }

  private static boolean numericallyEqual(JsonNode x, JsonNode y) {
    if (x.isNumber() && y.isNumber()) {
      return x.asDouble() == y.asDouble();
    }
    return x.equals(y);
  }

  private static String abbrev(String hex) {
    return hex.length() > 12 ? hex.substring(0, 12) : hex;
  }
}
