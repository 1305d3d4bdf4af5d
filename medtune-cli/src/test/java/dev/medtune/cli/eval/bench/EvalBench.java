package dev.medtune.cli.eval.bench;

import dev.medtune.cli.eval.ModelEvaluator;
import dev.medtune.cpu.CpuBackendProvider;
import dev.medtune.data.McqQuestion;
import dev.medtune.data.McqReader;
import dev.medtune.data.PromptTemplate;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.KvCache;
import dev.medtune.model.Llama;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.eval.ContinuationScorer;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;

/**
 * Log-likelihood scoring speed against the plain forward pass, in the same run, on the same
 * token rows: N questions' prompts in one pass (each in its own KV slot) and all their options'
 * continuation tokens in a second pass. The baseline is {@link Llama#forward} on exactly those
 * rows with the logits of one row per pass (a plain prefill); scoring is
 * {@link ContinuationScorer#score}, which adds the logits of every continuation row, the KV prefix
 * copies and the log-softmax. Their ratio is what scoring costs beyond the forward pass. Also
 * reports the forward tokens an unshared scorer would run (every option with its own prompt).
 * Run through {@code bench/eval.sh}; appends to bench/RESULTS.md.
 *
 * <p>Arguments: MODEL_DIR DATA_JSONL RESULTS_MD COMMIT [QUESTIONS].
 */
public final class EvalBench {
  private static final int ROUNDS = 2;

  public static void main(String[] args) throws Exception {
    Path modelDir = Path.of(args[0]);
    Path data = Path.of(args[1]);
    Path results = Path.of(args[2]);
    String commit = args[3];
    int n = args.length > 4 ? Integer.parseInt(args[4]) : 2;
    int threads = Runtime.getRuntime().availableProcessors();
    String device = args.length > 5 ? args[5] : "cpu";
    String machine = cpuModel() + ", " + threads + " cores (shared with other jobs: CPU figures are noisy, read the ratio)";
    List<McqQuestion> questions = McqReader.read(data, null).questions().subList(0, n);

    List<ContinuationScorer.Request> requests = new ArrayList<>();
    long unshared = 0;
    try (LlamaTokenizer tok = LlamaTokenizer.load(modelDir)) {
      for (McqQuestion q : questions) {
        int[] prompt = tok.encode(PromptTemplate.recipe().prompt(q.question()), true);
        List<int[]> conts = new ArrayList<>();
        for (String o : q.options()) {
          int[] c = tok.encode(ModelEvaluator.continuation(o), false);
          conts.add(c);
          unshared += prompt.length + c.length - 1;
        }
        requests.add(new ContinuationScorer.Request(prompt, conts));
      }
    }
    int promptRows = 0;
    int contRows = 0;
    int maxLength = 0;
    int slots = 0;
    for (ContinuationScorer.Request r : requests) {
      promptRows += r.prompt().length;
      for (int[] c : r.continuations()) {
        contRows += c.length - 1;
      }
      maxLength = Math.max(maxLength, r.length());
      slots += r.continuations().size();
    }
    long shared = promptRows + contRows;

    double baseline;
    double scoring;
    String dtype;
    try (Checkpoint ckpt = Checkpoint.open(modelDir); Backend cpu = device.equals("cpu")
        ? CpuBackendProvider.create(threads) : dev.medtune.model.backend.Backends.open(device)) {
      dtype = ckpt.config().torchDtype();
      if (!device.equals("cpu")) {
        machine = cpu.description();
      }
      int rows = Math.max(promptRows, contRows);
      Llama model = new Llama(ckpt, cpu, rows, rows, maxLength);
      KvCache cache = model.newCache(slots);
      int vocab = ckpt.config().vocabSize();
      float[] logits = new float[vocab];

      // warm-up (JIT): a small pass
      int[] w = new int[16];
      model.forward(w, new int[16], range(16), 16, cache, new int[] {15}, 1, logits);

      // baseline: the same two passes, logits of one row each (plain prefill)
      int[][] pass1 = new int[3][promptRows];
      int[][] pass2 = new int[3][contRows];
      int t = 0;
      int u = 0;
      int slot = 0;
      for (ContinuationScorer.Request r : requests) {
        for (int i = 0; i < r.prompt().length; i++, t++) {
          pass1[0][t] = r.prompt()[i];
          pass1[1][t] = slot;
          pass1[2][t] = i;
        }
        for (int k = 0; k < r.continuations().size(); k++) {
          int[] c = r.continuations().get(k);
          for (int i = 0; i + 1 < c.length; i++, u++) {
            pass2[0][u] = c[i];
            pass2[1][u] = slot + k;
            pass2[2][u] = r.prompt().length + i;
          }
        }
        slot += r.continuations().size();
      }
      // interleaved, best of ROUNDS each: the cores are shared, so take each side's quietest run
      ContinuationScorer scorer = new ContinuationScorer(model, cache);
      double bestBaseline = Double.MAX_VALUE;
      double bestScoring = Double.MAX_VALUE;
      for (int round = 0; round < ROUNDS; round++) {
        long t0 = System.nanoTime();
        model.forward(pass1[0], pass1[1], pass1[2], promptRows, cache, new int[] {promptRows - 1}, 1, logits);
        if (contRows > 0) {
          model.forward(pass2[0], pass2[1], pass2[2], contRows, cache, new int[] {contRows - 1}, 1, logits);
        }
        bestBaseline = Math.min(bestBaseline, (System.nanoTime() - t0) / 1e9);

        long before = scorer.forwardTokens();
        long t1 = System.nanoTime();
        scorer.score(requests);
        bestScoring = Math.min(bestScoring, (System.nanoTime() - t1) / 1e9);
        if (scorer.forwardTokens() - before != shared) {
          throw new IllegalStateException("the scorer ran " + (scorer.forwardTokens() - before)
              + " tokens, the baseline " + shared);
        }
        System.out.printf("round %d: plain forward %.2f s, scoring %.2f s%n", round + 1,
            bestBaseline, bestScoring);
      }
      baseline = shared / bestBaseline;
      scoring = shared / bestScoring;
      System.out.printf("plain forward: %d tokens (%d prompt + %d continuation rows), %.1f tokens/s%n",
          shared, promptRows, contRows, baseline);
      System.out.printf("scoring: %.1f tokens/s = %.3f questions/s (%.0f%% of the plain forward rate)%n",
          scoring, n / bestScoring, 100 * scoring / baseline);
    }
    System.out.printf("forward tokens: %d with the prompt shared, %d with each option scored on its"
        + " own (%.2fx)%n", shared, unshared, (double) unshared / shared);

    String date = ZonedDateTime.now(ZoneOffset.UTC).format(DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm 'UTC'"));
    String entry = String.format("""

        ## eval (loglik scoring): %s, commit %s

        Machine: %s, Java %s.
        Model: `%s` (%s, random weights, its own tokenizer), %d MedMCQA dev questions (4 options):
        %d prompt tokens in one pass, %d continuation rows in a second. Same-run baseline: the plain
        forward pass (`Llama.forward`) over exactly those rows with one row of logits per pass; the two
        are run interleaved, best of %d each.

        | figure | measured | baseline (same run) | ratio |
        | --- | --- | --- | --- |
        | log-likelihood scoring (logits of every continuation row, KV prefix copies, log-softmax) | %.1f tokens/s, %.3f questions/s | %.1f tokens/s plain forward | %.0f%% |
        | forward tokens per %d questions | %d (prompt shared) | %d (each option with its own prompt) | %.2fx fewer |
        """, date, commit, machine, Runtime.version(), modelDir.getFileName(), dtype, n,
        promptRows, contRows, ROUNDS, scoring, scoring * n / shared, baseline, 100 * scoring / baseline,
        n, shared, unshared, (double) unshared / shared);
    Files.writeString(results, entry, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
        StandardOpenOption.APPEND);
    System.out.println("appended to " + results);
  }

  private static int[] range(int n) {
    int[] r = new int[n];
    for (int i = 0; i < n; i++) {
      r[i] = i;
    }
    return r;
  }

  private static String cpuModel() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
        if (line.startsWith("model name")) {
          return line.substring(line.indexOf(':') + 1).strip();
        }
      }
    } catch (IOException e) {
      // not Linux
    }
    return System.getProperty("os.arch");
  }
}
