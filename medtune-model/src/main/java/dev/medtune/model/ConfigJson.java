package dev.medtune.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;

/**
 * {@code config.json} to {@link LlamaConfig} and back. Defaults are those of transformers'
 * {@code LlamaConfig} where a key is optional there; keys medtune does not use are ignored.
 */
final class ConfigJson {
  private ConfigJson() {}

  static LlamaConfig read(Path file) {
    JsonNode root = Json.read(file);
    if (!root.isObject()) {
      throw new ModelFormatException(file + ": expected a JSON object, found " + root.getNodeType());
    }
    Reader r = new Reader(file, root);
    JsonNode arch = root.get("architectures");
    if (arch != null && !arch.isNull()) {
      boolean llama = false;
      for (JsonNode a : arch) {
        llama |= "LlamaForCausalLM".equals(a.asText());
      }
      if (!llama) {
        throw r.error("architectures", "LlamaForCausalLM", arch.toString());
      }
    }
    String modelType = r.string("model_type", null);
    if (!"llama".equals(modelType)) {
      throw r.error("model_type", "\"llama\"", modelType == null ? "nothing" : '"' + modelType + '"');
    }
    String act = r.string("hidden_act", "silu");
    if (!act.equals("silu")) {
      throw r.error("hidden_act", "\"silu\"", '"' + act + '"');
    }
    for (String bias : new String[] {"attention_bias", "mlp_bias"}) {
      if (r.bool(bias, false)) {
        throw r.error(bias, "false (medtune's Llama has no biases)", "true");
      }
    }
    int hidden = r.positiveInt("hidden_size", null);
    int heads = r.positiveInt("num_attention_heads", null);
    int kvHeads = r.positiveInt("num_key_value_heads", heads);
    if (heads % kvHeads != 0) {
      throw r.error("num_key_value_heads", "a divisor of num_attention_heads (" + heads + ")",
          String.valueOf(kvHeads));
    }
    Integer defaultHeadDim = hidden % heads == 0 ? hidden / heads : null;
    int headDim = r.positiveInt("head_dim", defaultHeadDim);
    if (headDim % 2 != 0) {
      throw r.error("head_dim", "an even number (rotary pairs)", String.valueOf(headDim));
    }

    // transformers 5 moved rope_theta and rope_scaling into rope_parameters; read both forms.
    JsonNode ropeParams = root.get("rope_parameters");
    String ropeKey = "rope_scaling";
    JsonNode scalingNode = root.get("rope_scaling");
    double theta = r.number("rope_theta", 10000.0);
    if (ropeParams != null && ropeParams.isObject()) {
      Reader rp = new Reader(file, ropeParams, "rope_parameters.");
      theta = rp.number("rope_theta", theta);
      scalingNode = ropeParams;
      ropeKey = "rope_parameters";
    }
    LlamaConfig.RopeScaling scaling = readScaling(file, ropeKey, scalingNode);

    JsonNode eos = root.get("eos_token_id");
    int[] eosIds;
    if (eos == null || eos.isNull()) {
      eosIds = new int[0];
    } else if (eos.isIntegralNumber()) {
      eosIds = new int[] {eos.intValue()};
    } else if (eos.isArray()) {
      eosIds = new int[eos.size()];
      for (int i = 0; i < eosIds.length; i++) {
        if (!eos.get(i).isIntegralNumber()) {
          throw r.error("eos_token_id", "a number or a list of numbers", eos.toString());
        }
        eosIds[i] = eos.get(i).intValue();
      }
    } else {
      throw r.error("eos_token_id", "a number or a list of numbers", eos.toString());
    }
    JsonNode bos = root.get("bos_token_id");
    int bosId = bos == null || bos.isNull() ? -1 : r.positiveOrZeroInt("bos_token_id");
    String dtype = r.string("torch_dtype", null);
    if (dtype == null) {
      dtype = r.string("dtype", "float32");
    }

    return new LlamaConfig(
        hidden,
        r.positiveInt("intermediate_size", null),
        r.positiveInt("num_hidden_layers", null),
        heads,
        kvHeads,
        headDim,
        r.positiveInt("vocab_size", null),
        r.positiveInt("max_position_embeddings", 2048),
        r.number("rms_norm_eps", 1e-6),
        theta,
        scaling,
        r.bool("tie_word_embeddings", false),
        bosId,
        eosIds,
        dtype);
  }

  private static LlamaConfig.RopeScaling readScaling(Path file, String key, JsonNode node) {
    if (node == null || node.isNull()) {
      return null;
    }
    if (!node.isObject()) {
      throw new ModelFormatException(file + ": key " + key + ": expected an object or null, found "
          + node);
    }
    Reader r = new Reader(file, node, key + ".");
    String type = r.string("rope_type", null);
    if (type == null) {
      type = r.string("type", null);
    }
    if (type == null || type.equals("default")) {
      return null;
    }
    if (!type.equals("llama3")) {
      throw new ModelFormatException(file + ": key " + key + ".rope_type: expected \"llama3\" or"
          + " \"default\" (the rope scalings medtune implements), found \"" + type + "\"");
    }
    return new LlamaConfig.RopeScaling(
        r.number("factor", null),
        r.number("low_freq_factor", null),
        r.number("high_freq_factor", null),
        r.positiveInt("original_max_position_embeddings", null));
  }

  static void write(LlamaConfig c, Path file) {
    ObjectNode o = Json.MAPPER.createObjectNode();
    o.putArray("architectures").add("LlamaForCausalLM");
    o.put("attention_bias", false);
    o.put("attention_dropout", 0.0);
    if (c.bosTokenId() >= 0) {
      o.put("bos_token_id", c.bosTokenId());
    }
    if (c.eosTokenIds().length == 1) {
      o.put("eos_token_id", c.eosTokenIds()[0]);
    } else if (c.eosTokenIds().length > 1) {
      var a = o.putArray("eos_token_id");
      for (int e : c.eosTokenIds()) {
        a.add(e);
      }
    }
    o.put("head_dim", c.headDim());
    o.put("hidden_act", "silu");
    o.put("hidden_size", c.hiddenSize());
    o.put("initializer_range", 0.02);
    o.put("intermediate_size", c.intermediateSize());
    o.put("max_position_embeddings", c.maxPositionEmbeddings());
    o.put("mlp_bias", false);
    o.put("model_type", "llama");
    o.put("num_attention_heads", c.numHeads());
    o.put("num_hidden_layers", c.numLayers());
    o.put("num_key_value_heads", c.numKvHeads());
    o.put("pretraining_tp", 1);
    o.put("rms_norm_eps", c.rmsNormEps());
    if (c.ropeScaling() == null) {
      o.putNull("rope_scaling");
    } else {
      ObjectNode s = o.putObject("rope_scaling");
      s.put("factor", c.ropeScaling().factor());
      s.put("high_freq_factor", c.ropeScaling().highFreqFactor());
      s.put("low_freq_factor", c.ropeScaling().lowFreqFactor());
      s.put("original_max_position_embeddings", c.ropeScaling().originalMaxPositionEmbeddings());
      s.put("rope_type", "llama3");
    }
    o.put("rope_theta", c.ropeTheta());
    o.put("tie_word_embeddings", c.tieWordEmbeddings());
    o.put("torch_dtype", c.torchDtype());
    o.put("use_cache", true);
    o.put("vocab_size", c.vocabSize());
    Json.write(file, o);
  }

  /** Typed access to one JSON object with errors that name the file and the key. */
  private record Reader(Path file, JsonNode node, String prefix) {
    Reader(Path file, JsonNode node) {
      this(file, node, "");
    }

    ModelFormatException error(String key, String expected, String found) {
      return new ModelFormatException(file + ": key " + prefix + key + ": expected " + expected
          + ", found " + found);
    }

    private JsonNode get(String key) {
      JsonNode v = node.get(key);
      return v == null || v.isNull() ? null : v;
    }

    String string(String key, String dflt) {
      JsonNode v = get(key);
      if (v == null) {
        return dflt;
      }
      if (!v.isTextual()) {
        throw error(key, "a string", v.toString());
      }
      return v.textValue();
    }

    boolean bool(String key, boolean dflt) {
      JsonNode v = get(key);
      if (v == null) {
        return dflt;
      }
      if (!v.isBoolean()) {
        throw error(key, "true or false", v.toString());
      }
      return v.booleanValue();
    }

    double number(String key, Double dflt) {
      JsonNode v = get(key);
      if (v == null) {
        if (dflt == null) {
          throw error(key, "a number", "nothing (the key is required)");
        }
        return dflt;
      }
      if (!v.isNumber()) {
        throw error(key, "a number", v.toString());
      }
      return v.doubleValue();
    }

    int positiveInt(String key, Integer dflt) {
      JsonNode v = get(key);
      if (v == null) {
        if (dflt == null) {
          throw error(key, "a positive integer", "nothing (the key is required)");
        }
        return dflt;
      }
      if (!v.canConvertToInt() || !v.isIntegralNumber() || v.intValue() <= 0) {
        throw error(key, "a positive integer", v.toString());
      }
      return v.intValue();
    }

    int positiveOrZeroInt(String key) {
      JsonNode v = get(key);
      if (v == null || !v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() < 0) {
        throw error(key, "a token id (integer >= 0)", String.valueOf(v));
      }
      return v.intValue();
    }
  }
}
