package dev.medtune.hub;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The hub model card ({@code README.md}: YAML metadata, then Markdown) of a pushed adapter or
 * model, written from the {@code training.json} that {@code medtune train} leaves next to it: base
 * model, data, hyperparameters, final losses and the medtune version. Keys it does not know are
 * listed too, so the card says everything the record says.
 */
public final class ModelCard {
  private static final List<String> BASE = List.of("base_model", "base_model_name_or_path", "model");
  private static final List<String> DATA = List.of("data", "dataset", "datasets", "train_data", "train_file", "data_file");
  private static final List<String> VERSION = List.of("medtune_version", "medtune");
  private static final Set<String> LOSS_HINTS = Set.of("loss", "losses", "eval_loss", "perplexity", "accuracy");

  private ModelCard() {}

  /**
   * Writes {@code folder/README.md} from {@code folder/training.json} when the first is absent and
   * the second present (written whole, then renamed). Returns the card written, if any.
   */
  public static Optional<Path> writeIfAbsent(Path folder, String repoId, String medtuneVersion, boolean adapter)
      throws IOException {
    Path readme = folder.resolve("README.md");
    Path training = folder.resolve("training.json");
    if (Files.exists(readme) || !Files.isRegularFile(training)) {
      return Optional.empty();
    }
    JsonNode t;
    try {
      t = HubHttp.JSON.readTree(training.toFile());
    } catch (IOException e) {
      throw new IOException(training + " is not valid JSON: " + e.getMessage().lines().findFirst().orElse(""), e);
    }
    JsonNode peft = null;
    Path adapterConfig = folder.resolve("adapter_config.json");
    if (Files.isRegularFile(adapterConfig)) {
      try {
        peft = HubHttp.JSON.readTree(adapterConfig.toFile());
      } catch (IOException ignored) {
        // the card does without it
      }
    }
    String card = render(t, peft, repoId, medtuneVersion, adapter);
    Path tmp = Files.createTempFile(folder, ".README", ".tmp");
    Files.writeString(tmp, card, StandardCharsets.UTF_8);
    HubCache.moveReplacing(tmp, readme);
    return Optional.of(readme);
  }

  static String render(JsonNode t, JsonNode peft, String repoId, String medtuneVersion, boolean adapter) {
    String base = first(t, BASE).map(ModelCard::scalarOrId).orElse(null);
    if (base == null && peft != null && peft.path("base_model_name_or_path").isTextual()) {
      base = peft.path("base_model_name_or_path").asText();
    }
    JsonNode data = first(t, DATA).orElse(null);
    String version = first(t, VERSION).map(v -> v.isObject() ? v.path("version").asText(null) : v.asText(null))
        .orElse(medtuneVersion);
    StringBuilder b = new StringBuilder("---\n");
    if (base != null) {
      b.append("base_model: ").append(yaml(base)).append('\n');
    }
    b.append("library_name: ").append(adapter ? "peft" : "transformers").append('\n');
    b.append("tags:\n- medtune\n").append(adapter ? "- lora\n" : "").append("- medical\n");
    List<String> hubData = new ArrayList<>();
    if (data != null) {
      for (String d : dataNames(data)) {
        if (HubClient.isRepoId(d) && d.contains("/")) {
          hubData.add(d);
        }
      }
    }
    if (!hubData.isEmpty()) {
      b.append("datasets:\n");
      hubData.forEach(d -> b.append("- ").append(yaml(d)).append('\n'));
    }
    b.append("---\n\n# ").append(repoId == null ? "medtune " + (adapter ? "adapter" : "model") : repoId).append("\n\n");
    b.append(adapter ? "A LoRA adapter (PEFT format)" : "A model").append(base == null ? "" : " of `" + base + "`")
        .append(" fine-tuned on medical multiple-choice questions with [medtune](https://github.com/medtune)")
        .append(version == null ? "" : " " + version).append(".\n\n");
    if (data != null) {
      b.append("## Training data\n\n");
      Map<String, String> rows = new LinkedHashMap<>();
      flatten("", data, rows);
      table(b, rows);
    }
    Map<String, String> losses = new LinkedHashMap<>();
    Map<String, String> hyper = new LinkedHashMap<>();
    t.fields().forEachRemaining(e -> {
      String k = e.getKey();
      if (BASE.contains(k) || DATA.contains(k) || VERSION.contains(k)) {
        return;
      }
      Map<String, String> flat = new LinkedHashMap<>();
      flatten(k, e.getValue(), flat);
      flat.forEach((fk, fv) -> (isLoss(fk) ? losses : hyper).put(fk, fv));
    });
    if (!losses.isEmpty()) {
      b.append("## Results\n\n");
      table(b, losses);
    }
    if (!hyper.isEmpty()) {
      b.append("## Training details\n\n");
      table(b, hyper);
    }
    b.append("## Framework versions\n\n- medtune ").append(version == null ? "unknown" : version).append('\n');
    if (adapter) {
      b.append("\nLoad it with PEFT (`PeftModel.from_pretrained(base, \"").append(repoId == null ? "<repo>" : repoId)
          .append("\")`) or with `medtune generate --adapter ").append(repoId == null ? "<repo>" : repoId).append("`.\n");
    }
    return b.toString();
  }

  private static boolean isLoss(String key) {
    String k = key.toLowerCase(java.util.Locale.ROOT);
    return LOSS_HINTS.stream().anyMatch(k::contains);
  }

  private static Optional<JsonNode> first(JsonNode t, List<String> keys) {
    return keys.stream().filter(k -> t.has(k) && !t.get(k).isNull()).map(t::get).findFirst();
  }

  private static String scalarOrId(JsonNode n) {
    if (n.isObject()) {
      for (String k : List.of("id", "name", "repo_id", "path")) {
        if (n.path(k).isTextual()) {
          return n.path(k).asText();
        }
      }
      return null;
    }
    return n.asText();
  }

  private static List<String> dataNames(JsonNode d) {
    List<String> out = new ArrayList<>();
    if (d.isTextual()) {
      out.add(d.asText());
    } else if (d.isArray()) {
      d.forEach(x -> out.addAll(dataNames(x)));
    } else if (d.isObject()) {
      String id = scalarOrId(d);
      if (id != null) {
        out.add(id);
      }
    }
    return out;
  }

  private static void flatten(String prefix, JsonNode n, Map<String, String> out) {
    if (n.isObject()) {
      n.fields().forEachRemaining(e -> flatten(prefix.isEmpty() ? e.getKey() : prefix + "." + e.getKey(), e.getValue(), out));
    } else if (n.isArray() && n.size() > 0 && n.get(0).isContainerNode()) {
      for (int i = 0; i < n.size(); i++) {
        flatten(prefix + "[" + i + "]", n.get(i), out);
      }
    } else {
      String v = n.isTextual() ? n.asText() : n.toString();
      out.put(prefix.isEmpty() ? "value" : prefix, v.length() > 200 ? v.substring(0, 197) + "..." : v);
    }
  }

  private static void table(StringBuilder b, Map<String, String> rows) {
    b.append("| key | value |\n| --- | --- |\n");
    rows.forEach((k, v) -> b.append("| ").append(cell(k)).append(" | ").append(cell(v)).append(" |\n"));
    b.append('\n');
  }

  private static String cell(String s) {
    return s.replace("|", "\\|").replace("\n", " ");
  }

  private static String yaml(String s) {
    return s.matches("[A-Za-z0-9_./-]+") ? s : "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }
}
