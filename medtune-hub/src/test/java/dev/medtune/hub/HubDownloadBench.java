package dev.medtune.hub;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;

/**
 * Benchmark (not a test): {@code medtune pull} of one large LFS file from the local stand-in hub
 * against {@code curl -L} of the same file from the same server in the same run; reports MB/s of
 * each, the ratio, and the peak resident memory of both processes ({@code /usr/bin/time}), and
 * appends the table to {@code bench/RESULTS.md}. Run through {@code bench/hub-download.sh}.
 *
 * <p>Arguments: {@code <repo root> <medtune jar> <size MB> <rounds>}.
 */
public final class HubDownloadBench {
  private HubDownloadBench() {}

  record Result(String who, double seconds, long maxRssKb, double cpuSeconds) {}

  public static void main(String[] args) throws Exception {
    Path root = Path.of(args[0]);
    Path jar = Path.of(args[1]);
    long mb = Long.parseLong(args[2]);
    int rounds = Integer.parseInt(args[3]);
    Path work = Files.createTempDirectory(Path.of("/tmp"), "medtune-hub-bench");
    try {
      Path file = work.resolve("model.safetensors");
      write(file, mb << 20);
      try (FakeHub hub = new FakeHub()) {
        FakeHub.Entry e = FakeHub.diskEntry(file);
        hub.commit(RepoType.MODEL, "bench/big", "main", FakeHub.files("model.safetensors", e));
        String url = hub.endpoint() + "/bench/big/resolve/main/model.safetensors";
        List<Result> curl = new ArrayList<>();
        List<Result> medtune = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
          Path out = work.resolve("curl.bin");
          curl.add(timed("curl", List.of("curl", "-sSfL", "-o", out.toString(), url), Map.of()));
          check(out, e.size());
          Files.delete(out);
          Path cache = work.resolve("cache");
          List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
              "--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector", "-XX:+UseParallelGC"));
          String extra = System.getenv("MEDTUNE_JAVA_OPTS"); // the launcher's variable, e.g. for a profiler
          if (extra != null && !extra.isBlank()) {
            cmd.addAll(List.of(extra.strip().split("\\s+")));
          }
          cmd.addAll(List.of("-jar", jar.toString(), "pull", "bench/big"));
          medtune.add(timed("medtune", cmd,
              Map.of("HF_ENDPOINT", hub.endpoint(), "HF_HUB_CACHE", cache.toString(), "HF_TOKEN", "")));
          check(cache.resolve("models--bench--big/blobs").resolve(e.sha256()), e.size());
          delete(cache);
        }
        // one more medtune round in a 64 MB heap: it can only pass if the file is streamed to disk
        List<String> small = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
            "--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector", "-XX:+UseParallelGC",
            "-Xmx64m", "-jar", jar.toString(), "pull", "bench/big"));
        Path cache = work.resolve("cache");
        Result smallHeap = timed("medtune -Xmx64m", small,
            Map.of("HF_ENDPOINT", hub.endpoint(), "HF_HUB_CACHE", cache.toString(), "HF_TOKEN", ""));
        check(cache.resolve("models--bench--big/blobs").resolve(e.sha256()), e.size());
        delete(cache);
        report(root, mb, curl, medtune, smallHeap);
      }
    } finally {
      delete(work);
    }
  }

  /** Pseudo-random bytes (a fresh block every 4 MB), so nothing compresses or dedupes. */
  static void write(Path file, long size) throws IOException {
    byte[] block = new byte[4 << 20];
    Random rnd = new Random(42);
    try (OutputStream out = Files.newOutputStream(file, StandardOpenOption.CREATE_NEW)) {
      for (long done = 0; done < size; done += block.length) {
        rnd.nextBytes(block);
        out.write(block, 0, (int) Math.min(block.length, size - done));
      }
    }
  }

  static Result timed(String who, List<String> cmd, Map<String, String> env) throws Exception {
    Path rss = Files.createTempFile("rss", ".txt");
    List<String> full = new ArrayList<>(List.of("/usr/bin/time", "-f", "%M %U %S %w %c", "-o", rss.toString()));
    full.addAll(cmd);
    ProcessBuilder pb = new ProcessBuilder(full).redirectOutput(ProcessBuilder.Redirect.DISCARD)
        .redirectError(ProcessBuilder.Redirect.INHERIT);
    pb.environment().putAll(env);
    pb.environment().remove("HF_HUB_OFFLINE");
    long t0 = System.nanoTime();
    Process p = pb.start();
    int code = p.waitFor();
    double s = (System.nanoTime() - t0) / 1e9;
    if (code != 0) {
      throw new IllegalStateException(who + " failed with exit code " + code);
    }
    System.err.println(who + ": peak RSS KB, user s, sys s, waits, context switches: " + Files.readString(rss).strip());
    String[] f = Files.readString(rss).strip().lines().reduce((a, b) -> b).orElse("0 0 0").strip().split("\\s+");
    Files.delete(rss);
    return new Result(who, s, Long.parseLong(f[0]), Double.parseDouble(f[1]) + Double.parseDouble(f[2]));
  }

  static void check(Path p, long size) throws IOException {
    if (Files.size(p) != size) {
      throw new IllegalStateException(p + " has " + Files.size(p) + " bytes, expected " + size);
    }
  }

  static void report(Path root, long mb, List<Result> curl, List<Result> medtune, Result smallHeap) throws Exception {
    Result bc = curl.stream().min(Comparator.comparingDouble(Result::seconds)).orElseThrow();
    Result bm = medtune.stream().min(Comparator.comparingDouble(Result::seconds)).orElseThrow();
    double curlMbs = mb / bc.seconds();
    double mtMbs = mb / bm.seconds();
    String commit = git(root, "rev-parse", "--short", "HEAD");
    String cpu = cpu();
    StringBuilder b = new StringBuilder();
    b.append("\n## hub-download: ").append(ZonedDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME))
        .append(", commit ").append(commit).append('\n');
    b.append("\nMachine: ").append(cpu).append(", ").append(Runtime.getRuntime().availableProcessors())
        .append(" cores (shared). One ").append(mb).append(" MB LFS file from the local stand-in hub (FakeHub, JDK HttpServer,")
        .append(" streamed from disk, 302 to the storage path), written to disk by each client;")
        .append(" best of ").append(curl.size()).append(" alternating rounds. medtune = `medtune pull` (JVM start, API,")
        .append(" HEAD, GET, sha256 check, cache layout); baseline = `curl -sSfL -o FILE` of the resolve URL.\n\n");
    b.append("| client | best s | MB/s | CPU s (user+sys) | peak RSS | all rounds (s) |\n| --- | --- | --- | --- | --- | --- |\n");
    b.append(row(bc, mb, curl)).append(row(bm, mb, medtune));
    b.append(row(smallHeap, mb, List.of(smallHeap)));
    String load = String.join(" ", List.of(Files.readString(Path.of("/proc/loadavg")).strip().split(" ")).subList(0, 3));
    b.append(String.format(Locale.ROOT, "\nmedtune / curl throughput: **%.2f** (target >= 0.80); CPU seconds medtune / curl:"
        + " %.1f. Peak RSS %d MB with the default heap and %d MB with -Xmx64m, for a %d MB file: streamed, never held"
        + " in memory."
        + " Load average during the run: %s.%n", mtMbs / curlMbs, bm.cpuSeconds() / Math.max(0.01, bc.cpuSeconds()),
        bm.maxRssKb() / 1024, smallHeap.maxRssKb() / 1024, mb, load));
    System.out.print(b);
    Files.writeString(root.resolve("bench/RESULTS.md"), b.toString(), StandardCharsets.UTF_8, StandardOpenOption.APPEND);
  }

  private static String row(Result best, long mb, List<Result> all) {
    StringBuilder rs = new StringBuilder();
    for (Result r : all) {
      rs.append(rs.isEmpty() ? "" : ", ").append(String.format(Locale.ROOT, "%.2f", r.seconds()));
    }
    return String.format(Locale.ROOT, "| %s | %.2f | %.0f | %.2f | %d MB | %s |%n", best.who(), best.seconds(),
        mb / best.seconds(), best.cpuSeconds(), best.maxRssKb() / 1024, rs);
  }

  private static String git(Path root, String... args) {
    try {
      List<String> cmd = new ArrayList<>(List.of("git", "-C", root.toString()));
      cmd.addAll(List.of(args));
      Process p = new ProcessBuilder(cmd).start();
      String s = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
      return p.waitFor() == 0 ? s : "unknown";
    } catch (Exception e) {
      return "unknown";
    }
  }

  private static String cpu() {
    try (Stream<String> lines = Files.lines(Path.of("/proc/cpuinfo"))) {
      return lines.filter(l -> l.startsWith("model name")).findFirst().map(l -> l.replaceAll(".*:\\s*", ""))
          .orElse(System.getProperty("os.arch"));
    } catch (IOException e) {
      return System.getProperty("os.arch");
    }
  }

  static void delete(Path p) throws IOException {
    if (!Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      for (Path x : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(x);
      }
    }
  }
}
