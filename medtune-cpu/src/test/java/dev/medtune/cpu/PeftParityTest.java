package dev.medtune.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.LoraLlama;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.train.AdamW;
import dev.medtune.model.train.MicroBatch;
import dev.medtune.model.train.SftTrainer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * medtune's LoRA against PEFT 0.21 (transformers 5.17, torch 2.11, float32 on CPU), from
 * {@code reference/make_peft_fixtures.py}'s output in
 * {@code medtune-model/src/test/resources/peft-fixtures/} (read from there, the one copy):
 * <ul>
 *   <li>PEFT's adapters give the same logits in medtune (max abs error 1e-4);</li>
 *   <li>an adapter medtune wrote gives in PEFT the logits medtune computes with it (1e-4);</li>
 *   <li>20 optimizer steps (2 accumulated micro-batches, clipping 1.0, AdamW, linear warmup
 *       schedule) from PEFT's initial adapter: every step's loss within 1e-4 relative of PEFT's,
 *       the gradient norm within 1e-3 relative, the final adapter within 1e-4 absolute.</li>
 * </ul>
 */
class PeftParityTest {

  private static final Backend cpu = CpuBackendProvider.create(2);
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Path FIXTURES = Path.of("../medtune-model/src/test/resources/peft-fixtures");

  @AfterAll
  static void close() {
    cpu.close();
  }

  private static JsonNode expected() throws Exception {
    return JSON.readTree(Files.readString(FIXTURES.resolve("expected.json")));
  }

  /** One prompt as a micro-batch of one row, nothing counted. */
  private static MicroBatch prompt(JsonNode ids) {
    int n = ids.size();
    int[] tok = new int[n];
    int[] pos = new int[n];
    int[] tgt = new int[n];
    for (int i = 0; i < n; i++) {
      tok[i] = ids.get(i).asInt();
      pos[i] = i;
      tgt[i] = -100;
    }
    return new MicroBatch(1, n, tok, tgt, pos, new int[n], 0, n);
  }

  private static void assertLogits(LoraLlama model, JsonNode prompts, JsonNode want, String what) {
    for (int p = 0; p < prompts.size(); p++) {
      float[] got = model.logits(prompt(prompts.get(p)));
      JsonNode rows = want.get(p);
      int vocab = rows.get(0).size();
      double worst = 0;
      for (int t = 0; t < rows.size(); t++) {
        for (int v = 0; v < vocab; v++) {
          worst = Math.max(worst, Math.abs(got[t * vocab + v] - rows.get(t).get(v).asDouble()));
        }
      }
      assertTrue(worst <= 1e-4, what + ", prompt " + p + ": max |logit - PEFT's| = " + worst);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"adapter-all", "adapter-rslora-qv"})
  void peftAdaptersGivePeftsLogits(String name) throws Exception {
    JsonNode e = expected();
    try (Checkpoint ck = Checkpoint.open(FIXTURES.resolve("base"))) {
      LoraAdapter adapter = LoraAdapter.load(FIXTURES.resolve(name), ck.config());
      LoraLlama model = new LoraLlama(ck, cpu, adapter.config(), 32, 32, true);
      model.loadAdapter(adapter);
      assertLogits(model, e.get("prompts"), e.get("adapters").get(name).get("logits"), name);
    }
  }

  @Test
  void anAdapterMedtuneWroteGivesInPeftTheLogitsMedtuneComputes() throws Exception {
    JsonNode e = expected();
    // the fixture's copy is the adapter reference/medtune-written/ carried to the GPU machine
    assertTrue(Arrays.equals(Files.readAllBytes(Path.of("../reference/medtune-written/adapter_model.safetensors")),
        Files.readAllBytes(FIXTURES.resolve("medtune-written/adapter_model.safetensors"))));
    try (Checkpoint ck = Checkpoint.open(FIXTURES.resolve("base"))) {
      LoraAdapter adapter = LoraAdapter.load(FIXTURES.resolve("medtune-written"), ck.config());
      LoraLlama model = new LoraLlama(ck, cpu, adapter.config(), 32, 32, true);
      model.loadAdapter(adapter);
      assertLogits(model, e.get("prompts"), e.get("medtune_written").get("logits"), "medtune-written in PEFT");
      // and it is not a no-op: the base logits differ
      float[] got = model.logits(prompt(e.get("prompts").get(0)));
      assertTrue(Math.abs(got[0] - e.get("base_logits").get(0).get(0).get(0).asDouble()) > 1e-3
          || Math.abs(got[1] - e.get("base_logits").get(0).get(0).get(1).asDouble()) > 1e-3);
    }
  }

  @Test
  void twentyAdamWStepsFollowPeftsLossesAndEndAtItsAdapter() throws Exception {
    Path train = FIXTURES.resolve("train");
    JsonNode t = JSON.readTree(Files.readString(train.resolve("train.json")));
    JsonNode hp = t.get("hyperparameters");
    try (Checkpoint ck = Checkpoint.open(FIXTURES.resolve("base"))) {
      LoraAdapter adapter = LoraAdapter.load(train.resolve("initial_adapter"), ck.config());
      LoraLlama model = new LoraLlama(ck, cpu, adapter.config(), 64, 64, true);
      model.loadAdapter(adapter);
      AdamW.Hyperparameters h = new AdamW.Hyperparameters(hp.get("betas").get(0).asDouble(),
          hp.get("betas").get(1).asDouble(), hp.get("eps").asDouble(), hp.get("weight_decay").asDouble());
      dev.medtune.model.train.LearningRateSchedule schedule = new dev.medtune.model.train.LearningRateSchedule(
          dev.medtune.model.train.LearningRateSchedule.Kind.LINEAR, hp.get("lr").asDouble(),
          hp.get("warmup_steps").asInt(), hp.get("max_steps").asInt());
      JsonNode steps = t.get("steps");
      JsonNode batches = t.get("batches");
      for (int k = 0; k < steps.size(); k++) {
        List<MicroBatch> mbs = new ArrayList<>();
        long counted = 0;
        for (JsonNode m : batches.get(k)) {
          MicroBatch mb = microBatch(m);
          counted += mb.countedTokens();
          mbs.add(mb);
        }
        JsonNode want = steps.get(k);
        assertEquals(want.get("counted_tokens").asLong(), counted);
        double lr = schedule.lr(k);
        assertEquals(want.get("lr").asDouble(), lr, 1e-12, "lr of step " + (k + 1));
        SftTrainer.StepResult r = SftTrainer.optimizerStep(model, mbs, counted, k + 1, lr,
            hp.get("max_grad_norm").asDouble(), h, i -> 0);
        double wantLoss = want.get("loss").asDouble();
        assertEquals(wantLoss, r.loss(), 1e-4 * wantLoss, "loss of step " + (k + 1));
        double wantNorm = want.get("grad_norm").asDouble();
        assertEquals(wantNorm, r.gradNorm(), 1e-3 * wantNorm, "grad norm of step " + (k + 1));
      }
      model.storeAdapter(adapter);
      LoraAdapter peft = LoraAdapter.load(train.resolve("final_adapter"), ck.config());
      double worst = 0;
      for (int i = 0; i < peft.tensors().size(); i++) {
        float[] a = adapter.tensors().get(i).data();
        float[] b = peft.tensors().get(i).data();
        for (int j = 0; j < a.length; j++) {
          worst = Math.max(worst, Math.abs(a[j] - b[j]));
        }
      }
      assertTrue(worst <= 1e-4, "final adapter: max |medtune - PEFT| = " + worst);
    }
  }

  /** A micro-batch of train.json: right-padded rows, attention mask 0 on padding. */
  private static MicroBatch microBatch(JsonNode m) {
    JsonNode ids = m.get("input_ids");
    JsonNode mask = m.get("attention_mask");
    JsonNode targets = m.get("targets");
    int rows = ids.size();
    int length = ids.get(0).size();
    int n = rows * length;
    int[] tok = new int[n];
    int[] tgt = new int[n];
    int[] pos = new int[n];
    int[] seq = new int[n];
    int counted = 0;
    int real = 0;
    for (int r = 0; r < rows; r++) {
      for (int i = 0; i < length; i++) {
        int at = r * length + i;
        tok[at] = ids.get(r).get(i).asInt();
        tgt[at] = targets.get(r).get(i).asInt();
        boolean isReal = mask.get(r).get(i).asInt() == 1;
        seq[at] = isReal ? 0 : -1;
        pos[at] = isReal ? i : 0;
        counted += tgt[at] == -100 ? 0 : 1;
        real += isReal ? 1 : 0;
      }
    }
    return new MicroBatch(rows, length, tok, tgt, pos, seq, counted, real);
  }
}
