package dev.medtune.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.medtune.cli.GenerateCommandTest.Run;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.lora.LoraAdapter;
import dev.medtune.model.lora.LoraMerge;
import dev.medtune.model.lora.LoraTarget;
import dev.medtune.model.safetensors.TensorInfo;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code medtune train}, {@code merge}, {@code generate --adapter} and {@code demo} on a real
 * {@code init-model --preset tiny} model and JSON lines as {@code prepare} writes them, in-process.
 */
class TrainCommandTest {

  @TempDir static Path tmp;
  static Path model;
  static Path data;
  static final ObjectMapper JSON = new ObjectMapper();

  @BeforeAll
  static void setUp() throws Exception {
    model = tmp.resolve("tiny");
    Run r = GenerateCommandTest.run("init-model", "--preset", "tiny", "--output", model.toString());
    assertEquals(0, r.exit(), r.err());
    String[][] qa = {
        {"Which vitamin deficiency causes scurvy?", "Vitamin C. Scurvy is due to lack of ascorbic acid."},
        {"Cherry red spot is seen in?", "Tay-Sachs disease. Gangliosides accumulate."},
        {"Drug of choice for absence seizures?", "Ethosuximide. It blocks T-type calcium channels."},
        {"Most common site of carcinoid tumour?", "Appendix. Often found by chance."},
        {"Normal adult resting heart rate?", "60 to 100 per minute. Measured at rest."}};
    StringBuilder sb = new StringBuilder();
    for (int i = 0; i < 10; i++) {
      String p = "Give an answer for the following medical question.\n\n### Question:\n" + qa[i % 5][0] + "\n\n### Answer:\n";
      sb.append(JSON.writeValueAsString(java.util.Map.of("prompt", p, "completion", qa[i % 5][1],
          "text", p + qa[i % 5][1]))).append('\n');
    }
    data = Files.writeString(tmp.resolve("train.jsonl"), sb.toString());
  }

  /** The arguments of a short run; {@code extra} adds options or replaces the defaults given here. */
  static String[] train(Path out, String... extra) {
    java.util.LinkedHashMap<String, String> o = new java.util.LinkedHashMap<>();
    String[] defaults = {"--model", model.toString(), "--data", data.toString(), "--val", data.toString(),
        "--output", out.toString(), "--max-steps", "6", "--warmup-steps", "1", "--lr", "5e-3", "--batch-size", "2",
        "--grad-accum", "2", "--max-seq-len", "64", "--device", "cpu"};
    for (int i = 0; i < defaults.length; i += 2) {
      o.put(defaults[i], defaults[i + 1]);
    }
    for (int i = 0; i < extra.length; i++) {
      boolean flag = i + 1 >= extra.length || extra[i + 1].startsWith("--");
      o.put(extra[i], flag ? null : extra[++i]);
    }
    List<String> a = new ArrayList<>(List.of("train"));
    o.forEach((k, v) -> {
      a.add(k);
      if (v != null) {
        a.add(v);
      }
    });
    return a.toArray(new String[0]);
  }

  @Test
  void trainWritesAPeftAdapterMetricsPlotRecordAndCheckpoints() throws Exception {
    Path out = tmp.resolve("run");
    Run r = GenerateCommandTest.run(train(out, "--save-every", "3", "--eval-every", "3"));
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.err().contains("step 6/6"), r.err());
    assertTrue(r.err().contains("tok/s") && r.err().contains("left"), r.err());
    for (String f : List.of("adapter/adapter_config.json", "adapter/adapter_model.safetensors",
        "adapter/tokenizer.json", "metrics.jsonl", "loss.png", "training.json", "checkpoint-6/optimizer.safetensors",
        "checkpoint-3/trainer_state.json")) {
      assertTrue(Files.isRegularFile(out.resolve(f)), f);
    }
    List<JsonNode> lines = new ArrayList<>();
    for (String l : Files.readAllLines(out.resolve("metrics.jsonl"))) {
      lines.add(JSON.readTree(l));
    }
    List<JsonNode> steps = lines.stream().filter(n -> n.has("loss")).toList();
    assertEquals(6, steps.size());
    for (String k : List.of("step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s")) {
      assertTrue(steps.get(0).has(k), k);
    }
    assertEquals(2, lines.stream().filter(n -> n.has("eval_loss")).count());
    JsonNode rec = JSON.readTree(Files.readString(out.resolve("training.json")));
    assertEquals(6, rec.get("results").get("steps").asInt());
    assertEquals(3407, rec.get("seed").asInt());
    assertEquals(16, rec.get("hyperparameters").get("lora_r").asInt());
    byte[] png = Files.readAllBytes(out.resolve("loss.png"));
    assertEquals((byte) 0x89, png[0]);
    assertEquals('P', png[1]);

    // merge: W + s*B@A in the base dtype; generate --adapter gives the merged model's answer
    try (Checkpoint base = Checkpoint.open(model)) {
      LoraAdapter a = LoraAdapter.load(out.resolve("adapter"), base.config());
      Path merged = tmp.resolve("merged");
      Run m = GenerateCommandTest.run("merge", "--model", model.toString(), "--adapter", out.resolve("adapter").toString(),
          "--output", merged.toString());
      assertEquals(0, m.exit(), m.err());
      if (dev.medtune.cuda.CudaBackendProvider.check() != null) {
        // without a GPU, merge --device cuda is a one-line reason and writes nothing
        Run mc = GenerateCommandTest.run("merge", "--model", model.toString(), "--adapter",
            out.resolve("adapter").toString(), "--output", tmp.resolve("merged-cuda").toString(), "--device", "cuda");
        assertEquals(1, mc.exit(), mc.err());
        assertEquals(1, mc.err().strip().lines().count(), mc.err());
        assertTrue(mc.err().contains("device 'cuda' is not usable here"), mc.err());
        assertFalse(Files.exists(tmp.resolve("merged-cuda")));
      }
      try (Checkpoint mc = Checkpoint.open(merged)) {
        String name = LoraMerge.weightName(1, LoraTarget.DOWN_PROJ);
        TensorInfo w = base.tensor(name);
        TensorInfo got = mc.tensor(name);
        float[] aa = a.a(1, LoraTarget.DOWN_PROJ);
        float[] bb = a.b(1, LoraTarget.DOWN_PROJ);
        int in = (int) w.shape()[1];
        int rank = a.config().r();
        double s = a.config().scale();
        double moved = 0;
        for (long e = 0; e < w.elementCount(); e += 97) {
          int row = (int) (e / in), col = (int) (e % in);
          double d = 0;
          for (int k = 0; k < rank; k++) {
            d += (double) bb[row * rank + k] * aa[k * in + col];
          }
          assertEquals(w.getFloat(e) + s * d, got.getFloat(e), 1e-6, name + "[" + e + "]");
          moved = Math.max(moved, Math.abs(got.getFloat(e) - w.getFloat(e)));
        }
        assertTrue(moved > 0, "training moved B away from 0");
        assertArrayEquals(base.tensor("model.embed_tokens.weight").toFloatArray(),
            mc.tensor("model.embed_tokens.weight").toFloatArray());
      }
      Run g1 = GenerateCommandTest.run("generate", "--model", merged.toString(), "--question", "Cherry red spot is seen in?",
          "--max-new-tokens", "12", "--device", "cpu");
      Run g2 = GenerateCommandTest.run("generate", "--model", model.toString(), "--adapter", out.resolve("adapter").toString(),
          "--question", "Cherry red spot is seen in?", "--max-new-tokens", "12", "--device", "cpu");
      assertEquals(0, g1.exit(), g1.err());
      assertEquals(0, g2.exit(), g2.err());
      assertEquals(g1.out(), g2.out());

      // eval --adapter scores as the merged model does; --compare ADAPTER sets base and fine-tune side by side
      Path q = Path.of(TrainCommandTest.class.getResource("/eval/dev-choices-20.jsonl").toURI());
      String adapter = out.resolve("adapter").toString();
      Run e1 = GenerateCommandTest.run("eval", "--model", merged.toString(), "--data", q.toString(), "--limit", "5",
          "--device", "cpu", "--output", tmp.resolve("e1").toString());
      Run e2 = GenerateCommandTest.run("eval", "--model", model.toString(), "--adapter", adapter, "--data", q.toString(),
          "--limit", "5", "--device", "cpu", "--output", tmp.resolve("e2").toString());
      Run e3 = GenerateCommandTest.run("eval", "--model", model.toString(), "--compare", adapter, "--data", q.toString(),
          "--limit", "5", "--device", "cpu", "--output", tmp.resolve("e3").toString());
      assertEquals(0, e1.exit(), e1.err());
      assertEquals(0, e2.exit(), e2.err());
      assertEquals(0, e3.exit(), e3.err());
      ObjectMapper json = new ObjectMapper();
      JsonNode mergedQs = json.readTree(tmp.resolve("e1/report.json").toFile()).get("run").get("questions");
      JsonNode adapterRun = json.readTree(tmp.resolve("e2/report.json").toFile()).get("run");
      JsonNode compared = json.readTree(tmp.resolve("e3/report.json").toFile());
      assertTrue(adapterRun.get("model").asText().endsWith(" + " + adapter), adapterRun.get("model").asText());
      double changed = 0;
      for (int i = 0; i < 5; i++) {
        for (int o = 0; o < 4; o++) {
          double mq = mergedQs.get(i).get("options").get(o).get("logprob").asDouble();
          double aq = adapterRun.get("questions").get(i).get("options").get(o).get("logprob").asDouble();
          double b = compared.get("b").get("questions").get(i).get("options").get(o).get("logprob").asDouble();
          double base0 = compared.get("a").get("questions").get(i).get("options").get(o).get("logprob").asDouble();
          assertEquals(mq, aq, 1e-9, "question " + i + " option " + o);
          assertEquals(aq, b, 1e-9, "question " + i + " option " + o);
          changed = Math.max(changed, Math.abs(b - base0));
        }
      }
      assertTrue(changed > 1e-3, "the adapter changes the scores");
      assertEquals(5, compared.get("paired").get("questions").asInt());
    }

    // the output folder is not overwritten without --overwrite, and resume refuses other settings
    Run again = GenerateCommandTest.run(train(out));
    assertEquals(1, again.exit());
    assertTrue(again.err().contains("is not empty; use --resume"), again.err());
    Run other = GenerateCommandTest.run(train(out, "--resume", "--lr", "1e-3"));
    assertEquals(1, other.exit());
    assertTrue(other.err().contains("cannot resume from") && other.err().contains("lr 0.005 in the checkpoint, 0.001 now"),
        other.err());
  }

  @Test
  void badInputIsOneLineWithTheRightExitCode() throws Exception {
    Run missing = GenerateCommandTest.run("train", "--model", model.toString(), "--data", tmp.resolve("nope.jsonl").toString(),
        "--output", tmp.resolve("o1").toString());
    assertEquals(1, missing.exit());
    assertTrue(missing.err().contains("nope.jsonl: no such data file"), missing.err());
    Path empty = Files.writeString(tmp.resolve("empty.jsonl"), "");
    Run e = GenerateCommandTest.run("train", "--model", model.toString(), "--data", empty.toString(),
        "--output", tmp.resolve("o2").toString());
    assertEquals(1, e.exit());
    assertTrue(e.err().contains("no examples"), e.err());
    Path textOnly = Files.writeString(tmp.resolve("text.jsonl"), "{\"text\": \"hello\"}\n");
    Run t = GenerateCommandTest.run("train", "--model", model.toString(), "--data", textOnly.toString(),
        "--output", tmp.resolve("o3").toString());
    assertEquals(1, t.exit());
    assertTrue(t.err().contains("text.jsonl:1") && t.err().contains("--loss-on all"), t.err());
    Run usage = GenerateCommandTest.run(train(tmp.resolve("o4"), "--loss-on", "prompt"));
    assertEquals(2, usage.exit());
    Run targets = GenerateCommandTest.run(train(tmp.resolve("o5"), "--target-modules", "q_proj,qkv"));
    assertEquals(2, targets.exit());
    assertTrue(targets.err().contains("unknown LoRA target module 'qkv'"), targets.err());
    Run noResume = GenerateCommandTest.run(train(tmp.resolve("o6"), "--resume"));
    assertEquals(1, noResume.exit());
    assertTrue(noResume.err().contains("no checkpoint to resume from"), noResume.err());
    Run tooLong = GenerateCommandTest.run(train(tmp.resolve("o7"), "--max-seq-len", "999999"));
    assertEquals(1, tooLong.exit());
    assertTrue(tooLong.err().contains("longer than the model's context"), tooLong.err());
    assertFalse(Files.exists(tmp.resolve("o7").resolve("adapter")));
    // medtune-cuda is on the class path; without a GPU (CI) --device cuda is a one-line reason
    if (dev.medtune.cuda.CudaBackendProvider.check() != null) {
      Run cuda = GenerateCommandTest.run(train(tmp.resolve("o8"), "--device", "cuda"));
      assertEquals(1, cuda.exit());
      assertTrue(cuda.err().contains("device 'cuda' is not usable here: "
          + dev.medtune.cuda.CudaBackendProvider.check()), cuda.err());
      assertEquals(1, cuda.err().strip().lines().count(), cuda.err());
      assertFalse(Files.exists(tmp.resolve("o8").resolve("adapter")));
    }
  }

  @Test
  void demoRunsEndToEndAndTheLossFalls() throws Exception {
    Path work = tmp.resolve("demo");
    Run r = GenerateCommandTest.run("demo", "--work", work.toString(), "--steps", "40", "--max-new-tokens", "8");
    assertEquals(0, r.exit(), r.err());
    assertTrue(Files.isRegularFile(work.resolve("run/loss.png")));
    assertEquals(4, r.out().split("### medtune:").length - 1, r.out());
    assertTrue(r.out().contains("held-out question"), r.out());
    List<Double> losses = new ArrayList<>();
    for (String l : Files.readAllLines(work.resolve("run/metrics.jsonl"))) {
      JsonNode n = JSON.readTree(l);
      if (n.has("loss")) {
        losses.add(n.get("loss").asDouble());
      }
    }
    double first = losses.get(0);
    double lastFive = losses.subList(losses.size() - 5, losses.size()).stream().mapToDouble(d -> d).average().orElseThrow();
    assertTrue(lastFive < first - 1.0, "loss " + first + " -> " + lastFive);
    // issue 7's proof: the adapter answers its own training questions far above chance (25%),
    // and unseen questions near chance; base and adapter side by side on the same questions
    Path trained = tmp.resolve("trained-questions.jsonl");
    List<String> qs = new ArrayList<>();
    for (String l : Files.readAllLines(work.resolve("data/train.jsonl"))) {
      JsonNode n = JSON.readTree(l);
      com.fasterxml.jackson.databind.node.ObjectNode q = JSON.createObjectNode();
      q.put("question", n.get("question").asText());
      com.fasterxml.jackson.databind.node.ArrayNode choices = q.putArray("choices");
      int answer = -1;
      for (int i = 0; i < n.get("options").size(); i++) {
        String o = n.get("options").get(i).asText();
        choices.add("ABCD".charAt(i) + ". " + o);
        if (o.equals(n.get("answer").asText())) {
          answer = i;
        }
      }
      q.put("answer", answer);
      qs.add(JSON.writeValueAsString(q));
    }
    Files.write(trained, qs);
    String adapter = work.resolve("run/adapter").toString();
    Run seen = GenerateCommandTest.run("eval", "--model", work.resolve("model").toString(), "--compare", adapter,
        "--data", trained.toString(), "--device", "cpu", "--output", tmp.resolve("seen").toString());
    Run unseen = GenerateCommandTest.run("eval", "--model", work.resolve("model").toString(), "--compare", adapter,
        "--data", "../medtune-data/src/test/resources/medmcqa/validation-sample.csv", "--device", "cpu",
        "--output", tmp.resolve("unseen").toString());
    assertEquals(0, seen.exit(), seen.err());
    assertEquals(0, unseen.exit(), unseen.err());
    JsonNode s = JSON.readTree(tmp.resolve("seen/report.json").toFile());
    JsonNode u = JSON.readTree(tmp.resolve("unseen/report.json").toFile());
    double seenBase = s.get("a").get("accuracy").get("sum").get("accuracy").asDouble();
    double seenTuned = s.get("b").get("accuracy").get("sum").get("accuracy").asDouble();
    double unseenTuned = u.get("b").get("accuracy").get("sum").get("accuracy").asDouble();
    assertEquals(qs.size(), s.get("b").get("questions_scored").asInt());
    assertEquals(100, u.get("b").get("questions_scored").asInt());
    assertTrue(seenTuned >= 0.5 && seenTuned > seenBase + 0.3,
        "training questions: base " + seenBase + ", fine-tuned " + seenTuned);
    assertTrue(unseenTuned > 0.05 && unseenTuned < 0.45, "unseen questions: fine-tuned " + unseenTuned);

    // a second demo replaces its own folder; a foreign folder is refused
    Path foreign = Files.createDirectories(tmp.resolve("foreign"));
    Files.writeString(foreign.resolve("keep.txt"), "mine");
    Run f = GenerateCommandTest.run("demo", "--work", foreign.toString());
    assertEquals(1, f.exit());
    assertTrue(Files.isRegularFile(foreign.resolve("keep.txt")));
  }

  @Test
  void sigtermFinishesTheStepSavesAndResumeCompletesTheRun() throws Exception {
    Path out = tmp.resolve("sigterm");
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector", "-cp",
        System.getProperty("java.class.path"), "dev.medtune.cli.Main"));
    cmd.addAll(List.of(train(out, "--max-steps", "150")));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(tmp.resolve("sigterm.log").toFile()).start();
    Path metrics = out.resolve("metrics.jsonl");
    long deadline = System.nanoTime() + 120_000_000_000L;
    while (System.nanoTime() < deadline && p.isAlive()
        && (!Files.isRegularFile(metrics) || Files.readAllLines(metrics).size() < 2)) {
      Thread.sleep(100);
    }
    assertTrue(p.isAlive(), Files.readString(tmp.resolve("sigterm.log")));
    p.destroy(); // SIGTERM
    assertTrue(p.waitFor(120, java.util.concurrent.TimeUnit.SECONDS));
    String log = Files.readString(tmp.resolve("sigterm.log"));
    // the JVM exits with SIGTERM's status once the step is done and everything is saved
    assertTrue(log.contains("stopped after the step in progress, checkpoint saved"), log);
    assertTrue(Files.isRegularFile(out.resolve("adapter/adapter_model.safetensors")), log);
    int done = Files.readAllLines(metrics).size();
    assertTrue(done >= 2 && done < 150, log);
    assertTrue(Files.isDirectory(out.resolve("checkpoint-" + done)), log);
    Run r = GenerateCommandTest.run(train(out, "--max-steps", "150", "--resume"));
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.err().contains("resuming at step " + done + " of 150"), r.err());
    assertEquals(150, Files.readAllLines(metrics).stream().filter(l -> l.contains("\"loss\"")).count());
  }
}
