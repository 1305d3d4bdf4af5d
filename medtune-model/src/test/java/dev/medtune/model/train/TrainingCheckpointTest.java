package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.ModelShapes;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.LoraConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainingCheckpointTest {
  @TempDir Path out;

  private static Map<String, Object> hyper() {
    Map<String, Object> h = new LinkedHashMap<>();
    h.put("lr", 2e-4);
    h.put("lora_r", 16);
    h.put("target_modules", List.of("q_proj", "v_proj"));
    h.put("packing", false);
    return h;
  }

  /** A few AdamW steps on the adapter with made-up gradients, so every piece of state is non-trivial. */
  private static AdamW train(LoraAdapter a, int steps) {
    AdamW opt = AdamW.forParameters(AdamW.Hyperparameters.recipe(), a.parameters());
    List<float[]> grads = new ArrayList<>();
    for (float[] p : a.parameters()) {
      grads.add(new float[p.length]);
    }
    for (int s = 0; s < steps; s++) {
      for (float[] g : grads) {
        for (int i = 0; i < g.length; i++) {
          g[i] = (float) Math.sin(i * 0.37 + s);
        }
      }
      opt.step(a.parameters(), grads, 1e-3);
    }
    return opt;
  }

  @Test
  void savesAndRestoresAdapterOptimizerAndState() throws Exception {
    var model = ModelShapes.small();
    var adapter = LoraAdapter.initialize(model, LoraConfig.recipe(), 3407);
    AdamW opt = train(adapter, 3);
    var state = new TrainerState(3, new DataPosition(1, 8), 3407, "abc123", "def456", hyper());
    Path dir = TrainingCheckpoint.save(out, 2, adapter, "models/tiny", opt, state);
    assertEquals(List.of("adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors",
        "trainer_state.json"), Files.list(dir).map(p -> p.getFileName().toString()).sorted().toList());

    var r = TrainingCheckpoint.restore(dir, model, AdamW.Hyperparameters.recipe());
    assertEquals(state, r.state());
    assertEquals(3, r.optimizer().stepCount());
    for (int i = 0; i < adapter.tensors().size(); i++) {
      assertArrayEquals(adapter.tensors().get(i).data(), r.adapter().tensors().get(i).data());
      assertArrayEquals(opt.expAvg(i), r.optimizer().expAvg(i));
      assertArrayEquals(opt.expAvgSq(i), r.optimizer().expAvgSq(i));
    }
    // continuing from the restored state equals continuing the original
    train(adapter, 0);
    List<float[]> g = new ArrayList<>();
    for (float[] p : adapter.parameters()) {
      float[] x = new float[p.length];
      java.util.Arrays.fill(x, 0.5f);
      g.add(x);
    }
    opt.step(adapter.parameters(), g, 1e-3);
    r.optimizer().step(r.adapter().parameters(), g, 1e-3);
    for (int i = 0; i < adapter.tensors().size(); i++) {
      assertArrayEquals(adapter.tensors().get(i).data(), r.adapter().tensors().get(i).data());
    }
  }

  @Test
  void resumeRefusesAnotherModelDataOrSettingsSayingWhatDiffers() {
    var model = ModelShapes.small();
    var adapter = LoraAdapter.initialize(model, LoraConfig.recipe(), 1);
    var saved = new TrainerState(4, new DataPosition(0, 16), 3407, "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", hyper());
    TrainingCheckpoint.save(out, 1, adapter, null, train(adapter, 4), saved);

    var same = new TrainerState(0, DataPosition.START, 3407, "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb", hyper());
    var r = TrainingCheckpoint.resumeLatest(out, model, AdamW.Hyperparameters.recipe(), same).orElseThrow();
    assertEquals(4, r.state().step());
    assertEquals(new DataPosition(0, 16), r.state().data());

    Map<String, Object> h = hyper();
    h.put("lr", 1e-4);
    h.remove("packing");
    var other = new TrainerState(0, DataPosition.START, 1, "cccccccccccccccc", "bbbbbbbbbbbbbbbb", h);
    var e = assertThrows(IllegalArgumentException.class,
        () -> TrainingCheckpoint.resumeLatest(out, model, AdamW.Hyperparameters.recipe(), other));
    String m = e.getMessage();
    assertTrue(m.startsWith("cannot resume from " + out.resolve("checkpoint-4") + ": the base model differs (fingerprint aaaaaaaaaaaa in the checkpoint, cccccccccccc now)"), m);
    assertTrue(m.contains("seed 3407 in the checkpoint, 1 now"), m);
    assertTrue(m.contains("lr 2.0E-4 in the checkpoint, 1.0E-4 now"), m);
    assertTrue(m.contains("packing false in the checkpoint, unset now"), m);
    assertTrue(!m.contains("training data differs"), m);

    var otherData = new TrainerState(0, DataPosition.START, 3407, "aaaaaaaaaaaaaaaa", "eeeeeeeeeeeeeeee", hyper());
    e = assertThrows(IllegalArgumentException.class,
        () -> TrainingCheckpoint.resumeLatest(out, model, AdamW.Hyperparameters.recipe(), otherData));
    assertTrue(e.getMessage().endsWith("the training data differs (sha256 bbbbbbbbbbbb in the checkpoint, eeeeeeeeeeee now)"),
        e.getMessage());
    assertTrue(TrainingCheckpoint.resumeLatest(out.resolve("empty"), model, AdamW.Hyperparameters.recipe(), same).isEmpty());
  }

  @Test
  void anOptimizerStateForAnotherAdapterIsRefused() {
    var model = ModelShapes.small();
    var adapter = LoraAdapter.initialize(model, LoraConfig.recipe(), 1);
    AdamW opt = train(adapter, 1);
    Path f = out.resolve("optimizer.safetensors");
    opt.save(f, adapter.tensors().stream().map(LoraAdapter.Tensor::name).toList());
    var small = LoraAdapter.initialize(model, new LoraConfig(4, 4, 0, List.of(dev.medtune.model.lora.LoraTarget.Q_PROJ), false), 1);
    AdamW fresh = AdamW.forParameters(AdamW.Hyperparameters.recipe(), small.parameters());
    var e = assertThrows(IllegalArgumentException.class,
        () -> fresh.load(f, small.tensors().stream().map(LoraAdapter.Tensor::name).toList()));
    assertTrue(e.getMessage().contains("q_proj.lora_A.weight.exp_avg is F32 [1024], expected F32 [256]"), e.getMessage());
  }
}
