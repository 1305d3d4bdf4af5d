package dev.medtune.model.train;

import dev.medtune.model.Json;
import java.nio.file.Path;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code OUT/training.json}: how an adapter was made (Tribuo-style provenance). Base model: its
 * folder, SHA-256 of {@code config.json} and a size + first/last MiB SHA-256 of each weight file
 * ({@link Fingerprints#model}); data: path and full SHA-256 of the training (and validation) file;
 * every hyperparameter, the seed, the medtune version and git commit, and the outcome.
 *
 * @param medtuneVersion the release or "dev"
 * @param gitCommit the commit the jar was built from
 * @param model {@link Fingerprints#model} of the base model
 * @param trainData path of the training file
 * @param valData path of the validation file, or null
 * @param hyperparameters every setting, names as the CLI's options
 * @param seed the run's seed
 * @param results what came out (steps, final loss, tokens, time), possibly empty
 */
public record TrainingRecord(String medtuneVersion, String gitCommit, Map<String, Object> model, Path trainData,
    Path valData, Map<String, Object> hyperparameters, long seed, Map<String, Object> results) {

  public static final String FILE_NAME = "training.json";

  /** The JSON object written (data hashes computed now). */
  public Map<String, Object> toMap() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("format", "medtune-training-record-1");
    m.put("created", Instant.now().toString());
    m.put("medtune_version", medtuneVersion);
    m.put("git_commit", gitCommit);
    Map<String, Object> base = new LinkedHashMap<>(model);
    base.put("hash_note", "config.json: sha256 of the file; weights: sha256 of (size as 8 bytes big-endian,"
        + " first MiB, last MiB) of each file - a fingerprint, not a full hash");
    m.put("base_model", base);
    Map<String, Object> data = new LinkedHashMap<>();
    data.put("train", file(trainData));
    if (valData != null) {
      data.put("val", file(valData));
    }
    m.put("data", data);
    m.put("seed", seed);
    m.put("hyperparameters", hyperparameters);
    m.put("results", results);
    return m;
  }

  /** Writes {@code dir/training.json} atomically. */
  public void write(Path dir) {
    Json.write(dir.resolve(FILE_NAME), toMap());
  }

  private static Map<String, Object> file(Path p) {
    Map<String, Object> f = new LinkedHashMap<>();
    f.put("path", p.toAbsolutePath().normalize().toString());
    f.put("sha256", Fingerprints.sha256(p));
    return f;
  }
}
