package dev.medtune.model.eval;

import dev.medtune.model.KvCache;
import dev.medtune.model.Llama;
import java.util.ArrayList;
import java.util.List;

/**
 * Log-likelihoods of continuations after a prompt, the measurement behind multiple-choice
 * evaluation by likelihood (as lm-evaluation-harness's {@code loglikelihood} requests; Gao et al.,
 * "A framework for few-shot language model evaluation", 2021) and behind held-out loss:
 * {@code log p(c_i | prompt, c_<i) = logits[c_i] - logsumexp(logits)} at the position before
 * {@code c_i}.
 *
 * <p>Batched with the prompt shared: one forward pass prefills the prompts of many requests, each
 * into its own KV-cache slot, and yields the distribution of every continuation's first token;
 * each prompt's keys and values are then copied into one slot per further continuation, and a
 * second forward pass runs every continuation of every request of the batch at once (all but
 * its last token, whose successor is not needed). The prompt is computed once, however many
 * continuations it has. {@link #scoreOneByOne} is the plain definition (one sequence, prompt and
 * continuation in one pass) that this is tested against.
 */
public final class ContinuationScorer {

  /** A prompt (token ids, BOS included when wanted) and its continuations (at least one token each). */
  public record Request(int[] prompt, List<int[]> continuations) {
    public Request {
      continuations = List.copyOf(continuations);
      if (prompt.length == 0) {
        throw new IllegalArgumentException("an empty prompt has no distribution for the first token");
      }
      for (int[] c : continuations) {
        if (c.length == 0) {
          throw new IllegalArgumentException("an empty continuation has no log-likelihood");
        }
      }
    }

    /** The longest sequence this request forms: prompt plus its longest continuation. */
    public int length() {
      int m = 0;
      for (int[] c : continuations) {
        m = Math.max(m, c.length);
      }
      return prompt.length + m;
    }
  }

  private final Llama model;
  private final KvCache cache;
  private final int vocab;
  private long forwardTokens;

  /** Scores with {@code model}, using {@code cache}'s slots for the requests of one batch. */
  public ContinuationScorer(Llama model, KvCache cache) {
    this.model = model;
    this.cache = cache;
    this.vocab = model.config().vocabSize();
  }

  /** Tokens run through the model so far (prompts once, continuations without their last token). */
  public long forwardTokens() {
    return forwardTokens;
  }

  /** Whether a request fits this scorer's model, cache and buffers at all. */
  public boolean fits(Request r) {
    return r.length() <= cache.maxLength() && r.continuations().size() <= cache.slots()
        && r.prompt().length <= model.maxRows() && phase2Rows(r) <= model.maxRows()
        && phase2Rows(r) <= model.maxLogitRows();
  }

  /**
   * The log-probability of every token of every continuation: {@code result.get(i)[k][t]} for
   * request {@code i}, continuation {@code k}, token {@code t}. Requests are grouped into batches
   * as large as the model's planned rows, logit rows and the cache's slots allow.
   */
  public List<double[][]> score(List<Request> requests) {
    List<double[][]> out = new ArrayList<>(requests.size());
    int i = 0;
    while (i < requests.size()) {
      Request first = requests.get(i);
      if (!fits(first)) {
        throw new IllegalArgumentException("request " + i + " (" + first.length()
            + " tokens, " + first.continuations().size() + " continuations) does not fit the"
            + " planned " + cache.maxLength() + " positions, " + model.maxRows() + " rows, "
            + model.maxLogitRows() + " logit rows and " + cache.slots() + " slots");
      }
      int slots = 0;
      int rows1 = 0;
      int rows2 = 0;
      int j = i;
      while (j < requests.size()) {
        Request r = requests.get(j);
        int s = slots + r.continuations().size();
        int r1 = rows1 + r.prompt().length;
        int r2 = rows2 + phase2Rows(r);
        if (s > cache.slots() || r1 > model.maxRows() || j - i + 1 > model.maxLogitRows()
            || r2 > model.maxRows() || r2 > model.maxLogitRows()) {
          break;
        }
        slots = s;
        rows1 = r1;
        rows2 = r2;
        j++;
      }
      out.addAll(scoreBatch(requests.subList(i, j), rows1, rows2));
      i = j;
    }
    return out;
  }

  private static int phase2Rows(Request r) {
    int n = 0;
    for (int[] c : r.continuations()) {
      n += c.length - 1;
    }
    return n;
  }

  private List<double[][]> scoreBatch(List<Request> batch, int rows1, int rows2) {
    int q = batch.size();
    List<double[][]> result = new ArrayList<>(q);
    int[] base = new int[q];
    int slot = 0;
    for (int j = 0; j < q; j++) {
      base[j] = slot;
      slot += batch.get(j).continuations().size();
      double[][] lp = new double[batch.get(j).continuations().size()][];
      for (int k = 0; k < lp.length; k++) {
        lp[k] = new double[batch.get(j).continuations().get(k).length];
      }
      result.add(lp);
    }

    // pass 1: every prompt once, in the first slot of its request; logits of its last token
    int[] tokens = new int[rows1];
    int[] slots = new int[rows1];
    int[] positions = new int[rows1];
    int[] logitRows = new int[q];
    int t = 0;
    for (int j = 0; j < q; j++) {
      int[] p = batch.get(j).prompt();
      for (int i = 0; i < p.length; i++, t++) {
        tokens[t] = p[i];
        slots[t] = base[j];
        positions[t] = i;
      }
      logitRows[j] = t - 1;
    }
    float[] logits = new float[q * vocab];
    model.forward(tokens, slots, positions, rows1, cache, logitRows, q, logits);
    forwardTokens += rows1;
    for (int j = 0; j < q; j++) {
      double lse = logSumExp(logits, j);
      List<int[]> cs = batch.get(j).continuations();
      for (int k = 0; k < cs.size(); k++) {
        result.get(j)[k][0] = logits[j * vocab + cs.get(k)[0]] - lse;
      }
    }
    if (rows2 == 0) {
      return result;
    }

    // the prompt's keys and values into the slot of every further continuation
    for (int j = 0; j < q; j++) {
      for (int k = 1; k < batch.get(j).continuations().size(); k++) {
        cache.copyPrefix(base[j], base[j] + k, batch.get(j).prompt().length);
      }
    }

    // pass 2: all continuations of all requests, each but its last token, logits on every row
    tokens = new int[rows2];
    slots = new int[rows2];
    positions = new int[rows2];
    logitRows = new int[rows2];
    int[] targets = new int[rows2];
    t = 0;
    for (int j = 0; j < q; j++) {
      int plen = batch.get(j).prompt().length;
      List<int[]> cs = batch.get(j).continuations();
      for (int k = 0; k < cs.size(); k++) {
        int[] c = cs.get(k);
        for (int i = 0; i + 1 < c.length; i++, t++) {
          tokens[t] = c[i];
          slots[t] = base[j] + k;
          positions[t] = plen + i;
          logitRows[t] = t;
          targets[t] = c[i + 1];
        }
      }
    }
    // the log-probability of each row's next token is taken where the logits are: one float a row
    float[] lp = new float[rows2];
    model.forwardLogprobs(tokens, slots, positions, rows2, cache, logitRows, rows2, targets, lp);
    forwardTokens += rows2;
    t = 0;
    for (int j = 0; j < q; j++) {
      List<int[]> cs = batch.get(j).continuations();
      for (int k = 0; k < cs.size(); k++) {
        for (int i = 1; i < cs.get(k).length; i++, t++) {
          result.get(j)[k][i] = lp[t];
        }
      }
    }
    return result;
  }

  /**
   * The definition, one sequence at a time: prompt and continuation in one forward pass (slot 0),
   * logits at every position from the prompt's last token on.
   */
  public double[] scoreOneByOne(int[] prompt, int[] continuation) {
    int n = prompt.length + continuation.length - 1;
    int[] tokens = new int[n];
    int[] slots = new int[n];
    int[] positions = new int[n];
    System.arraycopy(prompt, 0, tokens, 0, prompt.length);
    System.arraycopy(continuation, 0, tokens, prompt.length, continuation.length - 1);
    for (int i = 0; i < n; i++) {
      positions[i] = i;
    }
    int[] logitRows = new int[continuation.length];
    for (int i = 0; i < logitRows.length; i++) {
      logitRows[i] = prompt.length - 1 + i;
    }
    float[] logits = new float[logitRows.length * vocab];
    model.forward(tokens, slots, positions, n, cache, logitRows, logitRows.length, logits);
    forwardTokens += n;
    double[] lp = new double[continuation.length];
    for (int i = 0; i < lp.length; i++) {
      lp[i] = logits[i * vocab + continuation[i]] - logSumExp(logits, i);
    }
    return lp;
  }

  /** log Σ exp(logits[row, :]) in double, shifted by the row's maximum. */
  private double logSumExp(float[] logits, int row) {
    int off = row * vocab;
    float max = Float.NEGATIVE_INFINITY;
    for (int v = 0; v < vocab; v++) {
      max = Math.max(max, logits[off + v]);
    }
    double s = 0;
    for (int v = 0; v < vocab; v++) {
      s += Math.exp(logits[off + v] - max);
    }
    return max + Math.log(s);
  }
}
