package dev.medtune.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.LoraLlama;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.LoraConfig;
import dev.medtune.model.lora.LoraTarget;
import dev.medtune.model.train.AdamW;
import dev.medtune.model.train.DataPosition;
import dev.medtune.model.train.LearningRateSchedule;
import dev.medtune.model.train.LossOn;
import dev.medtune.model.train.MicroBatch;
import dev.medtune.model.train.SftConfig;
import dev.medtune.model.train.SftTrainer;
import dev.medtune.model.train.TokenizedExample;
import dev.medtune.model.train.TrainerState;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The SFT loop on a small random Llama (transformers' fixture {@code gqa-llama3-untied-f32}) with
 * tokenized examples of random lengths: interrupting and resuming gives bit-identical later
 * losses and the same final adapter, gradient accumulation equals one large batch, and a
 * checkpoint made with other settings is refused with the differences named.
 */
class SftTrainerTest {

  private static final Backend cpu = CpuBackendProvider.create(2);
  private static final ObjectMapper JSON = new ObjectMapper();

  @AfterAll
  static void close() {
    cpu.close();
  }

  private static Path fixture() throws Exception {
    return Path.of(SftTrainerTest.class.getResource("/fixtures/gqa-llama3-untied-f32/config.json").toURI()).getParent();
  }

  /** Examples of 6 to 20 tokens whose second half is the completion. */
  static List<TokenizedExample> examples(int n, long seed) {
    Random r = new Random(seed);
    List<TokenizedExample> out = new ArrayList<>();
    for (int e = 0; e < n; e++) {
      int len = 6 + r.nextInt(15);
      int[] tokens = new int[len];
      tokens[0] = 1;
      for (int i = 1; i < len; i++) {
        tokens[i] = 2 + r.nextInt(250);
      }
      int[] targets = new int[len];
      int counted = 0;
      for (int i = 0; i < len; i++) {
        targets[i] = i + 1 < len && i >= len / 2 ? tokens[i + 1] : TokenizedExample.IGNORE;
        counted += targets[i] == TokenizedExample.IGNORE ? 0 : 1;
      }
      out.add(new TokenizedExample(tokens, targets, counted, len));
    }
    return out;
  }

  static SftConfig config(long seed, double dropout, boolean packing, int maxSteps) {
    return new SftConfig(new LoraConfig(4, 8, dropout, List.of(LoraTarget.values()), false), 5e-3,
        AdamW.Hyperparameters.recipe(), LearningRateSchedule.Kind.COSINE, 2, maxSteps, 0, 2, 2, 48, packing,
        LossOn.COMPLETION, 0.5, seed, true, 0, 0);
  }

  private static List<Double> losses(Path metrics) throws Exception {
    List<Double> out = new ArrayList<>();
    for (String line : Files.readAllLines(metrics)) {
      JsonNode n = JSON.readTree(line);
      if (n.has("loss")) {
        out.add(n.get("loss").asDouble());
      }
    }
    return out;
  }

  @Test
  void interruptedAndResumedRunHasBitIdenticalLossesAndAdapter(@TempDir Path tmp) throws Exception {
    List<TokenizedExample> data = examples(24, 3);
    Path dataFile = Files.writeString(tmp.resolve("train.jsonl"), "stand-in for the data hash\n");
    SftConfig cfg = config(3407, 0.1, true, 9);
    try (Checkpoint ck = Checkpoint.open(fixture())) {
      TrainerState id = SftTrainer.identity(fixture(), dataFile, cfg);
      Path whole = Files.createDirectories(tmp.resolve("whole"));
      SftTrainer.Result a = new SftTrainer(ck, cpu, cfg, data, data, whole, "fixture", id).run(false, () -> false,
          new SftTrainer.Listener() {});
      assertEquals(9, a.steps());

      Path parts = Files.createDirectories(tmp.resolve("parts"));
      AtomicInteger asked = new AtomicInteger();
      // the signal handler's flag, raised after step 4 finished (asked before steps 1..5)
      SftTrainer.Result first = new SftTrainer(ck, cpu, cfg, data, data, parts, "fixture", id)
          .run(false, () -> asked.incrementAndGet() > 4, new SftTrainer.Listener() {});
      assertTrue(first.stopped());
      assertEquals(4, first.steps());
      assertTrue(Files.isDirectory(parts.resolve("checkpoint-4")), "a checkpoint is saved on stop");
      SftTrainer.Result second = new SftTrainer(ck, cpu, cfg, data, data, parts, "fixture", id)
          .run(true, () -> false, new SftTrainer.Listener() {});
      assertEquals(9, second.steps());
      assertEquals(parts.resolve("checkpoint-4"), second.resumedFrom().orElseThrow());

      List<Double> want = losses(whole.resolve("metrics.jsonl"));
      List<Double> got = losses(parts.resolve("metrics.jsonl"));
      assertEquals(9, want.size());
      assertEquals(want, got, "every loss, bit for bit");
      assertTrue(want.get(8) < want.get(0), "the loss falls: " + want);
      for (int i = 0; i < a.adapter().tensors().size(); i++) {
        assertArrayEquals(a.adapter().tensors().get(i).data(), second.adapter().tensors().get(i).data(),
            a.adapter().tensors().get(i).name());
      }

      // a checkpoint made for other settings is refused, naming what differs
      SftConfig other = config(1, 0.1, true, 9);
      TrainerState otherId = SftTrainer.identity(fixture(), dataFile, other);
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> new SftTrainer(ck, cpu, other, data, data, parts, "fixture", otherId).run(true, () -> false,
              new SftTrainer.Listener() {}));
      assertTrue(e.getMessage().contains("seed 3407 in the checkpoint, 1 now"), e.getMessage());
      Path otherData = Files.writeString(tmp.resolve("other.jsonl"), "other data\n");
      TrainerState otherDataId = SftTrainer.identity(fixture(), otherData, cfg);
      e = assertThrows(IllegalArgumentException.class,
          () -> new SftTrainer(ck, cpu, cfg, data, data, parts, "fixture", otherDataId).run(true, () -> false,
              new SftTrainer.Listener() {}));
      assertTrue(e.getMessage().contains("the training data differs"), e.getMessage());
    }
  }

  @Test
  void accumulatingMicroBatchesGivesTheGradientOfOneBatch() throws Exception {
    List<TokenizedExample> ex = examples(3, 9);
    MicroBatch one = batch(List.of(ex.get(0)));
    MicroBatch two = batch(List.of(ex.get(1), ex.get(2)));
    MicroBatch all = batch(ex);
    LoraConfig cfg = new LoraConfig(4, 8, 0, List.of(LoraTarget.values()), false);
    try (Checkpoint ck = Checkpoint.open(fixture())) {
      LoraAdapter adapter = LoraAdapter.initialize(ck.config(), cfg, 4);
      for (LoraAdapter.Tensor t : adapter.tensors()) {
        if (!t.isA()) {
          Random r = new Random(t.name().hashCode());
          for (int i = 0; i < t.data().length; i++) {
            t.data()[i] = (float) r.nextGaussian() * 0.2f;
          }
        }
      }
      int counted = all.countedTokens();
      assertEquals(counted, one.countedTokens() + two.countedTokens());
      LoraLlama m = new LoraLlama(ck, cpu, cfg, 64, 32, true);
      m.loadAdapter(adapter);
      m.zeroGradients();
      double lossA = m.forwardBackward(one, 1f / counted, 0) + m.forwardBackward(two, 1f / counted, 0);
      double normA = m.gradientNorm();
      m.zeroGradients();
      double lossB = m.forwardBackward(all, 1f / counted, 0);
      double normB = m.gradientNorm();
      assertEquals(lossB, lossA, 1e-5 * lossB);
      assertEquals(normB, normA, 1e-5 * normB);
      assertFalse(normA == 0);
    }
  }

  /** Right-padded rows, one example each. */
  static MicroBatch batch(List<TokenizedExample> ex) {
    int length = ex.stream().mapToInt(TokenizedExample::length).max().orElseThrow();
    int n = ex.size() * length;
    int[] ids = new int[n];
    int[] tg = new int[n];
    int[] pos = new int[n];
    int[] seq = new int[n];
    java.util.Arrays.fill(tg, TokenizedExample.IGNORE);
    java.util.Arrays.fill(seq, -1);
    int counted = 0;
    int real = 0;
    for (int r = 0; r < ex.size(); r++) {
      TokenizedExample e = ex.get(r);
      for (int i = 0; i < e.length(); i++) {
        ids[r * length + i] = e.tokens()[i];
        tg[r * length + i] = e.targets()[i];
        pos[r * length + i] = i;
        seq[r * length + i] = 0;
      }
      counted += e.counted();
      real += e.length();
    }
    return new MicroBatch(ex.size(), length, ids, tg, pos, seq, counted, real);
  }
}
