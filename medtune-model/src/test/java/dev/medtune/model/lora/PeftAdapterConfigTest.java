package dev.medtune.model.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.medtune.model.ModelFormatException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PeftAdapterConfigTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir Path tmp;

  private static Path resource(String name) throws Exception {
    return Path.of(PeftAdapterConfigTest.class.getResource("/peft/" + name).toURI());
  }

  @Test
  void writesTheFieldsPeft0212Writes() throws Exception {
    new PeftAdapterConfig(LoraConfig.recipe(), "unsloth/Meta-Llama-3.1-8B").write(tmp);
    String text = Files.readString(tmp.resolve("adapter_config.json"));
    JsonNode ours = JSON.readTree(text);
    JsonNode peft = JSON.readTree(Files.readString(resource("peft-0.21.2-regex-targets.json")));
    assertEquals(fieldNames(peft), fieldNames(ours));
    // values PEFT writes for a plain LoRA, as in the real file
    for (String same : List.of("alpha_pattern", "bias", "fan_in_fan_out", "inference_mode",
        "init_lora_weights", "loftq_config", "lora_bias", "megatron_core", "modules_to_save",
        "peft_type", "qalora_group_size", "rank_pattern", "task_type", "use_dora", "use_rslora")) {
      assertEquals(peft.get(same), ours.get(same), same);
    }
    assertEquals(16, ours.get("r").intValue());
    assertTrue(ours.get("lora_alpha").isIntegralNumber());
    assertEquals(List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        strings(ours.get("target_modules")));
    // json.dumps(indent=2, sort_keys=True) layout
    assertTrue(text.startsWith("{\n  \"alora_invocation_tokens\": null,\n  \"alpha_pattern\": {},\n"), text);
    assertTrue(text.contains("  \"lora_dropout\": 0.0,\n"), text);
    assertTrue(text.contains("  \"target_modules\": [\n    \"q_proj\",\n"), text);
    assertTrue(text.endsWith("  \"velora_config\": null\n}"), text);
  }

  @Test
  void roundTrips() throws Exception {
    var cfg = new PeftAdapterConfig(new LoraConfig(8, 12.5, 0.05,
        List.of(LoraTarget.V_PROJ, LoraTarget.Q_PROJ), true), "/models/tiny ü");
    cfg.write(tmp);
    assertTrue(Files.readString(tmp.resolve("adapter_config.json")).contains("\"/models/tiny \\u00fc\""));
    assertEquals(cfg, PeftAdapterConfig.read(tmp));
    assertEquals(cfg, PeftAdapterConfig.read(tmp.resolve("adapter_config.json")));
  }

  @Test
  void readsAdaptersRealPeftReleasesWrote() throws Exception {
    var qwen = PeftAdapterConfig.read(resource("peft-0.19.1-qwen-seven-projections.json"));
    assertEquals(new LoraConfig(16, 16, 0.05, List.of(LoraTarget.values()), false), qwen.lora());
    assertEquals("Qwen/Qwen2.5-3B-Instruct", qwen.baseModelNameOrPath());
    var rs = PeftAdapterConfig.read(resource("peft-0.18.1-rslora.json"));
    assertEquals(24, rs.lora().r());
    assertTrue(rs.lora().useRslora());
    assertEquals(48 / Math.sqrt(24), rs.lora().scale(), 1e-12);
  }

  @Test
  void refusesRegexTargetsNamingTheField() throws Exception {
    var e = assertThrows(ModelFormatException.class,
        () -> PeftAdapterConfig.read(resource("peft-0.21.2-regex-targets.json")));
    assertTrue(e.getMessage().contains("peft-0.21.2-regex-targets.json: target_modules is the regular expression"),
        e.getMessage());
  }

  @Test
  void refusesUnsupportedFeaturesAndToleratesUnknownKeys() throws Exception {
    assertRefused("use_dora", JSON.getNodeFactory().booleanNode(true), "DoRA");
    assertRefused("bias", JSON.getNodeFactory().textNode("all"), "bias is \"all\"");
    assertRefused("modules_to_save", JSON.readTree("[\"lm_head\"]"), "modules_to_save");
    assertRefused("rank_pattern", JSON.readTree("{\"q_proj\": 8}"), "rank_pattern");
    assertRefused("peft_type", JSON.getNodeFactory().textNode("IA3"), "peft_type is \"IA3\"");
    assertRefused("target_modules", JSON.readTree("[\"q_proj\", \"lm_head\"]"), "\"lm_head\"");
    assertRefused("r", JSON.getNodeFactory().numberNode(0), "r must be a positive integer");
    assertRefused("init_lora_weights", JSON.getNodeFactory().textNode("pissa_niter_4"), "modifies the base model");

    ObjectNode n = base();
    n.put("some_future_field", 42);
    n.remove("peft_version");
    n.put("target_modules", "all-linear");
    Files.writeString(tmp.resolve("adapter_config.json"), n.toString());
    var read = PeftAdapterConfig.read(tmp);
    assertEquals(List.of(LoraTarget.values()), read.lora().targets());
    assertNull(PeftAdapterConfig.read(resource("peft-0.19.1-qwen-seven-projections.json")).lora().targets()
        .stream().filter(t -> t == null).findAny().orElse(null));
  }

  @Test
  void missingFileIsNamed() {
    var e = assertThrows(ModelFormatException.class, () -> PeftAdapterConfig.read(tmp.resolve("nope")));
    assertTrue(e.getMessage().contains("nope"), e.getMessage());
  }

  private ObjectNode base() throws Exception {
    return (ObjectNode) JSON.readTree(Files.readString(resource("peft-0.19.1-qwen-seven-projections.json")));
  }

  private void assertRefused(String field, JsonNode value, String expected) throws Exception {
    ObjectNode n = base();
    n.set(field, value);
    Path f = tmp.resolve(field + ".json");
    Files.writeString(f, n.toString());
    var e = assertThrows(ModelFormatException.class, () -> PeftAdapterConfig.read(f));
    assertTrue(e.getMessage().startsWith(f.toString()) && e.getMessage().contains(expected),
        e.getMessage());
  }

  private static List<String> fieldNames(JsonNode n) {
    List<String> out = new ArrayList<>();
    n.fieldNames().forEachRemaining(out::add);
    return out;
  }

  private static List<String> strings(JsonNode n) {
    List<String> out = new ArrayList<>();
    n.forEach(x -> out.add(x.asText()));
    return out;
  }
}
