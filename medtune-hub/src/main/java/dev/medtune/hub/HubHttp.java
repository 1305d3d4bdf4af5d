package dev.medtune.hub;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.net.ConnectException;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Function;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The HTTP side of the hub: one place that adds the token (only for the hub's own host, never
 * after a redirect to another one, as {@code huggingface_hub} drops it for the storage host),
 * retries with exponential backoff on 429/5xx and dropped connections, follows redirects by hand,
 * and turns the hub's error answers ({@code X-Error-Code}, {@code X-Error-Message}) into one-line
 * {@link HubException}s.
 */
final class HubHttp {
  static final ObjectMapper JSON = new ObjectMapper();
  private static final Set<Integer> RETRIED = Set.of(429, 500, 502, 503, 504);
  private static final String BAD_CREDENTIALS = "Invalid credentials in Authorization header";


  enum Redirects { NONE, RELATIVE, ALL }

  /** What a request is about, for error messages; any part may be null. */
  record Target(RepoType type, String repoId, String revision, String file) {
    String describe() {
      return (type == null ? "repository" : type.id()) + " " + repoId;
    }
  }

  private final HubConfig config;
  private final HttpClient client;
  private final String userAgent;

  HubHttp(HubConfig config) {
    this.config = config;
    this.client = HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(10))
        .followRedirects(HttpClient.Redirect.NEVER)
        .build();
    this.userAgent = "medtune/" + Objects.requireNonNullElse(HubHttp.class.getPackage().getImplementationVersion(), "dev")
        + "; java/" + Runtime.version().feature();
  }

  HubConfig config() {
    return config;
  }

  /** A path segment quoted as Python's {@code quote(s, safe="")}. */
  static String quote(String s) {
    return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
  }

  /** A file path quoted segment by segment ({@code quote(path, safe="/")}). */
  static String quotePath(String path) {
    StringBuilder b = new StringBuilder();
    for (String part : path.split("/", -1)) {
      if (!b.isEmpty()) {
        b.append('/');
      }
      b.append(quote(part));
    }
    return b.toString();
  }

  URI api(String path) {
    return URI.create(config.endpoint() + path);
  }

  private boolean sameHost(URI uri) {
    URI e = config.endpoint();
    return Objects.equals(e.getScheme(), uri.getScheme()) && Objects.equals(e.getHost(), uri.getHost())
        && e.getPort() == uri.getPort();
  }

  /**
   * Sends a request, retrying 429/5xx answers and failed connections, following redirects as
   * {@code redirects} says. Returns the final answer whatever its status (the body unread).
   */
  HttpResponse<InputStream> send(String method, URI uri, Map<String, String> headers,
      Supplier<HttpRequest.BodyPublisher> body, Redirects redirects, Target target) throws IOException {
    int attempt = 0;
    while (true) {
      try {
        HttpResponse<InputStream> r = sendFollowing(method, uri, headers, body, redirects);
        if (RETRIED.contains(r.statusCode()) && attempt < config.maxRetries()) {
          r.body().close();
          backoff(attempt++, r.headers().firstValue("Retry-After").orElse(null));
          continue;
        }
        return r;
      } catch (ConnectException e) {
        // refused or unresolvable: retrying long only delays the fall-back on the cache
        if (attempt >= Math.min(2, config.maxRetries())) {
          throw networkFailure(uri, e, attempt + 1);
        }
      } catch (IOException e) {
        if (e instanceof InterruptedIOException && Thread.currentThread().isInterrupted()) {
          throw e;
        }
        if (attempt >= config.maxRetries()) {
          throw networkFailure(uri, e, attempt + 1);
        }
      }
      backoff(attempt++, null);
    }
  }

  HubException networkFailure(URI uri, IOException e, int tries) {
    String why = e.getMessage() == null || e.getMessage().isBlank() ? e.getClass().getSimpleName() : e.getMessage();
    return new HubException(HubException.Kind.NETWORK, "cannot reach " + uri.getScheme() + "://" + uri.getAuthority()
        + " (" + why.strip() + ") after " + tries + " tries; set HF_HUB_OFFLINE=1 to use only what is in the cache", e);
  }

  private HttpResponse<InputStream> sendFollowing(String method, URI uri, Map<String, String> headers,
      Supplier<HttpRequest.BodyPublisher> body, Redirects redirects) throws IOException {
    URI current = uri;
    String m = method;
    boolean auth = sameHost(uri);
    for (int hop = 0; hop <= 10; hop++) {
      HttpRequest.Builder b = HttpRequest.newBuilder(current).header("User-Agent", userAgent);
      // the timeout runs until the answer's headers arrive: after the whole body for an upload
      if (m.equals("GET") || m.equals("HEAD")) {
        b.timeout(config.readTimeout().plusSeconds(5));
      } else if (!m.equals("PUT")) {
        b.timeout(Duration.ofMinutes(2));
      }
      headers.forEach(b::header);
      if (auth && config.token() != null) {
        b.header("Authorization", "Bearer " + config.token());
      }
      b.method(m, body == null || m.equals("GET") || m.equals("HEAD") ? HttpRequest.BodyPublishers.noBody() : body.get());
      HttpResponse<InputStream> r;
      try {
        r = client.send(b.build(), HttpResponse.BodyHandlers.ofInputStream());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new InterruptedIOException("interrupted");
      }
      int s = r.statusCode();
      boolean redirect = s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
      String location = r.headers().firstValue("Location").orElse(null);
      if (!redirect || location == null || redirects == Redirects.NONE) {
        return r;
      }
      URI next = current.resolve(location);
      if (redirects == Redirects.RELATIVE && URI.create(location).getHost() != null) {
        return r;
      }
      r.body().close();
      // the token is for the hub only: never sent on to a storage host (huggingface_hub does the same)
      auth = auth && sameHost(next);
      if (s == 303) {
        m = "GET";
      }
      current = next;
    }
    throw new IOException("more than 10 redirects from " + uri);
  }

  /** A GET answer whose body is read straight from the socket (see {@link #stream}). */
  record Streamed(int status, URI uri, HttpURLConnection conn, InputStream body) implements AutoCloseable {
    Optional<String> header(String name) {
      return Optional.ofNullable(conn.getHeaderField(name));
    }

    @Override
    public void close() throws IOException {
      body.close();
    }
  }

  /**
   * A GET for a large body, with the same token, redirect and retry rules as {@link #send}, on the
   * JDK's blocking {@code HttpURLConnection}: the socket is read straight into the caller's buffer.
   * {@code HttpClient} hands every read over in a freshly allocated buffer through its selector
   * thread; for gigabytes that garbage grows the heap and costs about half the CPU of a download
   * (bench/hub-download.sh: 14.6 CPU s and 851 MB RSS for 2 GB, against 9.6 s in a 64 MB heap).
   * The read timeout is the socket's, so a stalled transfer fails and is resumed.
   */
  Streamed stream(URI uri, Map<String, String> headers, Target target) throws IOException {
    int attempt = 0;
    while (true) {
      try {
        Streamed r = streamFollowing(uri, headers);
        if (RETRIED.contains(r.status()) && attempt < config.maxRetries()) {
          r.close();
          backoff(attempt++, r.header("Retry-After").orElse(null));
          continue;
        }
        return r;
      } catch (ConnectException e) {
        if (attempt >= Math.min(2, config.maxRetries())) {
          throw networkFailure(uri, e, attempt + 1);
        }
      } catch (IOException e) {
        if (attempt >= config.maxRetries()) {
          throw networkFailure(uri, e, attempt + 1);
        }
      }
      backoff(attempt++, null);
    }
  }

  private Streamed streamFollowing(URI uri, Map<String, String> headers) throws IOException {
    URI current = uri;
    boolean auth = sameHost(uri);
    for (int hop = 0; hop <= 10; hop++) {
      HttpURLConnection c = (HttpURLConnection) current.toURL().openConnection();
      c.setInstanceFollowRedirects(false);
      c.setConnectTimeout(10_000);
      c.setReadTimeout((int) Math.max(1, config.readTimeout().toMillis()));
      c.setRequestProperty("User-Agent", userAgent);
      headers.forEach(c::setRequestProperty);
      if (auth && config.token() != null) {
        c.setRequestProperty("Authorization", "Bearer " + config.token());
      }
      int s = c.getResponseCode();
      String location = c.getHeaderField("Location");
      if ((s == 301 || s == 302 || s == 303 || s == 307 || s == 308) && location != null) {
        InputStream drop = c.getErrorStream() != null ? c.getErrorStream() : c.getInputStream();
        if (drop != null) {
          drop.close();
        }
        current = current.resolve(location);
        auth = auth && sameHost(current); // never to the storage host
        continue;
      }
      InputStream body = s >= 400 ? c.getErrorStream() : c.getInputStream();
      return new Streamed(s, current, c, body == null ? InputStream.nullInputStream() : body);
    }
    throw new IOException("more than 10 redirects from " + uri);
  }

  void backoff(int attempt, String retryAfter) throws IOException {
    long ms = config.retryWait().toMillis() << Math.min(attempt, 3);
    if (retryAfter != null) {
      try {
        ms = Math.max(ms, Math.min(60_000, Long.parseLong(retryAfter.strip()) * 1000));
      } catch (NumberFormatException ignored) {
        // a date form: keep our own backoff
      }
    }
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted");
    }
  }

  /** Sends a JSON body and returns the parsed JSON answer, or throws the hub's error. */
  JsonNode json(String method, URI uri, Object payload, Map<String, String> extraHeaders, Target target) throws IOException {
    Map<String, String> h = new LinkedHashMap<>();
    h.put("Accept", "application/json");
    byte[] bytes = payload == null ? null : JSON.writeValueAsBytes(payload);
    if (bytes != null) {
      h.put("Content-Type", "application/json");
    }
    h.putAll(extraHeaders);
    HttpResponse<InputStream> r = send(method, uri, h,
        bytes == null ? null : () -> HttpRequest.BodyPublishers.ofByteArray(bytes), Redirects.RELATIVE, target);
    return readJson(r, target);
  }

  JsonNode readJson(HttpResponse<InputStream> r, Target target) throws IOException {
    if (r.statusCode() >= 300) {
      throw failure(r, target);
    }
    try (InputStream in = r.body()) {
      byte[] all = in.readAllBytes();
      return all.length == 0 ? JSON.createObjectNode() : JSON.readTree(all);
    }
  }

  /**
   * The hub's error answer as one line, after {@code huggingface_hub.utils.hf_raise_for_status}:
   * {@code X-Error-Code} says RepoNotFound, RevisionNotFound, EntryNotFound or GatedRepo; a 401
   * with "Invalid credentials" is a bad token; any other 401 on a repository is "not found" (the
   * hub hides private repositories from those without access).
   */
  HubException failure(HttpResponse<InputStream> r, Target t) {
    return failure(r.statusCode(), r.uri(), r.request().method(), name -> r.headers().firstValue(name), r.body(), t);
  }

  HubException failure(Streamed r, Target t) {
    return failure(r.status(), r.uri(), "GET", r::header, r.body(), t);
  }

  private HubException failure(int s, URI uri, String method, Function<String, Optional<String>> header,
      InputStream errorBody, Target t) {
    String code = header.apply("X-Error-Code").orElse("");
    String msg = header.apply("X-Error-Message").orElse(null);
    try (InputStream in = errorBody) {
      byte[] body = in.readNBytes(4096);
      if (msg == null && body.length > 0) {
        try {
          JsonNode n = JSON.readTree(body);
          msg = n.path("error").asText(null);
        } catch (IOException notJson) {
          msg = new String(body, StandardCharsets.UTF_8);
        }
      }
    } catch (IOException ignored) {
      // keep what the headers said
    }
    msg = msg == null ? "" : msg.replaceAll("\\s+", " ").strip();
    if (config.token() != null) {
      msg = msg.replace(config.token(), "<token>");
    }
    String repo = t == null || t.repoId() == null ? null : t.describe();
    String page = t == null || t.repoId() == null ? config.endpoint().toString()
        : config.endpoint() + "/" + t.type().urlPrefix() + t.repoId();
    String how = "--token, HF_TOKEN or `hf auth login`";
    if (!sameHost(uri) && s < 500) {
      // the storage host (a presigned URL): its refusals say nothing about the token or the repository
      String what = method.equals("PUT") ? "upload" : "download";
      return new HubException(HubException.Kind.OTHER, "the storage host " + uri.getHost() + " refused the " + what + " of "
          + (t == null || t.file() == null ? uri.getPath() : t.file()) + " (" + s + (msg.isEmpty() ? "" : " " + msg)
          + "); run again to resume");
    }
    if (code.equals("RevisionNotFound")) {
      return new HubException(HubException.Kind.REVISION_NOT_FOUND, "revision '" + (t == null ? "?" : t.revision())
          + "' not found in " + repo + " on " + config.endpoint());
    }
    if (code.equals("EntryNotFound")) {
      return new HubException(HubException.Kind.ENTRY_NOT_FOUND, "file '" + (t == null ? "?" : t.file())
          + "' not found in " + repo + " at revision " + (t == null ? "?" : t.revision()));
    }
    if (code.equals("GatedRepo")) {
      return new HubException(HubException.Kind.GATED, repo + " is gated: accept its licence at " + page
          + " while logged in, then give medtune a token of that account (" + how + ")"
          + (config.token() == null ? "; no token is set" : "; the token from " + config.tokenSource()
              + " has no access yet"));
    }
    if (s == 401 && msg.equals(BAD_CREDENTIALS)) {
      return new HubException(HubException.Kind.BAD_TOKEN, "the hub rejected the token from " + config.tokenSource()
          + " (401 invalid credentials): make a new one at " + config.endpoint() + "/settings/tokens");
    }
    if (repo != null && (code.equals("RepoNotFound") || s == 401 || s == 404)) {
      return new HubException(HubException.Kind.REPO_NOT_FOUND, repo + " not found on " + config.endpoint()
          + (config.token() == null ? " (if it is private, set a token: " + how + ")"
              : " (or the token from " + config.tokenSource() + " cannot see it)"));
    }
    if (s == 403) {
      return new HubException(HubException.Kind.FORBIDDEN, "the hub refused " + (repo == null ? "the request" : "access to " + repo)
          + " (403" + (msg.isEmpty() ? "" : ": " + msg) + ")" + (config.token() == null ? "; set a token (" + how + ")"
              : "; the token from " + config.tokenSource() + " lacks the permission (pushing needs a write token)"));
    }
    if (s >= 500 || s == 429) {
      return new HubException(HubException.Kind.SERVER, "the hub answered " + s + (msg.isEmpty() ? "" : " (" + msg + ")")
          + " for " + method + " " + uri.getPath() + " after " + (config.maxRetries() + 1) + " tries");
    }
    return new HubException(HubException.Kind.OTHER, method + " " + uri.getPath() + " failed: "
        + s + (msg.isEmpty() ? "" : " " + msg));
  }
}
