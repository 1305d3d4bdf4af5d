package dev.medtune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.hub.FakeHub;
import dev.medtune.hub.RepoType;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@code medtune pull} and {@code medtune push} against the local stand-in hub. */
@Timeout(60)
class HubCommandsTest {
  static final String TOKEN = "hf_CLItokenNEVERshown0123456789";
  static final String REPO = "medtune-test/tiny";

  @TempDir Path tmp;
  FakeHub hub;
  Map<String, String> env;
  byte[] weights;
  final List<String> outputs = new ArrayList<>();

  @BeforeEach
  void setUp() throws IOException {
    hub = new FakeHub();
    hub.readTokens.add(TOKEN);
    hub.writeTokens.add(TOKEN);
    weights = new byte[1 << 20];
    new Random(5).nextBytes(weights);
    hub.commit(RepoType.MODEL, REPO, "main", FakeHub.files(
        "config.json", FakeHub.entry("{\"a\": 1}".getBytes(StandardCharsets.UTF_8), false),
        "model.safetensors", FakeHub.entry(weights, true)));
    env = new HashMap<>(Map.of("HF_ENDPOINT", hub.endpoint(), "HF_HOME", tmp.resolve("home").toString(),
        "HF_HUB_CACHE", tmp.resolve("cache").toString()));
    HubAccess.environment = env;
  }

  @AfterEach
  void tearDown() throws IOException {
    hub.close();
    HubAccess.environment = System.getenv();
    // the token never reaches output or files
    for (String o : outputs) {
      assertFalse(o.contains(TOKEN), "token printed: " + o);
    }
    try (Stream<Path> files = Files.walk(tmp)) {
      for (Path p : files.filter(Files::isRegularFile).toList()) {
        assertFalse(new String(Files.readAllBytes(p), StandardCharsets.ISO_8859_1).contains(TOKEN), "token in " + p);
      }
    }
  }

  record Run(int code, String out, String err) {}

  Run run(String... args) {
    PrintStream oldOut = System.out;
    PrintStream oldErr = System.err;
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int code;
    try {
      System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
      System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
      code = Main.execute(args);
    } finally {
      System.setOut(oldOut);
      System.setErr(oldErr);
    }
    Run r = new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    outputs.add(r.out());
    outputs.add(r.err());
    return r;
  }

  @Test
  void pullPrintsTheSnapshotFolderAndShowsProgress() throws IOException {
    Run r = run("pull", REPO, "--token", TOKEN);
    assertEquals(0, r.code(), r.err());
    Path snap = Path.of(r.out().strip());
    assertTrue(snap.startsWith(tmp.resolve("cache/models--medtune-test--tiny/snapshots")), r.out());
    assertEquals(weights.length, Files.size(snap.resolve("model.safetensors")));
    assertTrue(r.err().contains("done model.safetensors (1.0 MB)"), r.err());
    assertTrue(r.err().contains("2 file(s), 1.0 MB transferred"), r.err());
    assertTrue(hub.authSeen.contains("Bearer " + TOKEN));
    // the token from the environment and from the token file work the same
    env.put("HF_TOKEN", TOKEN);
    assertEquals(0, run("pull", REPO, "--include", "*.json").code());
    env.remove("HF_TOKEN");
    Files.createDirectories(tmp.resolve("home"));
    Files.writeString(tmp.resolve("home/token"), "hf_notvalid");
    Run bad = run("pull", REPO);
    assertEquals(1, bad.code());
    assertTrue(bad.err().contains("the token file"), bad.err());
    Files.delete(tmp.resolve("home/token"));
  }

  @Test
  void pullFailuresAreOneLine() {
    hub.repo(RepoType.MODEL, REPO).gated = true;
    Run gated = run("pull", REPO, "--token", TOKEN);
    assertEquals(1, gated.code());
    assertEquals(1, gated.err().strip().lines().count(), gated.err());
    assertTrue(gated.err().startsWith("medtune: model " + REPO + " is gated: accept its licence at"), gated.err());
    Run badToken = run("pull", REPO, "--token", TOKEN + "x");
    assertEquals(1, badToken.code());
    assertTrue(badToken.err().startsWith("medtune: the hub rejected the token from --token"), badToken.err());
    assertFalse(badToken.err().contains(TOKEN));
    Run missing = run("pull", "medtune-test/none", "--token", TOKEN);
    assertEquals("medtune: model medtune-test/none not found on " + hub.endpoint()
        + " (or the token from --token cannot see it)", missing.err().strip());
    env.put("HF_HUB_OFFLINE", "1");
    Run offline = run("pull", REPO);
    assertEquals(1, offline.code());
    assertTrue(offline.err().contains("offline (HF_HUB_OFFLINE is set)"), offline.err());
    assertEquals(2, run("pull", REPO, "--repo-type", "space").code());
    assertEquals(2, run("pull").code());
  }

  @Test
  void pushWritesTheCardCommitsAndRepushesNothing() throws IOException {
    Path adapter = tmp.resolve("adapter");
    Files.createDirectories(adapter);
    Files.write(adapter.resolve("adapter_model.safetensors"), weights);
    Files.writeString(adapter.resolve("adapter_config.json"), "{\"base_model_name_or_path\": \"unsloth/Meta-Llama-3.1-8B\"}");
    Files.writeString(adapter.resolve("training.json"), "{\"final_train_loss\": 1.25, \"data\": \"prepared/train.jsonl\"}");
    Run r = run("push", "--adapter", adapter.toString(), "--repo", "medtune-test/new-adapter", "--private",
        "--token", TOKEN);
    assertEquals(0, r.code(), r.err());
    assertTrue(r.out().strip().startsWith(hub.endpoint() + "/medtune-test/new-adapter/commit/"), r.out());
    assertTrue(r.err().contains("wrote the model card"), r.err());
    String card = Files.readString(adapter.resolve("README.md"));
    assertTrue(card.contains("base_model: unsloth/Meta-Llama-3.1-8B") && card.contains("| final_train_loss | 1.25 |"), card);
    assertTrue(hub.repo(RepoType.MODEL, "medtune-test/new-adapter").isPrivate);
    int puts = hub.lfsPuts.get();
    Run again = run("push", "--adapter", adapter.toString(), "--repo", "medtune-test/new-adapter", "--token", TOKEN);
    assertEquals(0, again.code(), again.err());
    assertTrue(again.out().startsWith("nothing to push"), again.out());
    assertEquals(puts, hub.lfsPuts.get());
    assertEquals(0, hub.tokenLeaks.get());
  }

  @Test
  void pushUsageAndFolderChecks() throws IOException {
    Path empty = Files.createDirectories(tmp.resolve("empty"));
    assertEquals(2, run("push", "--adapter", empty.toString()).code(), "--repo is required");
    assertEquals(2, run("push", "--repo", "a/b").code(), "--adapter or --model is required");
    assertEquals(2, run("push", "--adapter", "x", "--model", "y", "--repo", "a/b").code());
    assertEquals(2, run("push", "--adapter", empty.toString(), "--repo", "no-owner").code());
    Run r = run("push", "--adapter", empty.toString(), "--repo", "a/b", "--token", TOKEN);
    assertEquals(1, r.code());
    assertTrue(r.err().contains("no adapter_config.json"), r.err());
  }


  @Test
  void hubIdsWorkAsModelAndInput() throws Exception {
    // a real tiny model and the real MedMCQA sample, served by the local hub
    Path tiny = tmp.resolve("tiny");
    assertEquals(0, run("init-model", "--preset", "tiny", "--output", tiny.toString()).code());
    Map<String, FakeHub.Entry> model = new java.util.LinkedHashMap<>();
    try (Stream<Path> files = Files.list(tiny)) {
      for (Path f : files.sorted().toList()) {
        model.put(f.getFileName().toString(), FakeHub.entry(Files.readAllBytes(f), f.toString().endsWith(".safetensors")));
      }
    }
    hub.commit(RepoType.MODEL, "medtune-test/tiny-model", "main", model);
    byte[] csv = Files.readAllBytes(Path.of("../medtune-data/src/test/resources/medmcqa/train-sample.csv"));
    hub.commit(RepoType.DATASET, "medtune-test/medmcqa", "main", FakeHub.files(
        "data/train-00000-of-00001.csv", FakeHub.entry(csv, true)));
    env.put("HF_TOKEN", TOKEN);

    Run prep = run("prepare", "--input", "medtune-test/medmcqa", "--output", tmp.resolve("prepared").toString());
    assertEquals(0, prep.code(), prep.err());
    assertEquals(39, Files.readAllLines(tmp.resolve("prepared/train.jsonl")).size());
    assertTrue(Files.isDirectory(tmp.resolve("cache/datasets--medtune-test--medmcqa/snapshots")));

    Path questions = Path.of(HubCommandsTest.class.getResource("/eval/dev-choices-20.jsonl").toURI());
    Run eval = run("eval", "--model", "medtune-test/tiny-model", "--data", questions.toString(), "--limit", "2",
        "--device", "cpu");
    assertEquals(0, eval.code(), eval.err());
    assertTrue(eval.out().contains("2"), eval.out());
    assertTrue(Files.isDirectory(tmp.resolve("cache/models--medtune-test--tiny-model/snapshots")));

    Run gen = run("generate", "--model", "medtune-test/tiny-model", "--prompt", "Scurvy is caused by",
        "--max-new-tokens", "4", "--device", "cpu");
    assertEquals(0, gen.code(), gen.err());
    Run train = run("train", "--model", "medtune-test/tiny-model", "--data", tmp.resolve("prepared/train.jsonl").toString(),
        "--output", tmp.resolve("run").toString(), "--max-steps", "2", "--batch-size", "1", "--grad-accum", "1",
        "--max-seq-len", "64", "--device", "cpu");
    assertEquals(0, train.code(), train.err());
    assertTrue(Files.isRegularFile(tmp.resolve("run/adapter/adapter_model.safetensors")));

    Run missing = run("eval", "--model", "medtune-test/none", "--data", questions.toString());
    assertEquals(1, missing.code());
    assertTrue(missing.err().startsWith("medtune: medtune-test/none: no such file or folder, nor a model on the hub (model medtune-test/none not found"), missing.err());
  }

  @Test
  void progressBarsForLogsPrintSnapshotsAndTheTotal() {
    StringWriter s = new StringWriter();
    try (ProgressBars bars = new ProgressBars(new PrintWriter(s), false, 0)) {
      bars.start("model-00001-of-00002.safetensors", 2000, 0);
      bars.start("config.json", 100, 0);
      bars.advance("model-00001-of-00002.safetensors", 1000);
      bars.advance("config.json", 100);
      bars.finish("config.json", true);
    }
    String out = s.toString();
    assertTrue(out.contains("model-00001-of-00002.safetensors      50% [############............] 1000 B / 2.0 KB"), out);
    assertTrue(out.contains("done config.json (100 B)"), out);
    assertTrue(out.contains("total (0/2 files)                     52% [############............] 1.1 KB / 2.1 KB  "), out);
    assertTrue(out.contains("1 file(s), 1.1 KB transferred"), out);
    assertFalse(out.contains("\033["), "no terminal codes in logs");
  }
}
