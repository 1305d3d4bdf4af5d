package dev.medtune.model.tokenizer;

import java.io.IOException;
import java.net.Proxy;
import java.net.ProxySelector;
import java.net.SocketAddress;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

/**
 * Run in a fresh JVM by {@link OfflineLoadTest}: loads a tokenizer with every HTTP(S) connection
 * recorded and refused (a {@link ProxySelector} is consulted before any URL connection), then
 * prints the attempts, the ids, and the native library files DJL extracted.
 * Argument 1: {@code medtune} (through {@link LlamaTokenizer}) or {@code djl} (DJL directly, no
 * medtune settings: the control). Argument 2: a tokenizer.json.
 */
public final class OfflineLoadProbe {
  static final List<String> attempts = new ArrayList<>();

  public static void main(String[] args) throws Exception {
    ProxySelector.setDefault(new ProxySelector() {
      @Override
      public List<Proxy> select(URI uri) {
        synchronized (attempts) {
          attempts.add(uri.toString());
        }
        throw new IllegalStateException("network use refused by OfflineLoadProbe: " + uri);
      }

      @Override
      public void connectFailed(URI uri, SocketAddress sa, IOException ioe) {}
    });
    Path file = Path.of(args[1]);
    String ids;
    try {
      if (args[0].equals("medtune")) {
        try (LlamaTokenizer t = LlamaTokenizer.load(file)) {
          ids = Arrays.toString(t.encode("Hello world", false));
        }
      } else {
        try (var t = ai.djl.huggingface.tokenizers.HuggingFaceTokenizer.newInstance(file)) {
          ids = Arrays.toString(t.encode("Hello world", false, false).getIds());
        }
      }
    } catch (Throwable e) {
      ids = "FAILED " + e;
      for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
        ids += " <- " + c;
      }
    }
    System.out.println("attempts=" + attempts);
    System.out.println("ids=" + ids);
    Path cache = Path.of(System.getenv("DJL_CACHE_DIR"));
    try (Stream<Path> s = Files.exists(cache) ? Files.walk(cache) : Stream.empty()) {
      s.filter(Files::isRegularFile).forEach(p -> System.out.println("cached=" + cache.relativize(p)));
    }
  }
}
