package dev.medtune.model.train;

import dev.medtune.model.Checkpoint;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.LoraLlama;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.lora.LoraAdapter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;

/**
 * The LoRA SFT loop: for each optimizer step, the micro-batches of {@link SftBatcher#step} run
 * forward and backward with the loss scaled by 1 / (counted tokens of the whole step), so
 * gradient accumulation gives exactly the gradient of one large batch; then clipping by global
 * norm, AdamW at the schedule's rate, and the step's line in {@code metrics.jsonl}. Eval loss every
 * {@code evalEvery} steps, checkpoints every {@code saveEvery} steps and when asked to stop.
 *
 * <p>Resuming: the state of a run after step n is the adapter, the AdamW moments and step count,
 * the data position and the seed (dropout masks are a function of seed, step and micro-batch), all
 * in the checkpoint, and the CPU kernels split work the same way on every run, so a resumed run's
 * later losses are bit-identical to an uninterrupted run's.
 */
public final class SftTrainer {

  /** Checkpoints kept in the output folder (older ones are deleted after a save). */
  static final int KEEP_CHECKPOINTS = 2;

  /** What the caller sees of a run as it goes (the progress bar). */
  public interface Listener {
    default void started(long step, long totalSteps, boolean resumed) {}

    default void step(long step, long totalSteps, double loss, double lr, double gradNorm,
        double tokensPerSecond, double secondsLeft) {}

    default void eval(long step, double evalLoss) {}

    default void saved(Path checkpoint) {}
  }

  /** How a run ended. */
  public record Result(long steps, long totalSteps, boolean stopped, double lastLoss, Double lastEvalLoss,
      long tokens, double seconds, LoraAdapter adapter, Optional<Path> resumedFrom) {}

  private final Checkpoint checkpoint;
  private final Backend backend;
  private final SftConfig config;
  private final List<TokenizedExample> train;
  private final List<TokenizedExample> val;
  private final Path output;
  private final String baseModelName;
  private final TrainerState identity;

  /**
   * @param identity the run's model fingerprint, data hash and settings (step and position ignored),
   *     what checkpoints record and {@code --resume} compares
   */
  public SftTrainer(Checkpoint checkpoint, Backend backend, SftConfig config, List<TokenizedExample> train,
      List<TokenizedExample> val, Path output, String baseModelName, TrainerState identity) {
    this.checkpoint = checkpoint;
    this.backend = backend;
    this.config = config;
    this.train = train;
    this.val = val;
    this.output = output;
    this.baseModelName = baseModelName;
    this.identity = identity;
  }

  /**
   * Trains until the planned step count or until {@code stopRequested} turns true (then the
   * current step finishes and a checkpoint is saved). With {@code resume}, continues from the
   * newest checkpoint in the output folder (refused, saying what differs, when it was made for
   * another model, data or settings).
   */
  public Result run(boolean resume, BooleanSupplier stopRequested, Listener listener) {
    LlamaConfig mc = checkpoint.config();
    config.checkFits(mc);
    SftBatcher batcher = new SftBatcher(train, config.batchSize(), config.gradAccum(), config.maxSeqLen(),
        config.packing(), config.seed());
    LearningRateSchedule schedule = config.lrSchedule(batcher.stepsPerEpoch());
    long total = schedule.totalSteps();
    int maxTokens = config.batchSize() * config.maxSeqLen();
    LoraLlama model = new LoraLlama(checkpoint, backend, config.lora(), maxTokens, config.maxSeqLen(),
        config.gradientCheckpointing());

    LoraAdapter adapter;
    AdamW adamw;
    long step = 0;
    DataPosition pos = DataPosition.START;
    Optional<Path> resumedFrom = Optional.empty();
    Optional<TrainingCheckpoint.Restored> restored = resume
        ? TrainingCheckpoint.resumeLatest(output, mc, config.adamW(), identity)
        : Optional.empty();
    if (restored.isPresent()) {
      TrainingCheckpoint.Restored r = restored.get();
      adapter = r.adapter();
      adamw = r.optimizer();
      step = r.state().step();
      pos = r.state().data();
      resumedFrom = Optional.of(r.dir());
    } else {
      adapter = LoraAdapter.initialize(mc, config.lora(), config.seed());
      adamw = AdamW.forParameters(config.adamW(), adapter.parameters());
    }
    model.loadAdapter(adapter);
    model.transferMoments(moments(adamw, true), moments(adamw, false), true);

    Path metricsFile = output.resolve("metrics.jsonl");
    List<MicroBatch> evalBatches = val == null || val.isEmpty() ? List.of() : evalBatches();
    listener.started(step, total, restored.isPresent());
    long tokens = 0;
    double lastLoss = Double.NaN;
    Double lastEval = null;
    long started = System.nanoTime();
    long stepsThisRun = 0;
    boolean stopped = false;
    long savedAt = step;
    try (MetricsLog metrics = restored.isPresent() ? MetricsLog.resume(metricsFile, step) : MetricsLog.create(metricsFile)) {
      while (step < total) {
        if (stopRequested.getAsBoolean()) {
          stopped = true;
          break;
        }
        long t0 = System.nanoTime();
        StepBatch sb = batcher.step(pos);
        double lr = schedule.lr((int) step); // the (n+1)-th update uses lr(n), as LambdaLR
        long taken = step;
        StepResult sr = optimizerStep(model, sb.microBatches(), sb.countedTokens(), taken + 1, lr,
            config.maxGradNorm(), config.adamW(), i -> dropoutSeed(taken, i));
        double loss = sr.loss();
        double norm = sr.gradNorm();
        step++;
        pos = sb.next();
        long stepTokens = sb.realTokens();
        tokens += stepTokens;
        stepsThisRun++;
        double seconds = (System.nanoTime() - t0) / 1e9;
        double elapsed = (System.nanoTime() - started) / 1e9;
        lastLoss = loss;
        metrics.logStep(step, loss, lr, norm, stepTokens, stepTokens / seconds);
        listener.step(step, total, loss, lr, norm, tokens / elapsed, elapsed / stepsThisRun * (total - step));
        if (config.evalEvery() > 0 && !evalBatches.isEmpty() && (step % config.evalEvery() == 0 || step == total)) {
          lastEval = evalLoss(model, evalBatches);
          metrics.logEval(step, lastEval);
          listener.eval(step, lastEval);
        }
        if (config.saveEvery() > 0 && step % config.saveEvery() == 0 && step < total) {
          listener.saved(save(model, adapter, adamw, step, pos));
          savedAt = step;
        }
      }
      if (step > savedAt || (stopped && step > 0)) {
        listener.saved(save(model, adapter, adamw, step, pos));
      }
    }
    model.storeAdapter(adapter);
    return new Result(step, total, stopped, lastLoss, lastEval, tokens, (System.nanoTime() - started) / 1e9,
        adapter, resumedFrom);
  }

  private long dropoutSeed(long step, int microBatch) {
    return SplitMix64.forStream(config.seed(), 0xD0 + step * 1024 + microBatch).nextLong();
  }

  /** What one optimizer step measured: the mean loss over its counted tokens, the norm before clipping. */
  public record StepResult(double loss, double gradNorm) {}

  /**
   * One optimizer step, the same for training and the PEFT parity test: zero the gradients, run
   * every micro-batch forward and backward with the loss scaled by 1 / {@code countedTokens},
   * clip by global norm as {@code torch.nn.utils.clip_grad_norm_}, then AdamW update number
   * {@code t} (1-based) at rate {@code lr}.
   */
  public static StepResult optimizerStep(LoraLlama model, List<MicroBatch> microBatches, long countedTokens,
      long t, double lr, double maxGradNorm, AdamW.Hyperparameters h, java.util.function.IntToLongFunction dropoutSeeds) {
    model.zeroGradients();
    float gradScale = (float) (1.0 / countedTokens);
    double lossSum = 0;
    for (int i = 0; i < microBatches.size(); i++) {
      lossSum += model.forwardBackward(microBatches.get(i), gradScale, dropoutSeeds.applyAsLong(i));
    }
    double norm = model.gradientNorm();
    double coef = Math.min(1.0, maxGradNorm / (norm + 1e-6));
    if (coef < 1.0) {
      model.scaleGradients((float) coef);
    }
    adamwStep(model, h, t, lr);
    return new StepResult(lossSum / countedTokens, norm);
  }

  private static void adamwStep(LoraLlama model, AdamW.Hyperparameters h, long t, double lr) {
    // the scalars exactly as AdamW.step makes them (torch's single-tensor AdamW)
    double biasCorrection1 = 1 - Math.pow(h.beta1(), t);
    double biasCorrection2 = 1 - Math.pow(h.beta2(), t);
    model.adamwStep((float) (1 - lr * h.weightDecay()), (float) (1 - h.beta1()), (float) h.beta2(),
        (float) (1 - h.beta2()), (float) (lr / biasCorrection1), (float) Math.sqrt(biasCorrection2),
        (float) h.eps());
  }

  private static List<float[]> moments(AdamW a, boolean first) {
    List<float[]> out = new ArrayList<>(a.tensorCount());
    for (int i = 0; i < a.tensorCount(); i++) {
      out.add(first ? a.expAvg(i) : a.expAvgSq(i));
    }
    return out;
  }

  private Path save(LoraLlama model, LoraAdapter adapter, AdamW adamw, long step, DataPosition pos) {
    model.storeAdapter(adapter);
    model.transferMoments(moments(adamw, true), moments(adamw, false), false);
    adamw.restoreStepCount(step);
    TrainerState state = new TrainerState(step, pos, config.seed(), identity.modelFingerprint(),
        identity.dataSha256(), identity.hyperparameters());
    return TrainingCheckpoint.save(output, KEEP_CHECKPOINTS, adapter, baseModelName, adamw, state);
  }

  private List<MicroBatch> evalBatches() {
    SftBatcher b = new SftBatcher(val, config.batchSize(), 1, config.maxSeqLen(), config.packing(), config.seed());
    List<MicroBatch> out = new ArrayList<>();
    for (int i = 0; i < b.microBatchesPerEpoch(); i++) {
      out.addAll(b.step(new DataPosition(0, i)).microBatches());
    }
    return out;
  }

  private static double evalLoss(LoraLlama model, List<MicroBatch> batches) {
    double sum = 0;
    long counted = 0;
    for (MicroBatch mb : batches) {
      sum += model.loss(mb);
      counted += mb.countedTokens();
    }
    return sum / counted;
  }

  /** The settings a run records and resume compares, with the model and data identity. */
  public static TrainerState identity(Path modelDir, Path data, SftConfig config) {
    Map<String, Object> model = Fingerprints.model(modelDir);
    return new TrainerState(0, DataPosition.START, config.seed(), (String) model.get("fingerprint"),
        Fingerprints.sha256(data), config.trajectorySettings());
  }

  /** True when {@code dir} holds a checkpoint folder {@code --resume} could continue from. */
  public static boolean hasCheckpoint(Path dir) {
    return Files.isDirectory(dir) && CheckpointFolder.latest(dir).isPresent();
  }
}
