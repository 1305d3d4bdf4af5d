package dev.medtune.hub;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@link HubClient#push} against {@link FakeHub}: create, preupload, LFS batch, commit, re-push. */
@Timeout(60)
class PushTest {
  static final String WRITE = "hf_WRITEtokenSECRET9876543210";
  static final String READ = "hf_READtokenSECRET1111111111";
  static final String REPO = "medtune-test/tiny-adapter";

  @TempDir Path tmp;
  FakeHub hub;
  Path adapter;
  byte[] weights;

  @BeforeEach
  void setUp() throws IOException {
    hub = new FakeHub();
    hub.writeTokens.add(WRITE);
    hub.readTokens.add(READ);
    adapter = tmp.resolve("adapter");
    Files.createDirectories(adapter.resolve("checkpoint-1"));
    weights = new byte[300_000];
    new Random(3).nextBytes(weights);
    Files.write(adapter.resolve("adapter_model.safetensors"), weights);
    Files.writeString(adapter.resolve("adapter_config.json"),
        "{\"base_model_name_or_path\": \"unsloth/Meta-Llama-3.1-8B\", \"r\": 16, \"peft_type\": \"LORA\"}");
    Files.writeString(adapter.resolve("checkpoint-1/state.json"), "{\"step\": 1}");
    Files.createDirectories(adapter.resolve(".git"));
    Files.writeString(adapter.resolve(".git/HEAD"), "ref: refs/heads/main");
  }

  @AfterEach
  void tearDown() {
    hub.close();
  }

  HubClient client(String token) {
    return new HubClient(new HubConfig(URI.create(hub.endpoint()), token, "--token", tmp.resolve("cache"), false,
        Duration.ofSeconds(2), Duration.ofMillis(20), 3, 4));
  }

  PushResult push(String rev, boolean priv) {
    try (HubClient c = client(WRITE)) {
      return c.push(adapter, REPO, RepoType.MODEL, new PushOptions(priv, rev, "Add adapter"), DownloadProgress.NONE);
    }
  }

  @Test
  void pushCreatesTheRepoUploadsThroughLfsAndRoundTrips() throws IOException {
    PushResult r = push("main", true);
    assertTrue(hub.repo(RepoType.MODEL, REPO).isPrivate);
    assertEquals(List.of("adapter_config.json", "adapter_model.safetensors", "checkpoint-1/state.json"), r.uploaded());
    assertEquals(1, hub.lfsPuts.get(), "one LFS object sent");
    assertEquals(weights.length, hub.lfsBytesReceived.get());
    assertEquals(weights.length, r.lfsBytesSent());
    assertEquals(1, hub.commitsMade.get());
    assertTrue(r.commitUrl().startsWith(hub.endpoint() + "/" + REPO + "/commit/"), r.commitUrl());
    assertEquals(0, hub.tokenLeaks.get(), "the token went to the storage host");
    // the hub's new commit, downloaded back by the same client, has the same bytes
    Path snap;
    try (HubClient c = client(WRITE)) {
      snap = c.snapshot(REPO, RepoType.MODEL, "main", List.of(), List.of(), DownloadProgress.NONE);
    }
    assertEquals(r.commitOid(), snap.getFileName().toString());
    assertArrayEquals(weights, Files.readAllBytes(snap.resolve("adapter_model.safetensors")));
    assertEquals(Files.readString(adapter.resolve("adapter_config.json")), Files.readString(snap.resolve("adapter_config.json")));
    assertFalse(Files.exists(snap.resolve(".git/HEAD")), ".git is never pushed");
  }

  @Test
  void rePushingUnchangedFilesSendsNothingAndAChangedFileAlone() throws IOException {
    push("main", false);
    int puts = hub.lfsPuts.get();
    int commits = hub.commitsMade.get();
    PushResult again = push("main", false);
    assertEquals(puts, hub.lfsPuts.get());
    assertEquals(commits, hub.commitsMade.get(), "no empty commit");
    assertNull(again.commitUrl());
    assertEquals(3, again.unchanged().size());
    assertTrue(again.uploaded().isEmpty());
    Files.writeString(adapter.resolve("adapter_config.json"), "{\"r\": 8}");
    PushResult changed = push("main", false);
    assertEquals(List.of("adapter_config.json"), changed.uploaded());
    assertEquals(puts, hub.lfsPuts.get(), "the weights were sent again");
    assertEquals(commits + 1, hub.commitsMade.get());
    // the same weights under another name: the LFS batch answer says the hub has the content
    Files.copy(adapter.resolve("adapter_model.safetensors"), adapter.resolve("copy.safetensors"));
    PushResult copy = push("main", false);
    assertEquals(List.of("copy.safetensors"), copy.uploaded());
    assertEquals(puts, hub.lfsPuts.get());
    assertEquals(0, copy.lfsBytesSent());
  }

  @Test
  void largeFilesGoThroughMultipartUploads() throws IOException {
    hub.multipartThreshold = 100_000;
    hub.multipartChunk = 128 << 10;
    PushResult r = push("main", false);
    assertEquals(3, hub.lfsPuts.get(), "300 kB in 128 kB parts");
    assertEquals(weights.length, r.lfsBytesSent());
    assertArrayEquals(weights, hub.lfsStore.get(FakeHub.sha256(weights)).bytes());
  }

  @Test
  void pushToABranchCreatesIt() throws IOException {
    PushResult main = push("main", false);
    PushResult same = push("experiment", false);
    FakeHub.Repo repo = hub.repo(RepoType.MODEL, REPO);
    assertEquals(main.commitOid(), repo.branches.get("experiment"), "the branch starts at main");
    assertNull(same.commitUrl(), "nothing differs from main");
    Files.writeString(adapter.resolve("adapter_config.json"), "{\"r\": 4}");
    PushResult r = push("experiment", false);
    assertEquals(r.commitOid(), repo.branches.get("experiment"));
    assertEquals(main.commitOid(), repo.branches.get("main"), "main is untouched");
    assertEquals(List.of("adapter_config.json"), r.uploaded());
  }

  @Test
  void aReadTokenCannotPushAndSaysSo() {
    HubException e = assertThrows(HubException.class, () -> {
      try (HubClient c = client(READ)) {
        hub.commit(RepoType.MODEL, REPO, "main", FakeHub.files("x.txt", FakeHub.entry("x".getBytes(), false)));
        c.push(adapter, REPO, RepoType.MODEL, new PushOptions(false, "main", null), DownloadProgress.NONE);
      }
    });
    assertEquals(HubException.Kind.FORBIDDEN, e.kind());
    assertTrue(e.getMessage().contains("write token"), e.getMessage());
    assertFalse(e.getMessage().contains(READ));
  }

  @Test
  void modelCardFromTrainingJson() throws IOException {
    Files.writeString(adapter.resolve("training.json"), """
        {"base_model": "unsloth/Meta-Llama-3.1-8B",
         "data": {"path": "openlifescienceai/medmcqa", "train_rows": 182822, "sha256": "ab12"},
         "hyperparameters": {"lora_r": 16, "lora_alpha": 16, "learning_rate": 0.0002, "epochs": 1},
         "final_train_loss": 0.8123, "final_val_loss": 0.9012,
         "medtune_version": "0.1.0", "seed": 3407}
        """);
    Path card = ModelCard.writeIfAbsent(adapter, REPO, "dev", true).orElseThrow();
    String md = Files.readString(card);
    assertTrue(md.startsWith("---\nbase_model: unsloth/Meta-Llama-3.1-8B\nlibrary_name: peft\n"), md);
    assertTrue(md.contains("datasets:\n- openlifescienceai/medmcqa\n"), md);
    assertTrue(md.contains("| train_rows | 182822 |"), md);
    assertTrue(md.contains("| hyperparameters.lora_r | 16 |"), md);
    assertTrue(md.contains("| hyperparameters.learning_rate | 2.0E-4 |") || md.contains("| hyperparameters.learning_rate | 0.0002 |"), md);
    assertTrue(md.contains("## Results\n\n| key | value |\n| --- | --- |\n| final_train_loss | 0.8123 |\n| final_val_loss | 0.9012 |"), md);
    assertTrue(md.contains("| seed | 3407 |"), md);
    assertTrue(md.contains("- medtune 0.1.0"), md);
    // an existing card is the user's: never overwritten
    assertTrue(ModelCard.writeIfAbsent(adapter, REPO, "dev", true).isEmpty());
    PushResult r = push("main", false);
    assertTrue(r.uploaded().contains("README.md") && r.uploaded().contains("training.json"), r.uploaded().toString());
  }

  @Test
  void modelCardFromAFewKeysOnly() throws IOException {
    Files.writeString(adapter.resolve("training.json"), "{\"steps\": 10}");
    String md = Files.readString(ModelCard.writeIfAbsent(adapter, null, "0.2.0", true).orElseThrow());
    assertTrue(md.startsWith("---\nbase_model: unsloth/Meta-Llama-3.1-8B\n"), "base model from adapter_config.json: " + md);
    assertTrue(md.contains("| steps | 10 |") && md.contains("- medtune 0.2.0"), md);
  }
}
