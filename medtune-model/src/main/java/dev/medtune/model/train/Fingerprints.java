package dev.medtune.model.train;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * What identifies the inputs of a run: SHA-256 of the data file and of {@code config.json} in
 * full, and of each weight file a fingerprint of its size, first MiB and last MiB (hashing 16 GB
 * of weights in full would take a minute on every start and every resume; the header at the front
 * names every tensor and offset, and the ends change with any re-export, so a different file
 * almost surely differs there - it is a fingerprint, not a proof, and training.json says so).
 */
public final class Fingerprints {
  static final int SAMPLE = 1 << 20;

  private Fingerprints() {}

  /** SHA-256 of a whole file, hex. */
  public static String sha256(Path file) {
    MessageDigest md = sha();
    try (InputStream in = Files.newInputStream(file)) {
      byte[] buf = new byte[1 << 16];
      int n;
      while ((n = in.read(buf)) > 0) {
        md.update(buf, 0, n);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
    }
    return HexFormat.of().formatHex(md.digest());
  }

  /**
   * SHA-256 over the file's size (8 bytes, big-endian), its first MiB and its last MiB (the whole
   * file once when it is at most 2 MiB), hex.
   */
  public static String sha256FirstLastMib(Path file) {
    MessageDigest md = sha();
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      md.update(ByteBuffer.allocate(8).putLong(size).flip());
      if (size <= 2L * SAMPLE) {
        update(md, ch, 0, size);
      } else {
        update(md, ch, 0, SAMPLE);
        update(md, ch, size - SAMPLE, SAMPLE);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
    }
    return HexFormat.of().formatHex(md.digest());
  }

  /**
   * The base model's identity: its folder, {@code config.json}'s SHA-256 and each
   * {@code *.safetensors} file's size and {@link #sha256FirstLastMib}, sorted by name; and one
   * {@code fingerprint} over all of that, which resume compares.
   */
  public static Map<String, Object> model(Path modelDir) {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("path", modelDir.toAbsolutePath().normalize().toString());
    Path config = modelDir.resolve("config.json");
    String configSha = sha256(config);
    m.put("config_sha256", configSha);
    List<Map<String, Object>> weights = new ArrayList<>();
    StringBuilder all = new StringBuilder("config.json ").append(configSha).append('\n');
    try (Stream<Path> s = Files.list(modelDir)) {
      for (Path p : s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList()) {
        Map<String, Object> w = new LinkedHashMap<>();
        String sha = sha256FirstLastMib(p);
        long size = Files.size(p);
        w.put("file", p.getFileName().toString());
        w.put("bytes", size);
        w.put("sha256_size_first_last_mib", sha);
        weights.add(w);
        all.append(p.getFileName()).append(' ').append(size).append(' ').append(sha).append('\n');
      }
    } catch (IOException e) {
      throw new UncheckedIOException(modelDir + ": cannot list the model folder: " + e.getMessage(), e);
    }
    m.put("weights", weights);
    m.put("fingerprint", HexFormat.of().formatHex(sha().digest(all.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8))));
    return m;
  }

  private static void update(MessageDigest md, FileChannel ch, long from, long n) throws IOException {
    ByteBuffer buf = ByteBuffer.allocate((int) n);
    while (buf.hasRemaining()) {
      if (ch.read(buf, from + buf.position()) < 0) {
        throw new IOException("file shorter than its size");
      }
    }
    md.update(buf.flip());
  }

  private static MessageDigest sha() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
