package dev.medtune.hub;

import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Where the hub is, who we are to it and where its cache lives. The environment variables and
 * their defaults are those of the Python {@code huggingface_hub} client ({@code constants.py}), so
 * both read and write the same cache with the same token.
 *
 * @param endpoint the hub ({@code HF_ENDPOINT}, default {@code https://huggingface.co})
 * @param token the access token, or null to call anonymously; never printed ({@link #toString()})
 * @param tokenSource where the token came from (an option, a variable or a file), for messages
 * @param cacheDir the hub cache ({@code HF_HUB_CACHE}, else {@code HF_HOME/hub})
 * @param offline {@code HF_HUB_OFFLINE}: resolve from the cache only
 * @param readTimeout how long a transfer may go without a byte before it is retried
 *     ({@code HF_HUB_DOWNLOAD_TIMEOUT}, default 10 s as in the Python client)
 * @param retryWait the first wait of the exponential backoff (doubled up to 8 times that)
 * @param maxRetries how many times a request is retried on 5xx or a dropped connection
 * @param workers how many files download at once (the Python client's default is 8)
 */
public record HubConfig(
    URI endpoint,
    String token,
    String tokenSource,
    Path cacheDir,
    boolean offline,
    Duration readTimeout,
    Duration retryWait,
    int maxRetries,
    int workers) {

  public static final String DEFAULT_ENDPOINT = "https://huggingface.co";

  public HubConfig {
    String e = endpoint.toString();
    if (e.endsWith("/")) {
      endpoint = URI.create(e.substring(0, e.length() - 1));
    }
    if (token != null && token.isBlank()) {
      token = null;
    }
  }

  /** Reads the configuration from the process environment (see {@link #from}). */
  public static HubConfig fromEnvironment(String tokenOption) {
    return from(System.getenv(), tokenOption);
  }

  /**
   * Reads the configuration from {@code env}: token from {@code tokenOption}, else {@code
   * HF_TOKEN}, else the token file ({@code HF_TOKEN_PATH}, else {@code HF_HOME/token}).
   */
  public static HubConfig from(Map<String, String> env, String tokenOption) {
    Path home = Path.of(System.getProperty("user.home"));
    Path hfHome = env.containsKey("HF_HOME") ? Path.of(expand(env.get("HF_HOME"), home))
        : env.containsKey("XDG_CACHE_HOME") ? Path.of(expand(env.get("XDG_CACHE_HOME"), home), "huggingface")
        : home.resolve(".cache").resolve("huggingface");
    Path cache = env.containsKey("HF_HUB_CACHE") ? Path.of(expand(env.get("HF_HUB_CACHE"), home))
        : env.containsKey("HUGGINGFACE_HUB_CACHE") ? Path.of(expand(env.get("HUGGINGFACE_HUB_CACHE"), home))
        : hfHome.resolve("hub");
    Path tokenPath = env.containsKey("HF_TOKEN_PATH") ? Path.of(expand(env.get("HF_TOKEN_PATH"), home))
        : hfHome.resolve("token");
    String token = null;
    String source = null;
    if (tokenOption != null && !tokenOption.isBlank()) {
      token = tokenOption.strip();
      source = "--token";
    } else if (env.get("HF_TOKEN") != null && !env.get("HF_TOKEN").isBlank()) {
      token = env.get("HF_TOKEN").strip();
      source = "HF_TOKEN";
    } else if (Files.isRegularFile(tokenPath)) {
      try {
        String t = Files.readString(tokenPath, StandardCharsets.UTF_8).strip();
        if (!t.isEmpty()) {
          token = t;
          source = "the token file " + tokenPath;
        }
      } catch (IOException e) {
        // unreadable token file: call anonymously, as the Python client does
      }
    }
    String endpoint = Optional.ofNullable(env.get("HF_ENDPOINT")).filter(s -> !s.isBlank())
        .orElse(DEFAULT_ENDPOINT);
    Duration timeout = Duration.ofSeconds(10);
    String t = env.get("HF_HUB_DOWNLOAD_TIMEOUT");
    if (t != null && !t.isBlank()) {
      try {
        timeout = Duration.ofMillis((long) (Double.parseDouble(t.strip()) * 1000));
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("HF_HUB_DOWNLOAD_TIMEOUT='" + t + "' is not a number of seconds");
      }
    }
    return new HubConfig(URI.create(endpoint), token, source, cache, truthy(env.get("HF_HUB_OFFLINE")),
        timeout, Duration.ofSeconds(1), 5, 8);
  }

  /** The same configuration with another endpoint (tests point it at a local server). */
  public HubConfig withEndpoint(URI uri) {
    return new HubConfig(uri, token, tokenSource, cacheDir, offline, readTimeout, retryWait, maxRetries, workers);
  }

  public HubConfig withToken(String newToken, String source) {
    return new HubConfig(endpoint, newToken, source, cacheDir, offline, readTimeout, retryWait, maxRetries, workers);
  }

  public HubConfig withOffline(boolean off) {
    return new HubConfig(endpoint, token, tokenSource, cacheDir, off, readTimeout, retryWait, maxRetries, workers);
  }

  public HubConfig withTimeouts(Duration read, Duration firstRetryWait) {
    return new HubConfig(endpoint, token, tokenSource, cacheDir, offline, read, firstRetryWait, maxRetries, workers);
  }

  // the Python client's _is_true: "1", "ON", "YES", "TRUE" in any case
  static boolean truthy(String v) {
    if (v == null) {
      return false;
    }
    String u = v.strip().toUpperCase(Locale.ROOT);
    return u.equals("1") || u.equals("ON") || u.equals("YES") || u.equals("TRUE");
  }

  private static String expand(String p, Path home) {
    return p.startsWith("~/") ? home.resolve(p.substring(2)).toString() : p;
  }

  /** Never shows the token, only whether there is one and where it came from. */
  @Override
  public String toString() {
    return "HubConfig[endpoint=" + endpoint + ", token=" + (token == null ? "none" : "<set by " + tokenSource + ">")
        + ", cacheDir=" + cacheDir + ", offline=" + offline + "]";
  }
}
