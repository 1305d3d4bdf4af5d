package dev.medtune.model.train;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.medtune.model.Json;
import java.io.BufferedWriter;
import java.io.Closeable;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code OUT/metrics.jsonl}: one JSON object per line, flushed as written. Training lines have
 * {@code step, loss, lr, grad_norm, tokens, tokens_per_s}; eval lines {@code step, eval_loss}.
 * On resume the lines after the checkpoint's step are dropped first, so the file reads as one
 * uninterrupted run.
 */
public final class MetricsLog implements Closeable {
  /** A point of a curve. */
  public record Point(long step, double value) {}

  private final Path file;
  private final BufferedWriter out;

  private MetricsLog(Path file, BufferedWriter out) {
    this.file = file;
    this.out = out;
  }

  /** Starts a new log (an existing file is replaced). */
  public static MetricsLog create(Path file) {
    return open(file, List.of());
  }

  /** Continues a log after resuming from {@code step}: lines of later steps are removed. */
  public static MetricsLog resume(Path file, long step) {
    List<String> keep = new ArrayList<>();
    if (Files.isRegularFile(file)) {
      for (JsonNode n : readLines(file)) {
        if (n.path("step").asLong() <= step) {
          keep.add(n.toString());
        }
      }
    }
    return open(file, keep);
  }

  private static MetricsLog open(Path file, List<String> lines) {
    Json.writeAtomically(file, lines.isEmpty() ? new byte[0]
        : (String.join("\n", lines) + "\n").getBytes(StandardCharsets.UTF_8));
    try {
      return new MetricsLog(file, Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.APPEND));
    } catch (IOException e) {
      throw new UncheckedIOException(file + ": cannot open: " + e.getMessage(), e);
    }
  }

  /**
   * One optimizer step's line.
   *
   * @param step the optimizer step, from 1
   * @param loss the step's mean loss over its counted tokens
   * @param lr the learning rate the step used
   * @param gradNorm the global gradient norm before clipping
   * @param tokens input tokens (not padding) of the step ({@link StepBatch#realTokens()})
   * @param tokensPerS those tokens over the step's wall time
   */
  public void logStep(long step, double loss, double lr, double gradNorm, long tokens, double tokensPerS) {
    ObjectNode n = Json.MAPPER.createObjectNode();
    n.put("step", step);
    n.put("loss", loss);
    n.put("lr", lr);
    n.put("grad_norm", gradNorm);
    n.put("tokens", tokens);
    n.put("tokens_per_s", tokensPerS);
    write(n);
  }

  /** One evaluation's line. */
  public void logEval(long step, double evalLoss) {
    ObjectNode n = Json.MAPPER.createObjectNode();
    n.put("step", step);
    n.put("eval_loss", evalLoss);
    write(n);
  }

  private void write(ObjectNode n) {
    try {
      out.write(n.toString()); // compact: one object per line
      out.write('\n');
      out.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(file + ": cannot write: " + e.getMessage(), e);
    }
  }

  @Override
  public void close() {
    try {
      out.close();
    } catch (IOException e) {
      throw new UncheckedIOException(file + ": cannot close: " + e.getMessage(), e);
    }
  }

  /** The training-loss curve of a metrics file. */
  public static List<Point> trainingLoss(Path file) {
    return curve(file, "loss");
  }

  /** The eval-loss curve of a metrics file. */
  public static List<Point> evalLoss(Path file) {
    return curve(file, "eval_loss");
  }

  private static List<Point> curve(Path file, String key) {
    List<Point> out = new ArrayList<>();
    for (JsonNode n : readLines(file)) {
      if (n.has(key) && n.get(key).isNumber()) {
        out.add(new Point(n.path("step").asLong(), n.get(key).asDouble()));
      }
    }
    return out;
  }

  private static List<JsonNode> readLines(Path file) {
    List<JsonNode> out = new ArrayList<>();
    List<String> lines;
    try {
      lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(file + ": cannot read: " + e.getMessage(), e);
    }
    for (int i = 0; i < lines.size(); i++) {
      if (lines.get(i).isBlank()) {
        continue;
      }
      try {
        out.add(Json.MAPPER.readTree(lines.get(i)));
      } catch (JsonProcessingException e) {
        if (i == lines.size() - 1) {
          break; // a line cut short by a kill: the step it describes is redone after resume
        }
        throw new IllegalArgumentException(file + ":" + (i + 1) + ": not valid JSON: " + e.getOriginalMessage());
      }
    }
    return out;
  }
}
