package dev.medtune.hub;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * One push, as {@code HfApi.upload_folder}/{@code create_commit} do it: create the repository
 * ({@code POST /api/repos/create}, 409 means it exists), ask {@code preupload} which files go
 * through LFS and which the hub already has ({@code oid}), send the LFS ones with the Git LFS batch
 * protocol ({@code lfs.py}: basic PUT or multipart, then verify), and commit with one NDJSON
 * request of {@code header}, {@code file} (base64) and {@code lfsFile} lines.
 */
final class CommitUpload {
  private static final int SAMPLE = 512;
  private static final int CHUNK = 256;
  private static final Map<String, String> LFS_HEADERS = Map.of(
      "Accept", "application/vnd.git-lfs+json", "Content-Type", "application/vnd.git-lfs+json");

  /** A file to push, with the hashes both sides compare: sha256 (LFS) and the git blob id. */
  record LocalFile(String path, Path file, long size, String sha256, String gitOid, byte[] sample) {}

  private record Mode(boolean lfs, boolean ignore, String remoteOid) {}

  private final HubHttp http;
  private final RepoType type;
  private final String repoId;
  private final PushOptions options;
  private final DownloadProgress progress;
  private final HubHttp.Target target;

  CommitUpload(HubHttp http, RepoType type, String repoId, PushOptions options, DownloadProgress progress) {
    this.http = http;
    this.type = type;
    this.repoId = repoId;
    this.options = options;
    this.progress = progress;
    this.target = new HubHttp.Target(type, repoId, options.revision(), null);
  }

  PushResult run(Path folder) throws IOException {
    if (!repoId.contains("/")) {
      throw new IllegalArgumentException("repository id '" + repoId + "' needs its owner: org/name or user/name");
    }
    List<LocalFile> files = scan(folder);
    if (files.isEmpty()) {
      throw new IllegalArgumentException(folder + " has no files to push");
    }
    createRepo();
    if (!options.revision().equals("main")) {
      createBranch();
    }
    Map<String, Mode> modes = preupload(files);
    List<LocalFile> send = new ArrayList<>();
    List<String> unchanged = new ArrayList<>();
    for (LocalFile f : files) {
      Mode m = modes.get(f.path());
      if (m == null) {
        throw new HubException(HubException.Kind.OTHER, "the hub's preupload answer does not mention " + f.path());
      }
      if (m.ignore()) {
        continue;
      }
      String local = m.lfs() ? f.sha256() : f.gitOid();
      if (local.equals(m.remoteOid())) {
        unchanged.add(f.path());
      } else {
        send.add(f);
      }
    }
    if (send.isEmpty()) {
      progress.note("nothing changed: the hub already has all " + unchanged.size() + " files of " + folder);
      return new PushResult(null, null, List.of(), unchanged, 0);
    }
    long sent = 0;
    List<LocalFile> lfs = send.stream().filter(f -> modes.get(f.path()).lfs()).toList();
    for (int i = 0; i < lfs.size(); i += 100) {
      sent += lfsUpload(lfs.subList(i, Math.min(lfs.size(), i + 100)));
    }
    JsonNode done = commit(send, modes);
    return new PushResult(done.path("commitUrl").asText(null), done.path("commitOid").asText(null),
        send.stream().map(LocalFile::path).toList(), unchanged, sent);
  }

  /**
   * Every regular file under {@code folder} but {@code .git/} and {@code .cache/huggingface/}
   * (the Python client's default ignore patterns), with its hashes.
   */
  static List<LocalFile> scan(Path folder) throws IOException {
    if (!Files.isDirectory(folder)) {
      throw new IllegalArgumentException(folder + " is not a folder");
    }
    List<LocalFile> out = new ArrayList<>();
    try (Stream<Path> walk = Files.walk(folder)) {
      for (Path p : walk.filter(Files::isRegularFile).sorted().toList()) {
        String rel = folder.relativize(p).toString().replace('\\', '/');
        if (rel.equals(".git") || rel.startsWith(".git/") || rel.contains("/.git/")
            || rel.startsWith(".cache/huggingface/") || rel.contains("/.cache/huggingface/")) {
          continue;
        }
        out.add(hash(rel, p));
      }
    }
    return out;
  }

  static LocalFile hash(String rel, Path p) throws IOException {
    long size = Files.size(p);
    MessageDigest sha256 = FileDownload.sha256();
    MessageDigest sha1;
    try {
      sha1 = MessageDigest.getInstance("SHA-1");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
    sha1.update(("blob " + size + "\0").getBytes(StandardCharsets.US_ASCII));
    byte[] sample = new byte[0];
    try (InputStream in = Files.newInputStream(p)) {
      byte[] buf = new byte[1 << 20];
      int n;
      boolean first = true;
      while ((n = in.read(buf)) > 0) {
        if (first) {
          sample = java.util.Arrays.copyOf(buf, Math.min(n, SAMPLE));
          first = false;
        }
        FileDownload.digest(sha256, buf, n);
        FileDownload.digest(sha1, buf, n);
      }
    }
    return new LocalFile(rel, p, size, HexFormat.of().formatHex(sha256.digest()), HexFormat.of().formatHex(sha1.digest()),
        sample);
  }

  private void createRepo() throws IOException {
    ObjectNode body = HubHttp.JSON.createObjectNode();
    int slash = repoId.indexOf('/');
    body.put("name", repoId.substring(slash + 1));
    body.put("organization", repoId.substring(0, slash));
    body.put("private", options.privateRepo());
    if (type != RepoType.MODEL) {
      body.put("type", type.id());
    }
    byte[] bytes = HubHttp.JSON.writeValueAsBytes(body);
    HttpResponse<InputStream> r = http.send("POST", http.api("/api/repos/create"),
        Map.of("Content-Type", "application/json"), () -> HttpRequest.BodyPublishers.ofByteArray(bytes),
        HubHttp.Redirects.RELATIVE, target);
    int s = r.statusCode();
    if (s < 300) {
      r.body().close();
      progress.note("created " + type.id() + " " + repoId + (options.privateRepo() ? " (private)" : ""));
      return;
    }
    if (s == 409) {
      r.body().close();
      return; // it exists
    }
    if (s == 403) {
      // no right to create in that namespace may still mean the repository exists (create_repo's exist_ok)
      HttpResponse<InputStream> info = http.send("GET", http.api("/api/" + type.plural() + "/" + repoId),
          Map.of(), null, HubHttp.Redirects.RELATIVE, target);
      info.body().close();
      if (info.statusCode() == 200) {
        r.body().close();
        return;
      }
    }
    throw http.failure(r, target);
  }

  private void createBranch() throws IOException {
    HttpResponse<InputStream> r = http.send("POST",
        http.api("/api/" + type.plural() + "/" + repoId + "/branch/" + HubHttp.quote(options.revision())),
        Map.of("Content-Type", "application/json"), () -> HttpRequest.BodyPublishers.ofString("{}"),
        HubHttp.Redirects.RELATIVE, target);
    if (r.statusCode() < 300 || r.statusCode() == 409) {
      r.body().close();
      return;
    }
    throw http.failure(r, target);
  }

  private Map<String, Mode> preupload(List<LocalFile> files) throws IOException {
    Map<String, Mode> modes = new HashMap<>();
    URI uri = http.api("/api/" + type.plural() + "/" + repoId + "/preupload/" + HubHttp.quote(options.revision()));
    for (int i = 0; i < files.size(); i += CHUNK) {
      ObjectNode body = HubHttp.JSON.createObjectNode();
      ArrayNode arr = body.putArray("files");
      for (LocalFile f : files.subList(i, Math.min(files.size(), i + CHUNK))) {
        arr.addObject().put("path", f.path()).put("sample", Base64.getEncoder().encodeToString(f.sample()))
            .put("size", f.size()).put("sha", f.sha256());
      }
      JsonNode answer = http.json("POST", uri, body, Map.of(), target);
      for (JsonNode n : answer.path("files")) {
        modes.put(n.path("path").asText(), new Mode(n.path("uploadMode").asText().equals("lfs"),
            n.path("shouldIgnore").asBoolean(false), n.path("oid").isTextual() ? n.path("oid").asText() : null));
      }
    }
    return modes;
  }

  /** The Git LFS batch API: the hub answers, per object, where to send it, or nothing if it has it. */
  private long lfsUpload(List<LocalFile> files) throws IOException {
    ObjectNode body = HubHttp.JSON.createObjectNode();
    body.put("operation", "upload");
    body.putArray("transfers").add("basic").add("multipart");
    ArrayNode objs = body.putArray("objects");
    Map<String, LocalFile> byOid = new LinkedHashMap<>();
    for (LocalFile f : files) {
      objs.addObject().put("oid", f.sha256()).put("size", f.size());
      byOid.put(f.sha256(), f);
    }
    body.put("hash_algo", "sha256");
    body.putObject("ref").put("name", options.revision());
    JsonNode answer = http.json("POST", http.api("/" + type.urlPrefix() + repoId + ".git/info/lfs/objects/batch"),
        body, LFS_HEADERS, target);
    long sent = 0;
    for (JsonNode o : answer.path("objects")) {
      LocalFile f = byOid.get(o.path("oid").asText());
      if (f == null) {
        continue;
      }
      if (o.has("error")) {
        throw new HubException(HubException.Kind.OTHER, "the hub refused the LFS upload of " + f.path() + ": "
            + o.path("error").path("code").asText() + " " + o.path("error").path("message").asText());
      }
      JsonNode actions = o.path("actions");
      JsonNode upload = actions.path("upload");
      if (upload.isMissingNode()) {
        progress.note(f.path() + ": the hub already stores this content");
        continue; // the hub has this content already
      }
      progress.start(f.path(), f.size(), 0);
      boolean ok = false;
      try {
        JsonNode header = upload.path("header");
        if (header.has("chunk_size")) {
          multipart(f, upload);
        } else {
          Map<String, String> h = new TreeMap<>();
          header.fields().forEachRemaining(e -> h.put(e.getKey(), e.getValue().asText()));
          put(URI.create(upload.path("href").asText()), f, 0, f.size(), h);
        }
        sent += f.size();
        JsonNode verify = actions.path("verify");
        if (!verify.isMissingNode()) {
          Map<String, String> h = new TreeMap<>();
          verify.path("header").fields().forEachRemaining(e -> h.put(e.getKey(), e.getValue().asText()));
          ObjectNode v = HubHttp.JSON.createObjectNode().put("oid", f.sha256()).put("size", f.size());
          http.json("POST", URI.create(verify.path("href").asText()), v, h, target);
        }
        ok = true;
      } finally {
        progress.finish(f.path(), ok);
      }
    }
    return sent;
  }

  /** {@code lfs.py _upload_multi_part}: PUT each part to its URL, then POST the parts' ETags. */
  private void multipart(LocalFile f, JsonNode upload) throws IOException {
    JsonNode header = upload.path("header");
    long chunk = header.path("chunk_size").asLong();
    List<String> partUrls = new ArrayList<>();
    for (int i = 1; header.has(String.valueOf(i)) || header.has(String.format("%05d", i)); i++) {
      partUrls.add(header.has(String.valueOf(i)) ? header.path(String.valueOf(i)).asText()
          : header.path(String.format("%05d", i)).asText());
    }
    ObjectNode complete = HubHttp.JSON.createObjectNode().put("oid", f.sha256());
    ArrayNode parts = complete.putArray("parts");
    for (int i = 0; i < partUrls.size(); i++) {
      int partNo = i + 1;
      long off = i * chunk;
      long len = Math.min(chunk, f.size() - off);
      HttpResponse<InputStream> r = put(URI.create(partUrls.get(i)), f, off, len, Map.of());
      String etag = r.headers().firstValue("ETag").orElseThrow(() -> new HubException(HubException.Kind.OTHER,
"the storage answer for part " + partNo + " of " + f.path() + " has no ETag"));
      parts.addObject().put("partNumber", partNo).put("etag", etag);
    }
    http.json("POST", URI.create(upload.path("href").asText()), complete, LFS_HEADERS, target);
  }

  private HttpResponse<InputStream> put(URI uri, LocalFile f, long offset, long len, Map<String, String> headers)
      throws IOException {
    HttpResponse<InputStream> r = http.send("PUT", uri, headers,
        () -> HttpRequest.BodyPublishers.fromPublisher(HttpRequest.BodyPublishers.ofInputStream(() -> slice(f, offset, len)), len),
        HubHttp.Redirects.ALL, target);
    if (r.statusCode() >= 300) {
      throw http.failure(r, target);
    }
    r.body().close();
    return r;
  }

  /** The bytes [offset, offset+len) of the file, reporting progress as they are read by the client. */
  private InputStream slice(LocalFile f, long offset, long len) {
    try {
      FileChannel ch = FileChannel.open(f.file(), StandardOpenOption.READ);
      ch.position(offset);
      InputStream raw = Channels.newInputStream(ch);
      return new FilterInputStream(raw) {
        long left = len;

        @Override
        public int read() throws IOException {
          byte[] one = new byte[1];
          return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int n) throws IOException {
          if (left <= 0) {
            return -1;
          }
          int got = super.read(b, off, (int) Math.min(n, left));
          if (got > 0) {
            left -= got;
            progress.advance(f.path(), got);
          }
          return got;
        }
      };
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  }

  private JsonNode commit(List<LocalFile> send, Map<String, Mode> modes) throws IOException {
    StringBuilder nd = new StringBuilder();
    ObjectNode header = HubHttp.JSON.createObjectNode().put("key", "header");
    header.putObject("value").put("summary", options.message()).put("description", "");
    nd.append(HubHttp.JSON.writeValueAsString(header)).append('\n');
    for (LocalFile f : send) {
      ObjectNode line = HubHttp.JSON.createObjectNode();
      if (modes.get(f.path()).lfs()) {
        line.put("key", "lfsFile").putObject("value").put("path", f.path()).put("algo", "sha256")
            .put("oid", f.sha256()).put("size", f.size());
      } else {
        line.put("key", "file").putObject("value")
            .put("content", Base64.getEncoder().encodeToString(Files.readAllBytes(f.file())))
            .put("path", f.path()).put("encoding", "base64");
      }
      nd.append(HubHttp.JSON.writeValueAsString(line)).append('\n');
    }
    byte[] bytes = nd.toString().getBytes(StandardCharsets.UTF_8);
    HttpResponse<InputStream> r = http.send("POST",
        http.api("/api/" + type.plural() + "/" + repoId + "/commit/" + HubHttp.quote(options.revision())),
        Map.of("Content-Type", "application/x-ndjson"), () -> HttpRequest.BodyPublishers.ofByteArray(bytes),
        HubHttp.Redirects.RELATIVE, target);
    return http.readJson(r, target);
  }
}
