package dev.medtune.model.lora;

import dev.medtune.model.LlamaConfig;
import dev.medtune.model.ModelFormatException;
import dev.medtune.model.safetensors.DType;
import dev.medtune.model.safetensors.SafetensorsFile;
import dev.medtune.model.safetensors.SafetensorsWriter;
import dev.medtune.model.safetensors.TensorInfo;
import dev.medtune.model.train.SplitMix64;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The LoRA weights of a Llama model: for each decoder layer and each targeted projection, A of
 * shape [r, in] and B of shape [out, r], float32, row-major as PyTorch stores them. Tensor names
 * are PEFT's ({@code base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight}), so the
 * adapter {@link #save}d loads in PEFT, unsloth and vLLM, and {@link #load} reads theirs.
 */
public final class LoraAdapter {

  /** One trainable tensor: its PEFT name, shape and live data. */
  public record Tensor(String name, int layer, LoraTarget target, boolean isA, int rows, int cols, float[] data) {}

  private final LlamaConfig model;
  private final LoraConfig config;
  private final List<Tensor> tensors;

  private LoraAdapter(LlamaConfig model, LoraConfig config, List<Tensor> tensors) {
    this.model = model;
    this.config = config;
    this.tensors = Collections.unmodifiableList(tensors);
  }

  /** PEFT's name of the A or B weight of {@code target} in layer {@code layer}. */
  public static String tensorName(int layer, LoraTarget target, boolean isA) {
    return "base_model.model.model.layers." + layer + "." + target.modulePath()
        + (isA ? ".lora_A.weight" : ".lora_B.weight");
  }

  /** All zeros (the shape of an adapter, e.g. to load into). */
  public static LoraAdapter zeros(LlamaConfig model, LoraConfig config) {
    List<Tensor> list = new ArrayList<>();
    for (int layer = 0; layer < model.numLayers(); layer++) {
      for (LoraTarget t : config.targets()) {
        int in = t.inFeatures(model);
        int out = t.outFeatures(model);
        list.add(new Tensor(tensorName(layer, t, true), layer, t, true, config.r(), in,
            new float[Math.multiplyExact(config.r(), in)]));
        list.add(new Tensor(tensorName(layer, t, false), layer, t, false, out, config.r(),
            new float[Math.multiplyExact(out, config.r())]));
      }
    }
    return new LoraAdapter(model, config, list);
  }

  /**
   * PEFT's default initialisation ({@code init_lora_weights=True}, from Microsoft's loralib): A as
   * {@code nn.init.kaiming_uniform_(A, a=sqrt(5))}, B zero, so the adapter starts as a no-op. With
   * fan_in = in, torch's gain is {@code sqrt(2 / (1 + a^2)) = sqrt(1/3)} and its bound
   * {@code gain * sqrt(3 / fan_in) = 1 / sqrt(in)}: A ~ U(-1/sqrt(in), 1/sqrt(in)) (the same as
   * {@code nn.Linear}'s default weight init). Values come from {@link SplitMix64} seeded with
   * {@code seed}, filled layer by layer, target by target in {@link LoraTarget} order, row-major;
   * they follow torch's distribution, not torch's random stream.
   */
  public static LoraAdapter initialize(LlamaConfig model, LoraConfig config, long seed) {
    LoraAdapter a = zeros(model, config);
    SplitMix64 rng = SplitMix64.forStream(seed, 0x10AA);
    for (Tensor t : a.tensors) {
      if (t.isA()) {
        double bound = kaimingUniformBound(t.cols());
        float[] d = t.data();
        for (int i = 0; i < d.length; i++) {
          d[i] = (float) ((rng.nextDouble() * 2 - 1) * bound);
        }
      }
    }
    return a;
  }

  /** torch's {@code kaiming_uniform_(w, a=sqrt(5))} bound for a weight with {@code fanIn} inputs. */
  static double kaimingUniformBound(int fanIn) {
    double a = Math.sqrt(5);
    double gain = Math.sqrt(2.0 / (1 + a * a));
    double std = gain / Math.sqrt(fanIn);
    return Math.sqrt(3.0) * std;
  }

  /** Number of trainable values for this model and config (41,943,040 for the recipe on Llama 3.1 8B). */
  public static long parameterCount(LlamaConfig model, LoraConfig config) {
    long perLayer = 0;
    for (LoraTarget t : config.targets()) {
      perLayer += (long) config.r() * (t.inFeatures(model) + t.outFeatures(model));
    }
    return perLayer * model.numLayers();
  }

  public LoraConfig config() {
    return config;
  }

  public LlamaConfig model() {
    return model;
  }

  /** Every tensor, layer by layer, target by target, A before B: the order of optimizer state. */
  public List<Tensor> tensors() {
    return tensors;
  }

  /** The live data of every tensor in {@link #tensors()} order (what the optimizer updates). */
  public List<float[]> parameters() {
    return tensors.stream().map(Tensor::data).toList();
  }

  /** A of {@code target} in {@code layer}, [r, in] row-major; null when the target is not adapted. */
  public float[] a(int layer, LoraTarget target) {
    Tensor t = find(layer, target, true);
    return t == null ? null : t.data();
  }

  /** B of {@code target} in {@code layer}, [out, r] row-major; null when the target is not adapted. */
  public float[] b(int layer, LoraTarget target) {
    Tensor t = find(layer, target, false);
    return t == null ? null : t.data();
  }

  private Tensor find(int layer, LoraTarget target, boolean isA) {
    int ti = config.targets().indexOf(target);
    if (ti < 0 || layer < 0 || layer >= model.numLayers()) {
      return null;
    }
    return tensors.get((layer * config.targets().size() + ti) * 2 + (isA ? 0 : 1));
  }

  public long parameterCount() {
    return parameterCount(model, config);
  }

  /** The file name PEFT uses for the weights. */
  public static final String WEIGHTS_FILE = "adapter_model.safetensors";

  /**
   * Writes the adapter in PEFT layout: {@code dir/adapter_config.json} and
   * {@code dir/adapter_model.safetensors} (float32, metadata {@code format: pt} as PEFT writes it).
   * Each file is written to a temporary name and renamed.
   */
  public void save(Path dir, String baseModelNameOrPath) {
    SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
    for (Tensor t : tensors) {
      w.add(t.name(), DType.F32, new long[] {t.rows(), t.cols()}, t.data());
    }
    w.write(dir.resolve(WEIGHTS_FILE));
    new PeftAdapterConfig(config, baseModelNameOrPath).write(dir);
  }

  /**
   * Loads a PEFT adapter folder for {@code model}. The config must be one medtune supports
   * ({@link PeftAdapterConfig#read}); every tensor it implies must be in the weights file with
   * its exact shape (bf16/f16/f32 read, kept as float32), and the file may hold nothing else.
   * A mismatch is a {@link ModelFormatException} naming the file, the tensor, and the expected
   * and found shapes (an adapter of another model or rank fails on its first tensor).
   */
  public static LoraAdapter load(Path dir, LlamaConfig model) {
    PeftAdapterConfig pc = PeftAdapterConfig.read(dir);
    Path file = dir.resolve(WEIGHTS_FILE);
    if (!Files.isRegularFile(file)) {
      throw new ModelFormatException(file + ": no such file (a PEFT adapter folder holds "
          + WEIGHTS_FILE + "; .bin adapters are not read)");
    }
    LoraAdapter a = zeros(model, pc.lora());
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      Map<String, TensorInfo> found = new HashMap<>(f.tensors());
      for (Tensor t : a.tensors) {
        TensorInfo info = found.remove(t.name());
        if (info == null) {
          throw new ModelFormatException(file + ": tensor " + t.name() + " is missing (adapter_config.json"
              + " targets " + targetNames(pc.lora()) + " on " + model.numLayers() + " layers)");
        }
        long[] want = {t.rows(), t.cols()};
        if (!Arrays.equals(want, info.shape())) {
          throw new ModelFormatException(file + ": tensor " + t.name() + " has shape "
              + Arrays.toString(info.shape()) + ", expected " + Arrays.toString(want) + " (r="
              + pc.lora().r() + ", " + t.target().moduleName() + " is " + t.target().inFeatures(model)
              + " -> " + t.target().outFeatures(model) + " in this model)");
        }
        float[] values = info.toFloatArray();
        System.arraycopy(values, 0, t.data(), 0, values.length);
      }
      if (!found.isEmpty()) {
        String extra = found.keySet().stream().sorted().findFirst().orElseThrow();
        throw new ModelFormatException(file + ": tensor " + extra + " does not belong to a LoRA of "
            + targetNames(pc.lora()) + " on a " + model.numLayers() + "-layer model ("
            + found.size() + " unexpected tensor" + (found.size() == 1 ? "" : "s") + ")");
      }
    }
    return a;
  }

  private static List<String> targetNames(LoraConfig c) {
    return c.targets().stream().map(LoraTarget::moduleName).toList();
  }
}
