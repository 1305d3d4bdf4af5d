package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.Json;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MetricsLogTest {
  @TempDir Path tmp;

  @Test
  void writesOneObjectPerLineWithTheIssuesKeys() throws Exception {
    Path f = tmp.resolve("metrics.jsonl");
    try (var log = MetricsLog.create(f)) {
      log.logStep(1, 3.54, 0.0, 2.5, 1024, 800.5);
      log.logStep(2, 3.1, 4e-5, 1.9, 2048, 810);
      log.logEval(2, 3.3);
    }
    List<String> lines = Files.readAllLines(f);
    assertEquals(3, lines.size());
    var first = Json.MAPPER.readTree(lines.get(0));
    assertEquals(List.of("step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s"),
        iterable(first));
    assertEquals(3.54, first.get("loss").asDouble());
    assertEquals(List.of("step", "eval_loss"), iterable(Json.MAPPER.readTree(lines.get(2))));
    assertEquals(List.of(new MetricsLog.Point(1, 3.54), new MetricsLog.Point(2, 3.1)), MetricsLog.trainingLoss(f));
    assertEquals(List.of(new MetricsLog.Point(2, 3.3)), MetricsLog.evalLoss(f));
  }

  @Test
  void resumeDropsStepsAfterTheCheckpointAndAHalfWrittenLine() throws Exception {
    Path f = tmp.resolve("metrics.jsonl");
    try (var log = MetricsLog.create(f)) {
      for (int s = 1; s <= 7; s++) {
        log.logStep(s, 4 - s * 0.1, 1e-4, 1, 100, 10);
      }
      log.logEval(5, 3.0);
    }
    Files.writeString(f, "{\"step\": 8, \"lo", StandardOpenOption.APPEND); // killed mid-write
    try (var log = MetricsLog.resume(f, 5)) {
      log.logStep(6, 3.45, 1e-4, 1, 100, 10);
    }
    var train = MetricsLog.trainingLoss(f);
    assertEquals(List.of(1L, 2L, 3L, 4L, 5L, 6L), train.stream().map(MetricsLog.Point::step).toList());
    assertEquals(3.45, train.get(5).value());
    assertEquals(1, MetricsLog.evalLoss(f).size());
    assertTrue(Files.readString(f).endsWith("\n"));
  }

  private static List<String> iterable(com.fasterxml.jackson.databind.JsonNode n) {
    List<String> out = new java.util.ArrayList<>();
    n.fieldNames().forEachRemaining(out::add);
    return out;
  }
}
