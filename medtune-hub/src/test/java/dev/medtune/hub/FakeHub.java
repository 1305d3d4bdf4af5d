package dev.medtune.hub;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.Deque;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A stand-in for the Hugging Face hub on 127.0.0.1: the subset of its HTTP API medtune uses, with
 * the real hub's answers (resolve: {@code X-Repo-Commit}, {@code X-Linked-Etag},
 * {@code X-Linked-Size}, git-oid {@code ETag}, a 302 to a presigned storage URL on another host name
 * — {@code localhost} — for LFS files; {@code X-Error-Code}/{@code X-Error-Message} errors; the
 * commit, preupload and LFS batch APIs). Faults are injected per file name. The client under test
 * speaks real HTTP to it.
 */
public final class FakeHub implements AutoCloseable {
  public static final ObjectMapper JSON = new ObjectMapper();
  public static final long LFS_THRESHOLD = 10L << 20;

  /** A file in a commit: its bytes (or a file on disk, for the benchmark) and its ids. */
  public record Entry(byte[] bytes, Path disk, long size, String sha256, String gitOid, boolean lfs) {
    public InputStream open() throws IOException {
      return bytes != null ? new java.io.ByteArrayInputStream(bytes) : Files.newInputStream(disk);
    }
  }

  public static final class Repo {
    public final RepoType type;
    public final String id;
    public boolean isPrivate;
    public boolean gated;
    public final Set<String> granted = new HashSet<>();
    public final Map<String, String> branches = new ConcurrentHashMap<>();
    public final Map<String, Map<String, Entry>> commits = new ConcurrentHashMap<>();

    public Repo(RepoType type, String id) {
      this.type = type;
      this.id = id;
    }

    public Map<String, Entry> tree(String rev) {
      String c = branches.getOrDefault(rev, rev);
      return commits.get(c);
    }

    public String commitOf(String rev) {
      return branches.containsKey(rev) ? branches.get(rev) : commits.containsKey(rev) ? rev : null;
    }
  }

  /** A fault for the next body request of a file: a status, a cut, a slow or stalled stream. */
  public sealed interface Fault {}
  public record Status(int code) implements Fault {}
  public record Cut(long after) implements Fault {}
  public record Slow(int chunk, long delayMs) implements Fault {}
  public record Stall(long after, long ms) implements Fault {}

  private final HttpServer server;
  private final ExecutorService pool = Executors.newCachedThreadPool(r -> {
    Thread t = new Thread(r, "fake-hub");
    t.setDaemon(true);
    return t;
  });
  public final Map<String, Repo> repos = new ConcurrentHashMap<>();
  public final Set<String> readTokens = ConcurrentHashMap.newKeySet();
  public final Set<String> writeTokens = ConcurrentHashMap.newKeySet();
  public final Map<String, Entry> lfsStore = new ConcurrentHashMap<>();
  public final Map<String, Deque<Fault>> faults = new ConcurrentHashMap<>();
  public final Deque<Integer> apiFaults = new ArrayDeque<>();
  public final Set<String> wrongHash = ConcurrentHashMap.newKeySet();
  public final AtomicInteger lfsPuts = new AtomicInteger();
  public final AtomicLong lfsBytesReceived = new AtomicLong();
  public final AtomicInteger commitsMade = new AtomicInteger();
  public final AtomicInteger storageGets = new AtomicInteger();
  public final AtomicInteger tokenLeaks = new AtomicInteger();
  public final List<String> log = Collections.synchronizedList(new ArrayList<>());
  /** Every Authorization header value and request line seen, to check what reached the server. */
  public final List<String> authSeen = Collections.synchronizedList(new ArrayList<>());
  public volatile long multipartThreshold = Long.MAX_VALUE;
  public volatile long multipartChunk = 1 << 20;

  public FakeHub() throws IOException {
    server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 64);
    server.createContext("/", this::handle);
    server.setExecutor(pool);
    server.start();
  }

  public int port() {
    return server.getAddress().getPort();
  }

  /** The hub's address, what HF_ENDPOINT would be. */
  public String endpoint() {
    return "http://127.0.0.1:" + port();
  }

  /** The storage host: the same server under another host name, so a token must not follow. */
  public String storage() {
    return "http://localhost:" + port();
  }

  @Override
  public void close() {
    server.stop(0);
    pool.shutdownNow();
  }

  // ---- setting up repositories

  public static Entry entry(byte[] bytes, boolean lfs) {
    return new Entry(bytes, null, bytes.length, sha256(bytes), gitOid(bytes), lfs);
  }

  public static Entry diskEntry(Path p) throws IOException {
    MessageDigest d = sha();
    try (InputStream in = Files.newInputStream(p)) {
      byte[] buf = new byte[1 << 20];
      int n;
      while ((n = in.read(buf)) > 0) {
        d.update(buf, 0, n);
      }
    }
    return new Entry(null, p, Files.size(p), HexFormat.of().formatHex(d.digest()), null, true);
  }

  public Repo repo(RepoType type, String id) {
    return repos.computeIfAbsent(type.plural() + "/" + id, k -> new Repo(type, id));
  }

  /** Adds a commit on {@code branch} with these files (on top of what the branch had). */
  public String commit(RepoType type, String id, String branch, Map<String, Entry> files) {
    Repo r = repo(type, id);
    Map<String, Entry> tree = new LinkedHashMap<>();
    String parent = r.branches.get(branch);
    if (parent != null) {
      tree.putAll(r.commits.get(parent));
    }
    tree.putAll(files);
    StringBuilder key = new StringBuilder(String.valueOf(parent));
    tree.forEach((p, e) -> key.append(p).append(e.sha256()));
    key.append(System.nanoTime());
    String c = gitOid(key.toString().getBytes(StandardCharsets.UTF_8));
    r.commits.put(c, tree);
    r.branches.put(branch, c);
    for (Entry e : files.values()) {
      if (e.lfs()) {
        lfsStore.put(e.sha256(), e);
      }
    }
    return c;
  }

  public void fault(String fileName, Fault... fs) {
    faults.computeIfAbsent(fileName, k -> new ArrayDeque<>()).addAll(List.of(fs));
  }

  // ---- request handling

  private void handle(HttpExchange ex) throws IOException {
    try (ex) {
      String path = ex.getRequestURI().getRawPath();
      String method = ex.getRequestMethod();
      String range = ex.getRequestHeaders().getFirst("Range");
      log.add(method + " " + ex.getRequestHeaders().getFirst("Host") + path + (range == null ? "" : " " + range));
      String auth = ex.getRequestHeaders().getFirst("Authorization");
      authSeen.add(String.valueOf(auth));
      String token = auth != null && auth.startsWith("Bearer ") ? auth.substring(7) : null;
      if (path.startsWith("/storage/") || path.startsWith("/lfs-upload/") || path.startsWith("/lfs-part/")) {
        // presigned storage URLs: S3 refuses a request that also carries an Authorization header
        if (auth != null) {
          tokenLeaks.incrementAndGet();
          error(ex, 400, null, "Only one auth mechanism allowed");
          return;
        }
        if (path.startsWith("/storage/")) {
          storage(ex, path);
        } else {
          lfsPut(ex, path);
        }
        return;
      }
      if (token != null && !readTokens.contains(token) && !writeTokens.contains(token)) {
        error(ex, 401, null, "Invalid credentials in Authorization header");
        return;
      }
      if (path.startsWith("/api/")) {
        Integer f;
        synchronized (apiFaults) {
          f = apiFaults.poll();
        }
        if (f != null) {
          error(ex, f, null, "injected");
          return;
        }
        api(ex, path, method, token);
      } else if (path.endsWith("/info/lfs/objects/batch")) {
        lfsBatch(ex, path, token);
      } else if (path.startsWith("/lfs-complete/")) {
        lfsComplete(ex, path);
      } else if (path.equals("/lfs-verify")) {
        JsonNode b = JSON.readTree(ex.getRequestBody());
        Entry e = lfsStore.get(b.path("oid").asText());
        if (e == null || e.size() != b.path("size").asLong()) {
          error(ex, 404, null, "Object not found");
        } else {
          json(ex, 200, JSON.createObjectNode().put("ok", true));
        }
      } else if (path.contains("/resolve/")) {
        resolve(ex, path, method, token);
      } else {
        error(ex, 404, null, "Not found: " + path);
      }
    }
  }

  private static String decode(String s) {
    return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
  }

  /** The repository of an API or resolve path, or an error answer (not found, gated). */
  private Repo access(HttpExchange ex, RepoType type, String id, String token, boolean write) throws IOException {
    Repo r = repos.get(type.plural() + "/" + id);
    boolean canRead = r != null && (!r.isPrivate || (token != null && writeTokens.contains(token)));
    if (!canRead) {
      if (token == null) {
        error(ex, 401, "RepoNotFound", "Repository not found");
      } else {
        error(ex, 404, "RepoNotFound", "Repository not found");
      }
      return null;
    }
    if (write && (token == null || !writeTokens.contains(token))) {
      error(ex, 403, null, "You don't have the rights to create a commit in this repository");
      return null;
    }
    return r;
  }

  private void api(HttpExchange ex, String path, String method, String token) throws IOException {
    if (path.equals("/api/repos/create") && method.equals("POST")) {
      createRepo(ex, token);
      return;
    }
    String rest = path.substring("/api/".length());
    int slash = rest.indexOf('/');
    RepoType type = RepoType.parse(rest.substring(0, slash));
    rest = rest.substring(slash + 1);
    String action = null;
    String rev = null;
    for (String a : List.of("/revision/", "/preupload/", "/commit/", "/branch/")) {
      int i = rest.indexOf(a);
      if (i >= 0) {
        action = a.replace("/", "");
        rev = decode(rest.substring(i + a.length()));
        rest = rest.substring(0, i);
        break;
      }
    }
    String id = rest;
    boolean write = action != null && !action.equals("revision");
    Repo r = access(ex, type, id, token, write);
    if (r == null) {
      return;
    }
    if (action == null || action.equals("revision")) {
      String c = r.commitOf(rev == null ? "main" : rev);
      if (c == null) {
        error(ex, 404, "RevisionNotFound", "Invalid rev id: " + rev);
        return;
      }
      ObjectNode o = JSON.createObjectNode().put("id", id).put("sha", c).put("private", r.isPrivate);
      o.put("gated", r.gated ? "manual" : "false");
      ArrayNode sib = o.putArray("siblings");
      r.commits.get(c).keySet().forEach(p -> sib.addObject().put("rfilename", p));
      json(ex, 200, o);
      return;
    }
    switch (action) {
      case "branch" -> {
        if (r.branches.containsKey(rev)) {
          error(ex, 409, null, "Reference already exists");
        } else {
          r.branches.put(rev, r.branches.get("main"));
          json(ex, 200, JSON.createObjectNode());
        }
      }
      case "preupload" -> {
        Map<String, Entry> tree = r.branches.containsKey(rev) ? r.tree(rev) : null;
        if (tree == null) {
          error(ex, 404, "RevisionNotFound", "Invalid rev id: " + rev);
          return;
        }
        JsonNode b = JSON.readTree(ex.getRequestBody());
        ObjectNode out = JSON.createObjectNode();
        ArrayNode files = out.putArray("files");
        for (JsonNode f : b.path("files")) {
          String p = f.path("path").asText();
          byte[] sample = Base64.getDecoder().decode(f.path("sample").asText());
          boolean lfs = lfsByRule(p, f.path("size").asLong(), sample);
          ObjectNode o = files.addObject().put("path", p).put("uploadMode", lfs ? "lfs" : "regular")
              .put("shouldIgnore", false);
          Entry have = tree.get(p);
          if (have != null) {
            o.put("oid", have.lfs() ? have.sha256() : have.gitOid());
          }
        }
        json(ex, 200, out);
      }
      case "commit" -> commitApi(ex, r, rev);
      default -> error(ex, 404, null, "no such API");
    }
  }

  /** The hub's rule of thumb: .gitattributes LFS extensions, big files, binary samples. */
  public static boolean lfsByRule(String path, long size, byte[] sample) {
    if (path.endsWith(".safetensors") || path.endsWith(".bin") || path.endsWith(".pt") || size > LFS_THRESHOLD) {
      return true;
    }
    for (byte x : sample) {
      if (x == 0) {
        return true;
      }
    }
    return false;
  }

  private void createRepo(HttpExchange ex, String token) throws IOException {
    if (token == null) {
      error(ex, 401, null, "Invalid username or password.");
      return;
    }
    if (!writeTokens.contains(token)) {
      error(ex, 403, null, "You don't have the rights to create a model under this namespace");
      return;
    }
    JsonNode b = JSON.readTree(ex.getRequestBody());
    RepoType type = b.has("type") ? RepoType.parse(b.path("type").asText()) : RepoType.MODEL;
    String id = b.path("organization").asText() + "/" + b.path("name").asText();
    if (repos.containsKey(type.plural() + "/" + id)) {
      error(ex, 409, null, "You already created this " + type.id() + " repo");
      return;
    }
    Repo r = repo(type, id);
    r.isPrivate = b.path("private").asBoolean(false);
    commit(type, id, "main", Map.of(".gitattributes", entry("*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
        .getBytes(StandardCharsets.UTF_8), false)));
    json(ex, 200, JSON.createObjectNode().put("url", endpoint() + "/" + type.urlPrefix() + id));
  }

  private void commitApi(HttpExchange ex, Repo r, String rev) throws IOException {
    if (!r.branches.containsKey(rev)) {
      error(ex, 404, "RevisionNotFound", "Invalid rev id: " + rev);
      return;
    }
    if (!"application/x-ndjson".equals(ex.getRequestHeaders().getFirst("Content-Type"))) {
      error(ex, 400, null, "expected application/x-ndjson");
      return;
    }
    String body = new String(ex.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
    Map<String, Entry> changes = new LinkedHashMap<>();
    boolean header = false;
    for (String line : body.split("\n")) {
      if (line.isBlank()) {
        continue;
      }
      JsonNode n = JSON.readTree(line);
      JsonNode v = n.path("value");
      switch (n.path("key").asText()) {
        case "header" -> header = v.has("summary");
        case "file" -> changes.put(v.path("path").asText(),
            entry(Base64.getDecoder().decode(v.path("content").asText()), false));
        case "lfsFile" -> {
          Entry e = lfsStore.get(v.path("oid").asText());
          if (e == null) {
            error(ex, 422, null, "LFS object " + v.path("oid").asText() + " was not uploaded");
            return;
          }
          changes.put(v.path("path").asText(), e);
        }
        default -> {
          error(ex, 400, null, "unknown key " + n.path("key").asText());
          return;
        }
      }
    }
    if (!header) {
      error(ex, 400, null, "the first line must be the header");
      return;
    }
    String c = commit(r.type, r.id, rev, changes);
    commitsMade.incrementAndGet();
    json(ex, 200, JSON.createObjectNode().put("success", true).put("commitOid", c)
        .put("commitUrl", endpoint() + "/" + r.type.urlPrefix() + r.id + "/commit/" + c));
  }

  private void lfsBatch(HttpExchange ex, String path, String token) throws IOException {
    String repoPath = path.substring(1, path.length() - ".git/info/lfs/objects/batch".length());
    RepoType type = repoPath.startsWith("datasets/") ? RepoType.DATASET : RepoType.MODEL;
    String id = type == RepoType.DATASET ? repoPath.substring("datasets/".length()) : repoPath;
    Repo r = access(ex, type, id, token, true);
    if (r == null) {
      return;
    }
    JsonNode b = JSON.readTree(ex.getRequestBody());
    ObjectNode out = JSON.createObjectNode().put("transfer", "basic");
    ArrayNode objs = out.putArray("objects");
    for (JsonNode o : b.path("objects")) {
      String oid = o.path("oid").asText();
      long size = o.path("size").asLong();
      ObjectNode a = objs.addObject().put("oid", oid).put("size", size);
      if (lfsStore.containsKey(oid)) {
        continue; // no actions: the hub has it
      }
      ObjectNode actions = a.putObject("actions");
      if (size > multipartThreshold) {
        ObjectNode up = actions.putObject("upload").put("href", endpoint() + "/lfs-complete/" + oid + "?size=" + size);
        ObjectNode h = up.putObject("header").put("chunk_size", String.valueOf(multipartChunk));
        long parts = (size + multipartChunk - 1) / multipartChunk;
        for (int i = 1; i <= parts; i++) {
          h.put(String.format("%05d", i), storage() + "/lfs-part/" + oid + "/" + i + "?X-Amz-Signature=s");
        }
      } else {
        actions.putObject("upload").put("href", storage() + "/lfs-upload/" + oid + "?X-Amz-Signature=s")
            .putObject("header").put("Content-Type", "application/octet-stream");
      }
      actions.putObject("verify").put("href", endpoint() + "/lfs-verify").putObject("header");
    }
    ex.getResponseHeaders().set("Content-Type", "application/vnd.git-lfs+json");
    json(ex, 200, out);
  }

  private final Map<String, Map<Integer, byte[]>> parts = new ConcurrentHashMap<>();

  private void lfsPut(HttpExchange ex, String path) throws IOException {
    byte[] body = ex.getRequestBody().readAllBytes();
    lfsPuts.incrementAndGet();
    lfsBytesReceived.addAndGet(body.length);
    String[] seg = path.split("/");
    if (path.startsWith("/lfs-part/")) {
      parts.computeIfAbsent(seg[2], k -> new ConcurrentHashMap<>()).put(Integer.parseInt(seg[3]), body);
      ex.getResponseHeaders().set("ETag", "\"" + sha256(body).substring(0, 32) + "\"");
      ex.sendResponseHeaders(200, -1);
      return;
    }
    String oid = seg[2];
    if (!sha256(body).equals(oid)) {
      error(ex, 400, null, "sha256 of the body is not " + oid);
      return;
    }
    lfsStore.put(oid, entry(body, true));
    ex.sendResponseHeaders(200, -1);
  }

  private void lfsComplete(HttpExchange ex, String path) throws IOException {
    String oid = path.substring("/lfs-complete/".length());
    JsonNode b = JSON.readTree(ex.getRequestBody());
    Map<Integer, byte[]> got = parts.remove(oid);
    java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream();
    int i = 1;
    for (JsonNode p : b.path("parts")) {
      byte[] part = got == null ? null : got.get(p.path("partNumber").asInt());
      if (part == null || p.path("partNumber").asInt() != i++
          || !p.path("etag").asText().equals("\"" + sha256(part).substring(0, 32) + "\"")) {
        error(ex, 400, null, "bad part list");
        return;
      }
      all.write(part);
    }
    byte[] bytes = all.toByteArray();
    if (!sha256(bytes).equals(oid)) {
      error(ex, 400, null, "assembled object does not hash to " + oid);
      return;
    }
    lfsStore.put(oid, entry(bytes, true));
    json(ex, 200, JSON.createObjectNode());
  }

  private void resolve(HttpExchange ex, String path, String method, String token) throws IOException {
    String p = path.substring(1);
    RepoType type = RepoType.MODEL;
    if (p.startsWith("datasets/")) {
      type = RepoType.DATASET;
      p = p.substring("datasets/".length());
    }
    int i = p.indexOf("/resolve/");
    String id = p.substring(0, i);
    String after = p.substring(i + "/resolve/".length());
    int s = after.indexOf('/');
    String rev = decode(after.substring(0, s));
    String file = decode(after.substring(s + 1));
    Repo r = access(ex, type, id, token, false);
    if (r == null) {
      return;
    }
    if (r.gated && (token == null || !r.granted.contains(token))) {
      error(ex, token == null ? 401 : 403, "GatedRepo", "Access to model " + id
          + " is restricted and you are not in the authorized list. Visit " + endpoint() + "/" + id + " to ask for access.");
      return;
    }
    String c = r.commitOf(rev);
    if (c == null) {
      error(ex, 404, "RevisionNotFound", "Invalid rev id: " + rev);
      return;
    }
    Entry e = r.commits.get(c).get(file);
    if (e == null) {
      error(ex, 404, "EntryNotFound", "Entry not found");
      return;
    }
    var h = ex.getResponseHeaders();
    h.set("X-Repo-Commit", c);
    String name = file.substring(file.lastIndexOf('/') + 1);
    if (e.lfs()) {
      String etag = wrongHash.contains(name) ? sha256((e.sha256() + "tampered").getBytes(StandardCharsets.UTF_8)) : e.sha256();
      h.set("X-Linked-Etag", "\"" + etag + "\"");
      h.set("X-Linked-Size", String.valueOf(e.size()));
      h.set("ETag", "\"" + gitOid(("version https://git-lfs.github.com/spec/v1\noid sha256:" + e.sha256()).getBytes(StandardCharsets.UTF_8)) + "\"");
      h.set("Location", storage() + "/storage/" + e.sha256() + "/" + name + "?X-Amz-Signature=presigned");
      ex.sendResponseHeaders(302, -1);
      return;
    }
    h.set("ETag", "\"" + e.gitOid() + "\"");
    if (method.equals("HEAD")) {
      h.set("Content-Length", String.valueOf(e.size()));
      ex.sendResponseHeaders(200, -1);
      return;
    }
    body(ex, e, name, 0);
  }

  private void storage(HttpExchange ex, String path) throws IOException {
    String[] seg = path.split("/");
    Entry e = lfsStore.get(seg[2]);
    if (e == null) {
      error(ex, 404, null, "NoSuchKey");
      return;
    }
    storageGets.incrementAndGet();
    long from = 0;
    String range = ex.getRequestHeaders().getFirst("Range");
    if (range != null && range.startsWith("bytes=") && range.endsWith("-")) {
      from = Long.parseLong(range.substring(6, range.length() - 1));
      if (from >= e.size()) {
        ex.getResponseHeaders().set("Content-Range", "bytes */" + e.size());
        ex.sendResponseHeaders(416, -1);
        return;
      }
    }
    body(ex, e, seg.length > 3 ? seg[3] : "", from);
  }

  /** Streams the entry from {@code from} on (206 for a range), applying the file's next fault. */
  private void body(HttpExchange ex, Entry e, String name, long from) throws IOException {
    Deque<Fault> q = faults.get(name);
    Fault f;
    synchronized (this) {
      f = q == null ? null : q.poll();
    }
    if (f instanceof Status st) {
      error(ex, st.code(), null, "injected " + st.code());
      return;
    }
    long len = e.size() - from;
    if (from > 0) {
      ex.getResponseHeaders().set("Content-Range", "bytes " + from + "-" + (e.size() - 1) + "/" + e.size());
    }
    ex.getResponseHeaders().set("Content-Type", "application/octet-stream");
    ex.sendResponseHeaders(from > 0 ? 206 : 200, len);
    OutputStream out = ex.getResponseBody();
    try (InputStream in = e.open()) {
      in.skipNBytes(from);
      byte[] buf = new byte[f instanceof Slow sl ? sl.chunk() : 1 << 20];
      long sent = 0;
      long stopAt = f instanceof Cut cut ? cut.after() : f instanceof Stall st ? st.after() : Long.MAX_VALUE;
      int n;
      while ((n = in.read(buf, 0, (int) Math.min(buf.length, Math.max(0, Math.min(len - sent, stopAt - sent))))) > 0) {
        out.write(buf, 0, n);
        sent += n;
        if (f instanceof Slow sl) {
          out.flush();
          sleep(sl.delayMs());
        }
        if (sent >= stopAt) {
          break;
        }
      }
      if (sent < len) {
        out.flush();
        if (f instanceof Stall st) {
          sleep(st.ms());
        }
        // drop the connection in the middle of the body: the JDK server closes the socket
        // when a handler fails with bytes of the announced length missing
        throw new IOException("injected cut after " + sent + " bytes");
      }
    }
  }

  private static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static void error(HttpExchange ex, int code, String errorCode, String message) throws IOException {
    if (errorCode != null) {
      ex.getResponseHeaders().set("X-Error-Code", errorCode);
    }
    ex.getResponseHeaders().set("X-Error-Message", message);
    byte[] b = JSON.writeValueAsBytes(JSON.createObjectNode().put("error", message));
    ex.getResponseHeaders().set("Content-Type", "application/json");
    if (ex.getRequestMethod().equals("HEAD")) {
      ex.sendResponseHeaders(code, -1);
      return;
    }
    ex.sendResponseHeaders(code, b.length);
    ex.getResponseBody().write(b);
  }

  private static void json(HttpExchange ex, int code, JsonNode n) throws IOException {
    byte[] b = JSON.writeValueAsBytes(n);
    if (ex.getResponseHeaders().getFirst("Content-Type") == null) {
      ex.getResponseHeaders().set("Content-Type", "application/json");
    }
    ex.sendResponseHeaders(code, b.length);
    ex.getResponseBody().write(b);
  }

  public static MessageDigest sha() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  public static String sha256(byte[] b) {
    return HexFormat.of().formatHex(sha().digest(b));
  }

  public static String gitOid(byte[] b) {
    try {
      MessageDigest d = MessageDigest.getInstance("SHA-1");
      d.update(("blob " + b.length + "\0").getBytes(StandardCharsets.US_ASCII));
      return HexFormat.of().formatHex(d.digest(b));
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  public static Map<String, Entry> files(Object... pathAndEntry) {
    Map<String, Entry> m = new LinkedHashMap<>();
    for (int i = 0; i < pathAndEntry.length; i += 2) {
      m.put((String) pathAndEntry[i], (Entry) pathAndEntry[i + 1]);
    }
    return m;
  }
}
