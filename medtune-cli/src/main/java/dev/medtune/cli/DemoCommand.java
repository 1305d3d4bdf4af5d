package dev.medtune.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.medtune.data.Prepare;
import dev.medtune.data.PrepareOptions;
import dev.medtune.data.PrepareReport;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.ModelPresets;
import dev.medtune.model.RandomInit;
import dev.medtune.model.lora.LoraConfig;
import dev.medtune.model.safetensors.SafetensorsFile;
import dev.medtune.model.safetensors.SafetensorsWriter;
import dev.medtune.model.safetensors.TensorInfo;
import dev.medtune.model.lora.LoraTarget;
import dev.medtune.model.train.AdamW;
import dev.medtune.model.train.LearningRateSchedule;
import dev.medtune.model.train.LossOn;
import dev.medtune.model.train.SftConfig;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code medtune demo}: the main job end to end on built-in data, with nothing downloaded -
 * prepare on the MedMCQA sample shipped in the jar, a tiny random model, LoRA training on the CPU
 * until the loss has clearly fallen, then answers streamed for three training questions and one
 * held-out question.
 */
@Command(
    name = "demo",
    mixinStandardHelpOptions = true,
    description = {
      "Run medtune's main job on built-in data in a few minutes on a laptop CPU: prepare the MedMCQA"
          + " sample shipped with medtune, init-model --preset tiny, train a LoRA adapter (the loss"
          + " falls), stream answers to three training questions and one held-out question.",
      "Everything goes to the work folder (default: medtune-demo); see its run/loss.png."
    })
final class DemoCommand implements Callable<Integer> {

  /** The demo's training settings: the tiny model learns fast with a large rate and short rows. */
  static final int STEPS = 160;
  static final double LR = 5e-3;
  /** Examples prepare keeps (the shortest explanations): few enough to be learnt in a minute. */
  static final int EXAMPLES = 20;
  /**
   * The tiny model's final RMSNorm weight. A random model initialised at std 0.02 with width 64
   * has logits within about +-1.3 whatever LoRA does (the final norm fixes the hidden state's
   * length, the frozen lm_head rows are short), so its loss cannot fall far below ln(vocab); a
   * norm weight of 10 lets the same frozen head express a real next-token distribution.
   */
  static final float FINAL_NORM = 10f;
  static final int MAX_SEQ_LEN = 256;
  static final int BATCH = 4;
  static final int LORA_R = 16;
  static final double LORA_ALPHA = 32;
  /** Marks a work folder as the demo's, so a second run may replace it. */
  static final String MARKER = "medtune-demo.txt";

  @Option(names = "--work", defaultValue = "medtune-demo", paramLabel = "DIR",
      description = "Work folder (default: ${DEFAULT-VALUE}); replaced when an earlier demo made it.")
  Path work;

  @Option(names = "--steps", defaultValue = "" + STEPS, paramLabel = "N",
      description = "Optimizer steps (default: ${DEFAULT-VALUE}).")
  int steps;

  @Option(names = "--max-new-tokens", defaultValue = "48", paramLabel = "N",
      description = "Tokens per answer (default: ${DEFAULT-VALUE}).")
  int maxNewTokens;

  @Option(names = "--device", defaultValue = "cpu", description = "cpu, cuda or auto (default: ${DEFAULT-VALUE}).")
  String device;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public Integer call() throws IOException {
    long t0 = System.nanoTime();
    prepareWork();
    var err = System.err;

    // 1. prepare: the MedMCQA sample shipped with medtune
    Path csv = work.resolve("medmcqa-train-sample.csv");
    try (InputStream in = DemoCommand.class.getResourceAsStream("/demo/medmcqa-train-sample.csv")) {
      if (in == null) {
        throw new MedtuneFailure("the jar has no /demo/medmcqa-train-sample.csv; rebuild medtune");
      }
      Files.copy(in, csv, StandardCopyOption.REPLACE_EXISTING);
    }
    Path data = work.resolve("data");
    err.println("== 1/4 prepare: " + csv + " (100 real MedMCQA rows; the " + EXAMPLES + " with the shortest explanations kept) -> " + data);
    PrepareReport report = Prepare.run(PrepareOptions.defaults(csv, data)
        .withSelection(EXAMPLES, PrepareOptions.Order.SHORTEST, 3407).withValFraction(0.1));
    err.printf("   %d training examples, %d held out, %d rejected (see %s)%n", report.train(), report.val(),
        report.rejected(), data.resolve("report.json"));

    // 2. a tiny random Llama
    Path model = work.resolve("model");
    err.println("== 2/4 init-model --preset tiny -> " + model);
    RandomInit.write(ModelPresets.get("tiny"), model, 0, null, false, s -> {});
    setFinalNorm(model.resolve(Checkpoint.SINGLE_FILE), FINAL_NORM);
    err.printf("   final RMSNorm weight set to %.0f (a random width-64 model otherwise caps its logits near +-1.3)%n",
        FINAL_NORM);

    // 3. train
    Path run = work.resolve("run");
    err.printf("== 3/4 train: %d steps of %d examples, lr %.0e, LoRA r %d on the seven projections%n",
        steps, BATCH, LR, LORA_R);
    SftConfig config = new SftConfig(new LoraConfig(LORA_R, LORA_ALPHA, 0, List.of(LoraTarget.values()), false), LR,
        AdamW.Hyperparameters.recipe(), LearningRateSchedule.Kind.LINEAR, 5, steps, 0, BATCH, 1, MAX_SEQ_LEN, false,
        LossOn.COMPLETION, 1.0, 3407, true, 0, Math.max(1, steps / 4));
    Path val = data.resolve("val.jsonl");
    boolean hasVal = Files.isRegularFile(val) && Files.size(val) > 0;
    AtomicBoolean stop = new AtomicBoolean();
    TrainCommand.Training.Outcome o;
    try (TrainCommand.Signals s = TrainCommand.Signals.onInterrupt(stop, err)) {
      o = TrainCommand.Training.run(model, data.resolve("train.jsonl"), hasVal ? val : null, run, config, false,
          true, device, stop, err);
    }
    List<JsonNode> lines = metrics(run.resolve("metrics.jsonl"));
    double first = lines.get(0).get("loss").asDouble();
    double last = o.result().lastLoss();
    err.printf("   loss %.3f at step 1 -> %.3f at step %d%n", first, last, o.result().steps());

    // 4. answers, streamed
    err.println("== 4/4 answers with the adapter (greedy, " + maxNewTokens + " tokens at most)");
    List<JsonNode> train = jsonl(data.resolve("train.jsonl"));
    List<JsonNode> questions = new ArrayList<>(train.subList(0, Math.min(3, train.size())));
    List<String> kinds = new ArrayList<>(List.of("training question", "training question", "training question"));
    if (hasVal) {
      questions.add(jsonl(val).get(0));
      kinds.add("held-out question (never trained on)");
    }
    for (int i = 0; i < questions.size(); i++) {
      JsonNode q = questions.get(i);
      System.out.println();
      System.out.println("### " + kinds.get(i) + ": " + q.get("question").asText());
      System.out.println("### reference: " + q.get("completion").asText().strip());
      System.out.print("### medtune:   ");
      System.out.flush();
      int rc = new CommandLine(new GenerateCommand())
          .setExecutionExceptionHandler(Failures::handle)
          .execute("--model", model.toString(), "--adapter", o.adapterDir().toString(), "--prompt",
              q.get("prompt").asText(), "--max-new-tokens", String.valueOf(maxNewTokens), "--device", device);
      if (rc != 0) {
        return rc;
      }
    }
    System.out.println();
    err.printf("demo: done in %.0f s. Loss curve: %s; adapter: %s; everything in %s%n",
        (System.nanoTime() - t0) / 1e9, run.resolve("loss.png"), o.adapterDir(), work);
    return 0;
  }

  /** Rewrites {@code file} with {@code model.norm.weight} filled with {@code value}. */
  static void setFinalNorm(Path file, float value) throws IOException {
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    try (SafetensorsFile f = SafetensorsFile.open(file)) {
      SafetensorsWriter w = new SafetensorsWriter().metadata("medtune_demo", "model.norm.weight = " + value);
      for (TensorInfo t : f.tensors().values()) {
        if (t.name().equals("model.norm.weight")) {
          w.add(t.name(), t.dtype(), t.shape(), (first, dst, n) -> java.util.Arrays.fill(dst, 0, n, value));
        } else {
          w.add(t.name(), t.dtype(), t.shape(), t.data());
        }
      }
      w.write(tmp);
    }
    Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
  }

  private void prepareWork() throws IOException {
    if (Files.exists(work)) {
      boolean ours = Files.isRegularFile(work.resolve(MARKER));
      boolean empty;
      try (var s = Files.list(work)) {
        empty = s.findAny().isEmpty();
      }
      if (!ours && !empty) {
        throw new MedtuneFailure(work + " exists and was not made by medtune demo; choose another --work folder");
      }
      TrainCommand.Training.deleteTree(work);
    }
    Files.createDirectories(work);
    Files.writeString(work.resolve(MARKER), "made by medtune demo; a later demo replaces this folder\n");
  }

  private static List<JsonNode> jsonl(Path f) {
    ObjectMapper m = new ObjectMapper();
    List<JsonNode> out = new ArrayList<>();
    try {
      for (String line : Files.readAllLines(f, StandardCharsets.UTF_8)) {
        if (!line.isBlank()) {
          out.add(m.readTree(line));
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(f + ": " + e.getMessage(), e);
    }
    return out;
  }

  private static List<JsonNode> metrics(Path f) {
    return jsonl(f).stream().filter(n -> n.has("loss")).toList();
  }
}
