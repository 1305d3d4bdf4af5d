package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.medtune.model.Json;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.ModelFormatException;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.PeftAdapterConfig;
import dev.medtune.model.safetensors.SafetensorsFile;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Parity with PEFT through the fixtures {@code reference/make_peft_fixtures.py} writes (into
 * {@code src/test/resources/peft-fixtures/}): PEFT's adapters load in medtune with PEFT's names
 * and scale, medtune's copy of them has PEFT's fields and tensors, and medtune's clipping,
 * schedule and AdamW, fed torch's gradients, retrace PEFT's 20 training steps. Logit and loss
 * parity need the LoRA forward and backward (next session). Skipped, saying why, until the
 * fixtures are generated on the GPU machine.
 */
class PeftFixturesTest {
  @TempDir Path tmp;
  Path fx;
  LlamaConfig model;

  @BeforeEach
  void fixtures() throws Exception {
    URL u = PeftFixturesTest.class.getResource("/peft-fixtures/expected.json");
    Assumptions.assumeTrue(u != null, "no PEFT fixtures yet: run reference/make_peft_fixtures.py on the GPU"
        + " machine and copy its output to medtune-model/src/test/resources/peft-fixtures/");
    fx = Path.of(u.toURI()).getParent();
    model = LlamaConfig.read(fx.resolve("base/config.json"));
  }

  @Test
  void peftAdaptersLoadWithPeftsNamesAndScale() {
    JsonNode expected = Json.read(fx.resolve("expected.json"));
    for (String name : List.of("adapter-all", "adapter-rslora-qv")) {
      LoraAdapter a = LoraAdapter.load(fx.resolve(name), model);
      List<String> want = new ArrayList<>();
      expected.at("/adapters/" + name + "/tensors").forEach(n -> want.add(n.asText()));
      assertEquals(new TreeSet<>(want), new TreeSet<>(a.tensors().stream().map(LoraAdapter.Tensor::name).toList()), name);
    }
    assertEquals(2.0, LoraAdapter.load(fx.resolve("adapter-all"), model).config().scale());
    assertEquals(8 / Math.sqrt(4), LoraAdapter.load(fx.resolve("adapter-rslora-qv"), model).config().scale(), 1e-12);
  }

  @Test
  void peftsDoraAdapterIsRefused() {
    var e = assertThrows(ModelFormatException.class, () -> LoraAdapter.load(fx.resolve("adapter-dora"), model));
    assertTrue(e.getMessage().contains("DoRA"), e.getMessage());
  }

  @Test
  void medtunesCopyHasPeftsFieldsAndTensors() throws Exception {
    for (String name : List.of("adapter-all", "adapter-rslora-qv")) {
      LoraAdapter a = LoraAdapter.load(fx.resolve(name), model);
      // MEDTUNE_PEFT_RESAVE_DIR keeps these copies for make_peft_fixtures.py --check (PEFT reads medtune's)
      String keep = System.getenv("MEDTUNE_PEFT_RESAVE_DIR");
      Path out = (keep == null ? tmp : Path.of(keep)).resolve(name);
      a.save(out, fx.resolve("base").toString());
      JsonNode peft = Json.read(fx.resolve(name).resolve(PeftAdapterConfig.FILE_NAME));
      JsonNode ours = Json.read(out.resolve(PeftAdapterConfig.FILE_NAME));
      TreeSet<String> pk = new TreeSet<>();
      TreeSet<String> ok = new TreeSet<>();
      peft.fieldNames().forEachRemaining(pk::add);
      ours.fieldNames().forEachRemaining(ok::add);
      assertEquals(pk, ok, name + ": the fields PEFT " + peft.path("peft_version").asText() + " writes");
      for (String k : pk) {
        if (!List.of("base_model_name_or_path", "target_modules", "peft_version").contains(k)) {
          assertTrue(peft.get(k).equals(ours.get(k)) || (peft.get(k).isNumber() && peft.get(k).asDouble() == ours.get(k).asDouble()),
              name + ": " + k + " is " + ours.get(k) + ", PEFT wrote " + peft.get(k));
        }
      }
      try (var p = SafetensorsFile.open(fx.resolve(name).resolve(LoraAdapter.WEIGHTS_FILE));
          var m = SafetensorsFile.open(out.resolve(LoraAdapter.WEIGHTS_FILE))) {
        assertEquals(p.tensors().keySet(), m.tensors().keySet());
        for (var t : p.tensors().values()) {
          var mine = m.tensor(t.name());
          assertEquals(t.dtype(), mine.dtype(), t.name());
          assertEquals(List.of(t.shape()[0], t.shape()[1]), List.of(mine.shape()[0], mine.shape()[1]), t.name());
          assertEquals(-1, t.data().mismatch(mine.data()), t.name() + " bit for bit");
        }
      }
    }
  }

  @Test
  void optimizerClippingAndScheduleRetracePeftsTrainingGivenTorchsGradients() {
    JsonNode train = Json.read(fx.resolve("train/train.json"));
    JsonNode hp = train.get("hyperparameters");
    LoraAdapter a = LoraAdapter.load(fx.resolve("train/initial_adapter"), model);
    var schedule = new LearningRateSchedule(LearningRateSchedule.Kind.LINEAR, hp.get("lr").asDouble(),
        hp.get("warmup_steps").asInt(), hp.get("max_steps").asInt());
    AdamW opt = AdamW.forParameters(new AdamW.Hyperparameters(hp.at("/betas/0").asDouble(),
        hp.at("/betas/1").asDouble(), hp.get("eps").asDouble(), hp.get("weight_decay").asDouble()), a.parameters());
    try (var g = SafetensorsFile.open(fx.resolve("train/grads.safetensors"))) {
      for (JsonNode s : train.get("steps")) {
        int k = s.get("step").asInt();
        List<float[]> grads = new ArrayList<>();
        for (var t : a.tensors()) {
          grads.add(g.tensor("step" + k + "." + t.name()).toFloatArray());
        }
        double lr = schedule.lr(k - 1);
        assertEquals(s.get("lr").asDouble(), lr, 1e-15, "lr of step " + k);
        double norm = GradientClipping.clip(grads, hp.get("max_grad_norm").asDouble());
        assertEquals(s.get("grad_norm").asDouble(), norm, 1e-5 * norm, "grad norm of step " + k);
        opt.step(a.parameters(), grads, lr);
      }
    }
    LoraAdapter peftFinal = LoraAdapter.load(fx.resolve("train/final_adapter"), model);
    double worst = 0;
    for (int i = 0; i < a.tensors().size(); i++) {
      float[] x = a.tensors().get(i).data();
      float[] y = peftFinal.tensors().get(i).data();
      for (int j = 0; j < x.length; j++) {
        worst = Math.max(worst, Math.abs(x[j] - y[j]));
      }
    }
    assertTrue(worst < 1e-6, "after 20 steps the adapters differ by up to " + worst);
  }
}
