package dev.medtune.model.lora;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.Json;
import dev.medtune.model.ModelFormatException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A PEFT {@code adapter_config.json} for a LoRA on a {@code LlamaForCausalLM}: what PEFT 0.21's
 * {@code LoraConfig.save_pretrained} writes (every field of its {@code LoraConfig} dataclass, keys
 * sorted, two-space indent, as {@code json.dumps(..., indent=2, sort_keys=True)}), and the subset of
 * what PEFT writes that medtune can apply. Fields of later PEFT versions are tolerated on read;
 * features medtune does not implement (DoRA, bias training, {@code modules_to_save}, per-layer
 * ranks, ...) are refused with a message naming the field, rather than silently ignored.
 *
 * @param lora the adapter's hyperparameters
 * @param baseModelNameOrPath {@code base_model_name_or_path}: the hub id or folder of the base model, or null
 */
public record PeftAdapterConfig(LoraConfig lora, String baseModelNameOrPath) {

  /** The file name PEFT uses. */
  public static final String FILE_NAME = "adapter_config.json";

  /** The PEFT release whose {@code adapter_config.json} layout {@link #write} follows. */
  public static final String PEFT_FORMAT_VERSION = "0.21.0";

  /**
   * Reads {@code dir/adapter_config.json}, or the file itself when {@code path} is a file; a
   * missing file, bad JSON or an unsupported setting is a one-line {@link ModelFormatException}.
   */
  public static PeftAdapterConfig read(Path path) {
    Path file = Files.isDirectory(path) ? path.resolve(FILE_NAME) : path;
    JsonNode root = Json.read(file);
    if (root == null || !root.isObject()) {
      throw new ModelFormatException(file + ": expected a JSON object");
    }
    return fromJson(root, file.toString());
  }

  static PeftAdapterConfig fromJson(JsonNode root, String where) {
    String peftType = text(root, "peft_type");
    if (!"LORA".equals(peftType)) {
      throw new ModelFormatException(where + ": peft_type is " + quoted(peftType) + "; medtune reads only LORA adapters");
    }
    String task = text(root, "task_type");
    if (task != null && !task.equals("CAUSAL_LM")) {
      throw new ModelFormatException(where + ": task_type is \"" + task + "\"; expected CAUSAL_LM");
    }
    refuseIfTrue(root, "use_dora", where, "DoRA (use_dora: true) is not supported");
    refuseIfTrue(root, "lora_bias", where, "a LoRA bias (lora_bias: true) is not supported");
    refuseIfTrue(root, "use_qalora", where, "QALoRA (use_qalora: true) is not supported");
    refuseIfTrue(root, "fan_in_fan_out", where, "fan_in_fan_out: true is for GPT-2-style Conv1D layers, not Llama");
    JsonNode init = root.get("init_lora_weights");
    if (init != null && init.isTextual()) {
      String how = init.asText().toLowerCase(java.util.Locale.ROOT);
      if (how.startsWith("pissa") || how.equals("olora") || how.equals("corda") || how.equals("loftq")) {
        // these initialisations also change the base weights: the adapter only fits the residual model
        throw new ModelFormatException(where + ": init_lora_weights is \"" + init.asText()
            + "\", which modifies the base model; convert the adapter with PEFT"
            + " (path_initial_model_for_weight_conversion) or merge it first");
      }
    }
    String bias = text(root, "bias");
    if (bias != null && !bias.equals("none")) {
      throw new ModelFormatException(where + ": bias is \"" + bias + "\"; medtune supports only \"none\"");
    }
    for (String field : List.of("modules_to_save", "layers_to_transform", "layers_pattern",
        "exclude_modules", "layer_replication", "trainable_token_indices", "target_parameters",
        "alora_invocation_tokens", "megatron_config")) {
      JsonNode n = root.get(field);
      if (n != null && !n.isNull() && !(n.isContainerNode() && n.isEmpty())) {
        throw new ModelFormatException(where + ": " + field + " is " + n + "; medtune does not support " + field
            + " (expected null)");
      }
    }
    for (String field : List.of("rank_pattern", "alpha_pattern")) {
      JsonNode n = root.get(field);
      if (n != null && !n.isNull() && !n.isEmpty()) {
        throw new ModelFormatException(where + ": " + field + " is " + n
            + "; per-module ranks/alphas are not supported (expected {})");
      }
    }
    JsonNode rNode = root.get("r");
    if (rNode == null || !rNode.canConvertToExactIntegral() || rNode.asInt() <= 0) {
      throw new ModelFormatException(where + ": r must be a positive integer, found " + rNode);
    }
    JsonNode alphaNode = root.get("lora_alpha");
    if (alphaNode == null || !alphaNode.isNumber()) {
      throw new ModelFormatException(where + ": lora_alpha must be a number, found " + alphaNode);
    }
    JsonNode dropoutNode = root.get("lora_dropout");
    double dropout = dropoutNode == null || dropoutNode.isNull() ? 0 : dropoutNode.asDouble();
    JsonNode rs = root.get("use_rslora");
    boolean useRslora = rs != null && rs.asBoolean(false);
    List<LoraTarget> targets = targets(root.get("target_modules"), where);
    String base = text(root, "base_model_name_or_path");
    try {
      return new PeftAdapterConfig(
          new LoraConfig(rNode.asInt(), alphaNode.asDouble(), dropout, targets, useRslora), base);
    } catch (IllegalArgumentException e) {
      throw new ModelFormatException(where + ": " + e.getMessage(), e);
    }
  }

  private static List<LoraTarget> targets(JsonNode node, String where) {
    if (node == null || node.isNull()) {
      throw new ModelFormatException(where + ": target_modules is missing; expected a list such as [\"q_proj\", \"v_proj\"]");
    }
    if (node.isTextual()) {
      if (node.asText().equals("all-linear")) {
        return List.of(LoraTarget.values()); // every linear layer of a decoder layer (lm_head excluded)
      }
      throw new ModelFormatException(where + ": target_modules is the regular expression \"" + node.asText()
          + "\"; medtune reads a list of module names (q_proj ... down_proj) or \"all-linear\"");
    }
    if (!node.isArray()) {
      throw new ModelFormatException(where + ": target_modules must be a list, found " + node);
    }
    List<LoraTarget> out = new ArrayList<>();
    for (JsonNode n : node) {
      LoraTarget t = n.isTextual() ? LoraTarget.fromModuleName(n.asText()) : null;
      if (t == null) {
        throw new ModelFormatException(where + ": target_modules names " + n
            + ", which is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
      }
      if (!out.contains(t)) {
        out.add(t);
      }
    }
    return out;
  }

  /**
   * Writes {@code dir/adapter_config.json} as PEFT 0.21 writes it after {@code save_pretrained}
   * ({@code inference_mode: true}); written to a temporary file and renamed.
   */
  public void write(Path dir) {
    Json.writeAtomically(dir.resolve(FILE_NAME), toJson().getBytes(StandardCharsets.UTF_8));
  }

  /** The file's text: every field PEFT 0.21's LoraConfig saves, sorted, Python-style layout. */
  public String toJson() {
    Map<String, Object> m = new TreeMap<>();
    m.put("alora_invocation_tokens", null);
    m.put("alpha_pattern", Map.of());
    m.put("arrow_config", null);
    m.put("auto_mapping", null);
    m.put("base_model_name_or_path", baseModelNameOrPath);
    m.put("bias", "none");
    m.put("corda_config", null);
    m.put("ensure_weight_tying", false);
    m.put("eva_config", null);
    m.put("exclude_modules", null);
    m.put("fan_in_fan_out", false);
    m.put("inference_mode", true);
    m.put("init_lora_weights", true);
    m.put("kasa_config", null);
    m.put("layer_replication", null);
    m.put("layers_pattern", null);
    m.put("layers_to_transform", null);
    m.put("loftq_config", Map.of());
    m.put("lora_alpha", pythonNumber(lora.alpha()));
    m.put("lora_bias", false);
    m.put("lora_dropout", lora.dropout());
    m.put("lora_ga_config", null);
    m.put("megatron_config", null);
    m.put("megatron_core", "megatron.core");
    m.put("modules_to_save", null);
    m.put("monteclora_config", null);
    m.put("peft_type", "LORA");
    m.put("peft_version", PEFT_FORMAT_VERSION);
    m.put("qalora_group_size", 16);
    m.put("r", lora.r());
    m.put("rank_pattern", Map.of());
    m.put("revision", null);
    m.put("target_modules", lora.targets().stream().map(LoraTarget::moduleName).toList());
    m.put("target_parameters", null);
    m.put("task_type", "CAUSAL_LM");
    m.put("trainable_token_indices", null);
    m.put("use_bdlora", null);
    m.put("use_dora", false);
    m.put("use_qalora", false);
    m.put("use_rslora", lora.useRslora());
    m.put("velora_config", null);
    StringBuilder out = new StringBuilder("{\n");
    int i = 0;
    for (Map.Entry<String, Object> e : m.entrySet()) {
      out.append("  ").append(scalar(e.getKey())).append(": ");
      if (e.getValue() instanceof List<?> list) {
        out.append("[\n");
        for (int j = 0; j < list.size(); j++) {
          out.append("    ").append(scalar(list.get(j))).append(j + 1 < list.size() ? ",\n" : "\n");
        }
        out.append("  ]");
      } else if (e.getValue() instanceof Map<?, ?> map && map.isEmpty()) {
        out.append("{}");
      } else {
        out.append(scalar(e.getValue()));
      }
      out.append(++i < m.size() ? ",\n" : "\n");
    }
    return out.append("}").toString();
  }

  /** An int when integral (PEFT's lora_alpha is usually an int), else a float. */
  private static Object pythonNumber(double v) {
    return v == Math.rint(v) && Math.abs(v) < 1e15 ? (Object) (long) v : (Object) v;
  }

  private static String scalar(Object v) {
    if (v instanceof Double d) {
      // Python's repr: 0.0, 0.05, 1e-05
      String s = Double.toString(d);
      if (s.contains("E")) {
        String mant = s.substring(0, s.indexOf('E')).replaceAll("\\.0$", "");
        int exp = Integer.parseInt(s.substring(s.indexOf('E') + 1));
        s = mant + "e" + (exp < 0 ? "-" : "+") + (Math.abs(exp) < 10 ? "0" : "") + Math.abs(exp);
      }
      return s;
    }
    String json;
    try {
      json = Json.MAPPER.writeValueAsString(v);
    } catch (JsonProcessingException e) {
      throw new UncheckedIOException(e);
    }
    // Python's json.dumps default (ensure_ascii): every non-ASCII UTF-16 unit as a lowercase \\uXXXX
    StringBuilder out = new StringBuilder(json.length());
    for (int i = 0; i < json.length(); i++) {
      char c = json.charAt(i);
      if (c < 0x80) {
        out.append(c);
      } else {
        out.append(String.format("\\u%04x", (int) c));
      }
    }
    return out.toString();
  }

  private static String text(JsonNode root, String field) {
    JsonNode n = root.get(field);
    return n == null || n.isNull() ? null : n.asText();
  }

  private static String quoted(String s) {
    return s == null ? "missing" : "\"" + s + "\"";
  }

  private static void refuseIfTrue(JsonNode root, String field, String where, String why) {
    JsonNode n = root.get(field);
    if (n != null && n.asBoolean(false)) {
      throw new ModelFormatException(where + ": " + why);
    }
  }

  /** The fields as an ordered map, for records that embed the adapter's settings (training.json). */
  public Map<String, Object> summary() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("r", lora.r());
    m.put("lora_alpha", pythonNumber(lora.alpha()));
    m.put("lora_dropout", lora.dropout());
    m.put("target_modules", lora.targets().stream().map(LoraTarget::moduleName).toList());
    m.put("use_rslora", lora.useRslora());
    m.put("scale", lora.scale());
    return m;
  }
}
