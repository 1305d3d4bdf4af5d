package dev.medtune.cli;

import dev.medtune.model.Checkpoint;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.lora.LoraConfig;
import dev.medtune.model.lora.LoraTarget;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import dev.medtune.model.train.AdamW;
import dev.medtune.model.train.AdapterOutput;
import dev.medtune.model.train.LearningRateSchedule;
import dev.medtune.model.train.LossOn;
import dev.medtune.model.train.LossPlot;
import dev.medtune.model.train.MetricsLog;
import dev.medtune.model.train.SftConfig;
import dev.medtune.model.train.SftExample;
import dev.medtune.model.train.SftTrainer;
import dev.medtune.model.train.StopRequest;
import dev.medtune.model.train.TokenizedExample;
import dev.medtune.model.train.TrainerState;
import dev.medtune.model.train.TrainingRecord;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.time.Duration;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code medtune train}: LoRA supervised fine-tuning of a Llama model on prepare's JSON lines. */
@Command(
    name = "train",
    mixinStandardHelpOptions = true,
    sortOptions = false,
    description = {
      "LoRA supervised fine-tuning (defaults: the recipe's - r 16, alpha 16, the seven projections,"
          + " lr 2e-4, linear schedule, 5 warmup steps, 60 steps of 2 x 4 examples, seed 3407).",
      "Writes OUT/adapter (PEFT layout + tokenizer files), OUT/metrics.jsonl, OUT/loss.png,"
          + " OUT/training.json and checkpoints OUT/checkpoint-STEP. Ctrl-C or SIGTERM finishes the"
          + " current step, saves a checkpoint and exits; --resume continues from the newest one."
    })
final class TrainCommand implements Callable<Integer> {

  @Option(names = "--model", required = true, paramLabel = "M", description = "Base model folder (Hugging Face layout), or a hub model id (org/name), downloaded into the hub cache.")
  Path model;

  @Option(names = "--data", required = true, paramLabel = "F", description = "Training examples, JSON lines (prepare's train.jsonl).")
  Path data;

  @Option(names = "--val", paramLabel = "F", description = "Validation examples for the eval loss.")
  Path val;

  @Option(names = "--output", required = true, paramLabel = "OUT", description = "Output folder.")
  Path output;

  @Option(names = "--lora-r", defaultValue = "16", description = "LoRA rank (default: ${DEFAULT-VALUE}).")
  int loraR;

  @Option(names = "--lora-alpha", defaultValue = "16", description = "LoRA alpha (default: ${DEFAULT-VALUE}).")
  double loraAlpha;

  @Option(names = "--lora-dropout", defaultValue = "0", description = "Dropout on LoRA's input (default: ${DEFAULT-VALUE}).")
  double loraDropout;

  @Option(names = "--target-modules", split = ",", paramLabel = "M,...",
      defaultValue = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
      description = "Projections to adapt (default: all seven).")
  List<String> targetModules;

  @Option(names = "--use-rslora", description = "Scale by alpha/sqrt(r) instead of alpha/r.")
  boolean useRslora;

  @Option(names = "--gradient-checkpointing", negatable = true, defaultValue = "true", fallbackValue = "true",
      description = "Recompute each layer's activations in the backward (default: on).")
  boolean gradientCheckpointing;

  @Option(names = "--loss-on", defaultValue = "completion", paramLabel = "completion|all",
      description = "Tokens the loss counts: the answer and explanation, or all (the recipe's) (default: ${DEFAULT-VALUE}).")
  String lossOn;

  @Option(names = "--batch-size", defaultValue = "2", description = "Rows per micro-batch (default: ${DEFAULT-VALUE}).")
  int batchSize;

  @Option(names = "--grad-accum", defaultValue = "4", description = "Micro-batches per optimizer step (default: ${DEFAULT-VALUE}).")
  int gradAccum;

  @Option(names = "--max-seq-len", defaultValue = "2048", description = "Tokens per row; longer examples are truncated (default: ${DEFAULT-VALUE}).")
  int maxSeqLen;

  @Option(names = "--packing", description = "Pack several examples per row (attention stays inside each).")
  boolean packing;

  @Option(names = "--lr", defaultValue = "2e-4", description = "Peak learning rate (default: ${DEFAULT-VALUE}).")
  double lr;

  @Option(names = "--weight-decay", defaultValue = "0.01", description = "AdamW decoupled weight decay (default: ${DEFAULT-VALUE}).")
  double weightDecay;

  @Option(names = "--lr-scheduler", defaultValue = "linear", paramLabel = "linear|cosine|constant",
      description = "Schedule after warmup (default: ${DEFAULT-VALUE}).")
  String lrScheduler;

  @Option(names = "--warmup-steps", defaultValue = "5", description = "Linear warmup steps (default: ${DEFAULT-VALUE}).")
  int warmupSteps;

  @Option(names = "--max-steps", description = "Optimizer steps (default: 60, or --epochs when that is given).")
  Integer maxSteps;

  @Option(names = "--epochs", description = "Passes over the data (used when --max-steps is not given).")
  Integer epochs;

  @Option(names = "--max-grad-norm", defaultValue = "1.0", description = "Gradient clipping (default: ${DEFAULT-VALUE}).")
  double maxGradNorm;

  @Option(names = "--seed", defaultValue = "3407", description = "Seed of every random choice (default: ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--eval-every", defaultValue = "0", description = "Steps between eval losses on --val (0: at the end only).")
  int evalEvery;

  @Option(names = "--save-every", defaultValue = "0", description = "Steps between checkpoints (0: at the end only).")
  int saveEvery;

  @Option(names = "--resume", description = "Continue from the newest checkpoint in OUT.")
  boolean resume;

  @Option(names = "--overwrite", description = "Replace medtune's outputs in an existing OUT.")
  boolean overwrite;

  @Option(names = "--device", defaultValue = "auto", description = "cpu, cuda or auto (default: ${DEFAULT-VALUE}).")
  String device;

  @Override
  public Integer call() {
    model = HubAccess.model(model, new java.io.PrintWriter(System.err, true));
    SftConfig config = config();
    Training.Outcome o;
    try (StopRequest stop = StopRequest.install(Duration.ofMinutes(10))) {
      o = Training.run(model, data, val, output, config, resume, overwrite, device, stop, System.err);
    }
    if (o.result().stopped()) {
      System.err.printf("train: stopped after step %d of %d; checkpoint saved, continue with --resume%n",
          o.result().steps(), o.result().totalSteps());
      return 0;
    }
    System.err.printf("train: %d steps, loss %.4f, adapter in %s%s%n", o.result().steps(),
        o.result().lastLoss(), output.resolve("adapter"),
        Files.isRegularFile(output.resolve("loss.png")) ? ", loss curve in " + output.resolve("loss.png") : "");
    return 0;
  }

  SftConfig config() {
    LossOn on = switch (lossOn.toLowerCase(Locale.ROOT)) {
      case "completion" -> LossOn.COMPLETION;
      case "all" -> LossOn.ALL;
      default -> throw new UsageException("--loss-on must be completion or all, found '" + lossOn + "'");
    };
    LearningRateSchedule.Kind kind;
    try {
      kind = LearningRateSchedule.Kind.valueOf(lrScheduler.toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new UsageException("--lr-scheduler must be linear, cosine or constant, found '" + lrScheduler + "'");
    }
    int steps = maxSteps != null ? maxSteps : epochs != null ? 0 : 60;
    int ep = epochs != null ? epochs : 0;
    try {
      List<LoraTarget> targets = LoraConfig.parseTargets(targetModules);
      LoraConfig lora = new LoraConfig(loraR, loraAlpha, loraDropout, targets, useRslora);
      AdamW.Hyperparameters h = new AdamW.Hyperparameters(0.9, 0.999, 1e-8, weightDecay);
      return new SftConfig(lora, lr, h, kind, warmupSteps, steps, ep, batchSize, gradAccum, maxSeqLen, packing,
          on, maxGradNorm, seed, gradientCheckpointing, saveEvery, evalEvery);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
  }

  /** The run itself, shared by {@code train} and {@code demo}. */
  static final class Training {
    private Training() {}

    record Outcome(SftTrainer.Result result, Path adapterDir) {}

    static Outcome run(Path model, Path data, Path val, Path output, SftConfig config, boolean resume,
        boolean overwrite, String device, StopRequest stop, PrintStream err) {
      if (!Files.isRegularFile(model.resolve("config.json"))) {
        throw new MedtuneFailure(model + ": not a model folder (no config.json)");
      }
      if (!Files.isRegularFile(data)) {
        throw new MedtuneFailure(data + ": no such data file");
      }
      if (val != null && !Files.isRegularFile(val)) {
        throw new MedtuneFailure(val + ": no such validation file");
      }
      prepareOutput(output, resume, overwrite);
      try (Checkpoint ck = Checkpoint.open(model);
          LlamaTokenizer tok = LlamaTokenizer.load(model);
          Backend backend = Devices.open(device)) {
        config.checkFits(ck.config());
        TokenizedExample.Dataset train = tokenize(data, tok, config);
        TokenizedExample.Dataset valSet = val == null ? null : tokenize(val, tok, config);
        err.printf("train: %,d examples (%,d truncated to %d tokens, %,d dropped with nothing to learn),"
                + " %,d counted tokens; %s; %,d LoRA parameters%n", train.examples().size(), train.truncated(),
            config.maxSeqLen(), train.droppedNoTargets(), train.countedTokens(), backend.description(),
            dev.medtune.model.lora.LoraAdapter.parameterCount(ck.config(), config.lora()));
        TrainerState identity = SftTrainer.identity(model, data, config);
        SftTrainer trainer = new SftTrainer(ck, backend, config, train.examples(),
            valSet == null ? null : valSet.examples(), output, model.toString(), identity);
        ProgressBar bar = new ProgressBar(err);
        SftTrainer.Result r = trainer.run(resume, stop::requested, bar);
        bar.finish();
        if (r.stopped()) {
          err.println("train: Ctrl-C or SIGTERM: stopped after the step in progress, checkpoint saved");
        }
        Map<String, Object> results = new LinkedHashMap<>();
        results.put("steps", r.steps());
        results.put("planned_steps", r.totalSteps());
        results.put("stopped_early", r.stopped());
        results.put("final_loss", r.lastLoss());
        if (r.lastEvalLoss() != null) {
          results.put("final_eval_loss", r.lastEvalLoss());
        }
        results.put("tokens_this_run", r.tokens());
        results.put("seconds_this_run", r.seconds());
        r.resumedFrom().ifPresent(p -> results.put("resumed_from", p.toString()));
        results.put("device", backend.description());
        TrainingRecord record = new TrainingRecord(BuildInfo.version(), BuildInfo.commit(),
            dev.medtune.model.train.Fingerprints.model(model), data, val, config.allSettings(), config.seed(), results);
        record.write(output);
        Path adapterDir = AdapterOutput.write(output, r.adapter(), model, model.toString(), record);
        try {
          Path metrics = output.resolve("metrics.jsonl");
          LossPlot.write(output.resolve("loss.png"), "medtune train: " + model.getFileName(),
              MetricsLog.trainingLoss(metrics), MetricsLog.evalLoss(metrics));
        } catch (IllegalStateException e) {
          // Java2D cannot start once the JVM is shutting down (after a signal): the next run draws it
          err.println("train: loss.png not drawn during shutdown (" + e.getMessage() + "); --resume draws it");
        } catch (NoClassDefFoundError e) {
          // a runtime linked without java.desktop (the GPU machine's jlinked JRE): the adapter and
          // metrics are written, only the picture is missing
          err.println("train: loss.png not drawn: this Java runtime has no java.desktop module (" + e.getMessage()
              + "); metrics.jsonl has every figure");
        }
        stop.finished(); // everything is written: a signalled JVM may exit now
        return new Outcome(r, adapterDir);
      } catch (IllegalArgumentException | IllegalStateException e) {
        throw new MedtuneFailure(e.getMessage());
      }
    }

    private static TokenizedExample.Dataset tokenize(Path file, LlamaTokenizer tok, SftConfig config) {
      List<SftExample> ex = SftExample.readJsonl(file, config.lossOn());
      return TokenizedExample.tokenizeAll(ex, tok::encode, tok.bosId(), tok.eosId(), config.lossOn(), config.maxSeqLen());
    }

    private static void prepareOutput(Path output, boolean resume, boolean overwrite) {
      try {
        if (resume) {
          if (!SftTrainer.hasCheckpoint(output)) {
            throw new MedtuneFailure(output + ": no checkpoint to resume from (expected " + output
                + "/checkpoint-STEP from an earlier run)");
          }
          return;
        }
        if (Files.isDirectory(output)) {
          List<Path> ours = new ArrayList<>();
          try (Stream<Path> s = Files.list(output)) {
            s.forEach(ours::add);
          }
          if (!ours.isEmpty() && !overwrite) {
            throw new MedtuneFailure(output + " is not empty; use --resume to continue its run or --overwrite to replace it");
          }
          for (Path p : ours) {
            String n = p.getFileName().toString();
            if (n.equals("adapter") || n.startsWith("checkpoint-") || n.equals("metrics.jsonl")
                || n.equals("loss.png") || n.equals("training.json")) {
              deleteTree(p);
            }
          }
        } else if (Files.exists(output)) {
          throw new MedtuneFailure(output + " exists and is not a folder");
        }
        Files.createDirectories(output);
      } catch (IOException e) {
        throw new UncheckedIOException(output + ": " + e.getMessage(), e);
      }
    }

    static void deleteTree(Path p) throws IOException {
      if (!Files.exists(p)) {
        return;
      }
      try (Stream<Path> s = Files.walk(p)) {
        for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
          Files.delete(q);
        }
      }
    }
  }

  /** One line on stderr, redrawn each step on a terminal: step, bar, loss, lr, tokens/s, time left. */
  static final class ProgressBar implements SftTrainer.Listener {
    private final PrintStream err;
    private final boolean terminal = System.console() != null;
    private boolean open;

    ProgressBar(PrintStream err) {
      this.err = err;
    }

    @Override
    public void started(long step, long total, boolean resumed) {
      if (resumed) {
        err.printf("train: resuming at step %d of %d%n", step, total);
      }
    }

    @Override
    public void step(long step, long total, double loss, double lr, double gradNorm, double tps, double left) {
      int width = 24;
      int done = (int) (width * step / Math.max(1, total));
      String bar = "=".repeat(done) + (done < width ? ">" + " ".repeat(width - done - 1) : "");
      String line = String.format(Locale.ROOT, "step %d/%d [%s] loss %.4f  lr %.2e  %,.0f tok/s  %s left",
          step, total, bar, loss, lr, tps, clock(left));
      if (terminal) {
        err.print("\r" + line + "   ");
        open = true;
      } else {
        err.println(line);
      }
      err.flush();
    }

    @Override
    public void eval(long step, double evalLoss) {
      finish();
      err.printf(Locale.ROOT, "eval at step %d: loss %.4f%n", step, evalLoss);
    }

    @Override
    public void saved(Path checkpoint) {
      finish();
      err.println("saved " + checkpoint);
    }

    void finish() {
      if (open) {
        err.println();
        open = false;
      }
    }

    private static String clock(double seconds) {
      long s = Math.round(seconds);
      return s >= 3600 ? String.format("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
          : String.format("%02d:%02d", s / 60, s % 60);
    }
  }
}
