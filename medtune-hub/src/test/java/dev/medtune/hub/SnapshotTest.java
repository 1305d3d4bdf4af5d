package dev.medtune.hub;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** {@link HubClient#snapshot} against {@link FakeHub}: cache layout, resume, checksums, errors. */
@Timeout(60)
class SnapshotTest {
  static final String TOKEN = "hf_TESTtokenSECRET0123456789abcdef";
  static final String REPO = "medtune-test/tiny-llama";

  @TempDir Path tmp;
  FakeHub hub;
  Path cache;
  byte[] weights;
  byte[] config;
  byte[] tokenizer;
  String commit;

  @BeforeEach
  void setUp() throws IOException {
    hub = new FakeHub();
    hub.readTokens.add(TOKEN);
    cache = tmp.resolve("hub");
    weights = random(3 << 20, 1);
    config = "{\"model_type\": \"llama\", \"hidden_size\": 64}\n".getBytes(StandardCharsets.UTF_8);
    tokenizer = "{\"version\": \"1.0\"}".getBytes(StandardCharsets.UTF_8);
    commit = hub.commit(RepoType.MODEL, REPO, "main", FakeHub.files(
        "config.json", FakeHub.entry(config, false),
        "model.safetensors", FakeHub.entry(weights, true),
        "tok/tokenizer.json", FakeHub.entry(tokenizer, false)));
  }

  @AfterEach
  void tearDown() {
    hub.close();
  }

  static byte[] random(int n, long seed) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  HubConfig config(String token) {
    return new HubConfig(URI.create(hub.endpoint()), token, token == null ? null : "--token", cache, false,
        Duration.ofMillis(800), Duration.ofMillis(20), 5, 4);
  }

  Path pull(String token, String rev, List<String> inc, List<String> exc, DownloadProgress p) {
    try (HubClient c = new HubClient(config(token))) {
      return c.snapshot(REPO, RepoType.MODEL, rev, inc, exc, p);
    }
  }

  Path pull() {
    return pull(TOKEN, "main", List.of(), List.of(), DownloadProgress.NONE);
  }

  /** What the Python client's {@code try_to_load_from_cache} does: refs, then snapshot path. */
  static Path pythonLookup(Path cache, String type, String repo, String rev, String file) throws IOException {
    Path folder = cache.resolve(type + "s--" + repo.replace("/", "--"));
    String c = Files.readString(folder.resolve("refs").resolve(rev));
    Path p = folder.resolve("snapshots").resolve(c).resolve(file);
    return Files.isRegularFile(p) ? p : null;
  }

  @Test
  void pullWritesThePythonCacheLayout() throws IOException {
    Path snap = pull();
    Path repoDir = cache.resolve("models--medtune-test--tiny-llama");
    assertEquals(repoDir.resolve("snapshots").resolve(commit), snap);
    assertEquals(commit, Files.readString(repoDir.resolve("refs/main")), "refs/main holds the bare commit hash");
    String sha = FakeHub.sha256(weights);
    assertEquals(Path.of("../../blobs/" + sha), Files.readSymbolicLink(snap.resolve("model.safetensors")));
    assertEquals(Path.of("../../blobs/" + FakeHub.gitOid(config)), Files.readSymbolicLink(snap.resolve("config.json")));
    assertEquals(Path.of("../../../blobs/" + FakeHub.gitOid(tokenizer)),
        Files.readSymbolicLink(snap.resolve("tok/tokenizer.json")));
    assertArrayEquals(weights, Files.readAllBytes(pythonLookup(cache, "model", REPO, "main", "model.safetensors")));
    assertArrayEquals(config, Files.readAllBytes(pythonLookup(cache, "model", REPO, "main", "config.json")));
    assertArrayEquals(tokenizer, Files.readAllBytes(pythonLookup(cache, "model", REPO, "main", "tok/tokenizer.json")));
    try (Stream<Path> s = Files.list(repoDir.resolve("blobs"))) {
      assertEquals(3, s.filter(p -> !p.toString().endsWith(".incomplete")).count());
    }
    assertEquals(0, hub.tokenLeaks.get(), "the token was sent to the storage host");
    assertTrue(hub.log.stream().anyMatch(l -> l.startsWith("GET localhost:" + hub.port() + "/storage/")),
        "the LFS file came from the storage URL: " + hub.log);
    assertTrue(hub.authSeen.contains("Bearer " + TOKEN), "the hub itself got the token");
  }

  @Test
  void secondPullDownloadsNothingAndReusesPythonDownloads() throws IOException {
    pull();
    int gets = hub.storageGets.get();
    int requests = hub.log.size();
    pull();
    assertEquals(gets, hub.storageGets.get());
    assertEquals(requests + 1, hub.log.size(), "only the file list is asked again: " + hub.log.subList(requests, hub.log.size()));
    // a new commit with the same weights (as after a README edit): the blob is reused, no download
    String c2 = hub.commit(RepoType.MODEL, REPO, "main", FakeHub.files("README.md", FakeHub.entry("hi".getBytes(), false)));
    Path snap = pull();
    assertEquals(c2, snap.getFileName().toString());
    assertEquals(gets, hub.storageGets.get(), "the weights were downloaded again");
    assertArrayEquals(weights, Files.readAllBytes(snap.resolve("model.safetensors")));
  }

  @Test
  void filesAPythonClientCachedAreUsedAsTheyAre() throws IOException {
    // lay out the cache the way huggingface_hub would have after downloading the weights
    Path repoDir = cache.resolve("models--medtune-test--tiny-llama");
    String sha = FakeHub.sha256(weights);
    Files.createDirectories(repoDir.resolve("blobs"));
    Files.write(repoDir.resolve("blobs").resolve(sha), weights);
    Files.createDirectories(repoDir.resolve("snapshots").resolve(commit));
    Files.createSymbolicLink(repoDir.resolve("snapshots").resolve(commit).resolve("model.safetensors"),
        Path.of("../../blobs/" + sha));
    Files.createDirectories(repoDir.resolve("refs"));
    Files.writeString(repoDir.resolve("refs/main"), commit);
    Path snap = pull();
    assertEquals(0, hub.storageGets.get(), "the cached weights were downloaded again: " + hub.log);
    assertArrayEquals(config, Files.readAllBytes(snap.resolve("config.json")));
  }

  @Test
  void twoPathsWithTheSameContentShareOneBlobAndOneDownload() throws IOException {
    hub.commit(RepoType.MODEL, REPO, "main", FakeHub.files("original/model.safetensors", FakeHub.entry(weights, true)));
    Path snap = pull();
    assertArrayEquals(weights, Files.readAllBytes(snap.resolve("original/model.safetensors")));
    assertArrayEquals(weights, Files.readAllBytes(snap.resolve("model.safetensors")));
    assertEquals(1, countGets(), "the shared blob was downloaded twice: " + hub.log);
  }

  @Test
  void includeAndExcludeFollowFnmatch() throws IOException {
    Path snap = pull(TOKEN, "main", List.of("*.json"), List.of("tok/*"), DownloadProgress.NONE);
    assertTrue(Files.exists(snap.resolve("config.json")));
    assertFalse(Files.exists(snap.resolve("tok/tokenizer.json"), LinkOption.NOFOLLOW_LINKS));
    assertFalse(Files.exists(snap.resolve("model.safetensors"), LinkOption.NOFOLLOW_LINKS));
    assertTrue(Globs.matches("tok/", "tok/a/b.json"));
    assertTrue(Globs.matches("*.safetensors", "sub/model.safetensors"), "fnmatch's * crosses /");
    assertTrue(Globs.matches("model-0000[1-2]-*", "model-00002-of-00004.safetensors"));
    assertFalse(Globs.matches("model-0000[!1-2]-*", "model-00002-of-00004.safetensors"));
  }

  @Test
  void revisionsByBranchAndCommit() throws IOException {
    String dev = hub.commit(RepoType.MODEL, REPO, "dev", FakeHub.files("config.json",
        FakeHub.entry("{\"dev\": 1}".getBytes(), false)));
    Path snap = pull(TOKEN, "dev", List.of(), List.of(), DownloadProgress.NONE);
    assertEquals(dev, snap.getFileName().toString());
    assertEquals("{\"dev\": 1}", Files.readString(snap.resolve("config.json")));
    Path byCommit = pull(TOKEN, commit, List.of("config.json"), List.of(), DownloadProgress.NONE);
    assertEquals(commit, byCommit.getFileName().toString());
    assertFalse(Files.exists(cache.resolve("models--medtune-test--tiny-llama/refs/" + commit)),
        "a commit is not written as a ref");
  }

  @Test
  void aConnectionCutHalfwayIsResumedWithARange() throws IOException {
    hub.fault("model.safetensors", new FakeHub.Cut(weights.length / 2));
    List<String> notes = Collections.synchronizedList(new ArrayList<>());
    Path snap = pull(TOKEN, "main", List.of(), List.of(), new DownloadProgress() {
      @Override
      public void note(String m) {
        notes.add(m);
      }
    });
    assertArrayEquals(weights, Files.readAllBytes(snap.resolve("model.safetensors")));
    List<String> gets = hub.log.stream().filter(l -> l.startsWith("GET localhost")).toList();
    assertEquals(2, gets.size(), gets.toString());
    // resumed from what reached the disk before the cut (the last bytes the server wrote may be lost)
    long from = Long.parseLong(gets.get(1).replaceAll(".*bytes=(\\d+)-$", "$1"));
    assertTrue(from > weights.length / 4 && from <= weights.length / 2, "resumed from the cut: " + gets);
    assertTrue(notes.stream().anyMatch(n -> n.contains("resuming at byte " + from)), notes.toString());
  }

  @Test
  void aPartialFileLeftByAnEarlierRunIsResumed() throws IOException {
    Path blobs = cache.resolve("models--medtune-test--tiny-llama/blobs");
    Files.createDirectories(blobs);
    String sha = FakeHub.sha256(weights);
    Files.write(blobs.resolve(sha + ".incomplete"), java.util.Arrays.copyOf(weights, 1_000_000));
    Path snap = pull();
    assertArrayEquals(weights, Files.readAllBytes(snap.resolve("model.safetensors")));
    assertTrue(hub.log.stream().anyMatch(l -> l.endsWith("bytes=1000000-")), hub.log.toString());
    assertFalse(Files.exists(blobs.resolve(sha + ".incomplete")));
  }

  @Test
  void a503IsRetriedThenSucceeds() throws IOException {
    hub.apiFaults.add(503);
    hub.fault("model.safetensors", new FakeHub.Status(503), new FakeHub.Status(502));
    Path snap = pull();
    assertArrayEquals(weights, Files.readAllBytes(snap.resolve("model.safetensors")));
    assertEquals(3, countGets(), "two 5xx answers, then the file: " + hub.log);
  }

  private int countGets() {
    return (int) hub.log.stream().filter(l -> l.startsWith("GET localhost")).count();
  }

  @Test
  void anExpiredStorageUrlIsAskedAgainOnce() throws IOException {
    hub.fault("model.safetensors", new FakeHub.Status(403));
    Path snap = pull();
    assertArrayEquals(weights, Files.readAllBytes(snap.resolve("model.safetensors")));
    hub.fault("other.safetensors", new FakeHub.Status(403), new FakeHub.Status(403));
    hub.commit(RepoType.MODEL, REPO, "main", FakeHub.files("other.safetensors", FakeHub.entry(weights, true)));
    Files.delete(cache.resolve("models--medtune-test--tiny-llama/blobs").resolve(FakeHub.sha256(weights)));
    HubException e = assertThrows(HubException.class, () -> pull(TOKEN, "main", List.of("other*"), List.of(),
        DownloadProgress.NONE));
    assertTrue(e.getMessage().contains("403"), e.getMessage());
  }

  @Test
  void persistent5xxFailsWithOneLine() {
    for (int i = 0; i < 10; i++) {
      hub.apiFaults.add(500);
    }
    HubException e = assertThrows(HubException.class, this::pull);
    assertEquals(HubException.Kind.SERVER, e.kind());
    assertTrue(e.getMessage().contains("answered 500") && e.getMessage().contains("after 6 tries"), e.getMessage());
  }

  @Test
  void aWrongHashIsRefusedAndLeavesNothing() throws IOException {
    hub.wrongHash.add("model.safetensors");
    HubException e = assertThrows(HubException.class, this::pull);
    assertEquals(HubException.Kind.CHECKSUM, e.kind());
    assertTrue(e.getMessage().contains("model.safetensors") && e.getMessage().contains("does not match"), e.getMessage());
    Path repoDir = cache.resolve("models--medtune-test--tiny-llama");
    assertFalse(Files.exists(repoDir.resolve("snapshots").resolve(commit).resolve("model.safetensors"),
        LinkOption.NOFOLLOW_LINKS));
    try (Stream<Path> s = Files.list(repoDir.resolve("blobs"))) {
      List<String> blobs = s.map(p -> p.getFileName().toString()).toList();
      assertTrue(blobs.stream().noneMatch(b -> b.endsWith(".incomplete")), "partial file left: " + blobs);
      assertFalse(blobs.contains(FakeHub.sha256(weights)));
    }
  }

  @Test
  void aSlowServerKeepsProgressMovingAndIsNotTimedOut() throws IOException {
    byte[] slow = random(256 << 10, 7);
    hub.commit(RepoType.MODEL, REPO, "main", FakeHub.files("slow.bin", FakeHub.entry(slow, true)));
    hub.fault("slow.bin", new FakeHub.Slow(8 << 10, 40)); // 32 chunks: about 1.3 s, the timeout is 0.8 s
    Map<String, List<Long>> seen = new ConcurrentHashMap<>();
    AtomicLong total = new AtomicLong();
    long t0 = System.nanoTime();
    Path snap = pull(TOKEN, "main", List.of("slow.bin"), List.of(), new DownloadProgress() {
      @Override
      public void advance(String path, long bytes) {
        seen.computeIfAbsent(path, k -> Collections.synchronizedList(new ArrayList<>())).add(total.addAndGet(bytes));
      }
    });
    long ms = (System.nanoTime() - t0) / 1_000_000;
    assertArrayEquals(slow, Files.readAllBytes(snap.resolve("slow.bin")));
    assertTrue(ms > 800, "the transfer took longer than the read timeout: " + ms + " ms");
    assertTrue(seen.get("slow.bin").size() >= 6, "progress moved in steps: " + seen);
    assertEquals(1, countGets(), "no retry: " + hub.log);
  }

  @Test
  void aStalledTransferIsAbortedAndResumed() throws IOException {
    hub.fault("model.safetensors", new FakeHub.Stall(1 << 20, 5000));
    long t0 = System.nanoTime();
    Path snap = pull();
    assertArrayEquals(weights, Files.readAllBytes(snap.resolve("model.safetensors")));
    assertTrue((System.nanoTime() - t0) / 1_000_000 < 4000, "waited for the stalled server");
    assertTrue(hub.log.stream().anyMatch(l -> l.endsWith("bytes=" + (1 << 20) + "-")), hub.log.toString());
  }

  @Test
  void badTokenIs401() {
    String bad = "hf_WRONGtokenDoNotPrintMe";
    HubException e = assertThrows(HubException.class, () -> pull(bad, "main", List.of(), List.of(), DownloadProgress.NONE));
    assertEquals(HubException.Kind.BAD_TOKEN, e.kind());
    assertFalse(e.getMessage().contains(bad), e.getMessage());
    assertTrue(e.getMessage().contains("--token"), e.getMessage());
  }

  @Test
  void gatedRepositoryTellsToAcceptTheLicence() {
    hub.repo(RepoType.MODEL, REPO).gated = true;
    HubException e = assertThrows(HubException.class, this::pull);
    assertEquals(HubException.Kind.GATED, e.kind());
    assertTrue(e.getMessage().contains("accept its licence at " + hub.endpoint() + "/" + REPO), e.getMessage());
    HubException anon = assertThrows(HubException.class, () -> pull(null, "main", List.of(), List.of(), DownloadProgress.NONE));
    assertEquals(HubException.Kind.GATED, anon.kind());
    assertTrue(anon.getMessage().contains("no token is set"), anon.getMessage());
    hub.repo(RepoType.MODEL, REPO).granted.add(TOKEN);
    assertTrue(Files.isDirectory(pull()));
  }

  @Test
  void missingRepositoryAndRevision() {
    HubException e = assertThrows(HubException.class, () -> {
      try (HubClient c = new HubClient(config(TOKEN))) {
        c.snapshot("medtune-test/nope", RepoType.MODEL, "main", List.of(), List.of(), DownloadProgress.NONE);
      }
    });
    assertEquals(HubException.Kind.REPO_NOT_FOUND, e.kind());
    assertTrue(e.getMessage().startsWith("model medtune-test/nope not found on " + hub.endpoint()), e.getMessage());
    HubException anon = assertThrows(HubException.class, () -> {
      try (HubClient c = new HubClient(config(null))) {
        c.snapshot("medtune-test/nope", RepoType.DATASET, "main", List.of(), List.of(), DownloadProgress.NONE);
      }
    });
    assertEquals(HubException.Kind.REPO_NOT_FOUND, anon.kind());
    assertTrue(anon.getMessage().contains("dataset medtune-test/nope") && anon.getMessage().contains("private"),
        anon.getMessage());
    HubException rev = assertThrows(HubException.class, () -> pull(TOKEN, "v9", List.of(), List.of(), DownloadProgress.NONE));
    assertEquals(HubException.Kind.REVISION_NOT_FOUND, rev.kind());
    assertEquals("revision 'v9' not found in model " + REPO + " on " + hub.endpoint(), rev.getMessage());
  }

  @Test
  void offlineResolvesFromTheCacheOrSaysWhy() throws IOException {
    HubException none;
    try (HubClient c = new HubClient(config(TOKEN).withOffline(true))) {
      none = assertThrows(HubException.class,
          () -> c.snapshot(REPO, RepoType.MODEL, "main", List.of(), List.of(), DownloadProgress.NONE));
    }
    assertEquals(HubException.Kind.OFFLINE, none.kind());
    assertTrue(none.getMessage().contains("not in the cache " + cache), none.getMessage());
    Path online = pull();
    hub.close();
    int before = hub.log.size();
    try (HubClient c = new HubClient(config(TOKEN).withOffline(true))) {
      assertEquals(online, c.snapshot(REPO, RepoType.MODEL, "main", List.of(), List.of(), DownloadProgress.NONE));
    }
    assertEquals(before, hub.log.size());
    // the hub unreachable: the cached snapshot, with a note
    List<String> notes = new ArrayList<>();
    try (HubClient c = new HubClient(config(TOKEN))) {
      assertEquals(online, c.snapshot(REPO, RepoType.MODEL, "main", List.of(), List.of(), new DownloadProgress() {
        @Override
        public void note(String m) {
          notes.add(m);
        }
      }));
    }
    assertTrue(notes.getFirst().contains("using the cached snapshot"), notes.toString());
  }

  @Test
  void anUnreachableHubWithNothingCachedSaysSo() {
    hub.close();
    HubException e = assertThrows(HubException.class, this::pull);
    assertEquals(HubException.Kind.NETWORK, e.kind());
    assertTrue(e.getMessage().startsWith("cannot reach " + hub.endpoint()) && e.getMessage().contains("after 3 tries"),
        e.getMessage());
  }

  @Test
  void resolveKeepsLocalPathsAndPullsHubIds() throws IOException {
    Path local = Files.createDirectories(tmp.resolve("medtune-test"));
    try (HubClient c = new HubClient(config(TOKEN))) {
      assertEquals(local, c.resolve(local.toString(), RepoType.MODEL, DownloadProgress.NONE));
      Path snap = c.resolve(REPO, RepoType.MODEL, DownloadProgress.NONE);
      assertArrayEquals(config, Files.readAllBytes(snap.resolve("config.json")));
    }
    assertTrue(HubClient.isRepoId("gpt2") && HubClient.isRepoId("meta-llama/Llama-3.1-8B"));
    assertFalse(HubClient.isRepoId("./model") || HubClient.isRepoId("/abs/path") || HubClient.isRepoId("a/b/c"));
  }

  @Test
  void diskFullIsOneClearLine() throws IOException {
    Path devFull = Path.of("/dev/full");
    org.junit.jupiter.api.Assumptions.assumeTrue(Files.exists(devFull), "needs /dev/full (Linux)");
    Path blobs = cache.resolve("models--medtune-test--tiny-llama/blobs");
    Files.createDirectories(blobs);
    // the kernel answers ENOSPC to every write into /dev/full: a real disk-full error
    Files.createSymbolicLink(blobs.resolve(FakeHub.sha256(weights) + ".incomplete"), devFull);
    HubException e = assertThrows(HubException.class, this::pull);
    assertEquals(HubException.Kind.DISK_FULL, e.kind());
    assertTrue(e.getMessage().startsWith("disk full while writing model.safetensors"), e.getMessage());
  }

  @Test
  void configurationReadsTheHubVariablesAndHidesTheToken() throws IOException {
    Path home = tmp.resolve("hfhome");
    Files.createDirectories(home);
    Files.writeString(home.resolve("token"), TOKEN + "\n");
    HubConfig c = HubConfig.from(Map.of("HF_HOME", home.toString(), "HF_HUB_OFFLINE", "1"), null);
    assertEquals(TOKEN, c.token());
    assertEquals(home.resolve("hub"), c.cacheDir());
    assertTrue(c.offline());
    assertEquals(URI.create("https://huggingface.co"), c.endpoint());
    assertFalse(c.toString().contains(TOKEN), c.toString());
    HubConfig d = HubConfig.from(Map.of("HF_HOME", home.toString(), "HF_TOKEN", "hf_env", "HF_HUB_CACHE",
        tmp.resolve("c").toString(), "HF_ENDPOINT", "http://127.0.0.1:9/"), null);
    assertEquals("hf_env", d.token());
    assertEquals(tmp.resolve("c"), d.cacheDir());
    assertEquals(URI.create("http://127.0.0.1:9"), d.endpoint());
    assertEquals("hf_opt", HubConfig.from(Map.of("HF_TOKEN", "hf_env"), "hf_opt").token());
    Files.writeString(tmp.resolve("tp"), "hf_path");
    assertEquals("hf_path", HubConfig.from(Map.of("HF_HOME", home.toString(), "HF_TOKEN_PATH",
        tmp.resolve("tp").toString()), null).token());
  }
}
