package dev.medtune.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.medtune.data.PromptTemplate;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Generator;
import dev.medtune.model.Llama;
import dev.medtune.model.LlamaConfig;
import dev.medtune.model.Sampler;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import dev.medtune.model.tokenizer.StreamingDecoder;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code medtune generate}: streams a model's answer to a question or prompt, or answers a file of
 * prompts as one batch, and reports prefill and decode speed on stderr.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
    description = {"Generate text with a Llama model, streaming it to stdout as it is produced.",
        "Prefill and decode tokens/s are printed on stderr at the end."})
final class GenerateCommand implements Callable<Integer> {

  /** Prompts decoded together in one batch (one KV-cache slot each). */
  static final int MAX_BATCH = 16;
  /** Prompt tokens per prefill pass: bounds the activation buffers. */
  static final int PREFILL_ROWS = 128;

  @Option(names = "--model", required = true, paramLabel = "DIR",
      description = "Model folder in Hugging Face layout (config.json, safetensors, tokenizer.json), or a hub model id (org/name), downloaded into the hub cache.")
  Path model;

  @Option(names = "--adapter", paramLabel = "A",
      description = "A LoRA adapter folder (PEFT layout, e.g. train's OUT/adapter) applied to the model.")
  Path adapter;

  static final class Input {
    @Option(names = "--question", paramLabel = "Q",
        description = "A question, wrapped in the recipe's prompt template.")
    String question;

    @Option(names = "--prompt", paramLabel = "P", description = "A raw prompt, used as is.")
    String prompt;

    @Option(names = "--file", paramLabel = "F", description = {
        "Several prompts, answered as a batch: one raw prompt per line, or JSON lines with",
        "\"prompt\" (used as is) or \"question\" (wrapped in the template)."})
    Path file;
  }

  @ArgGroup(exclusive = true, multiplicity = "1")
  Input input;

  @Option(names = "--max-new-tokens", defaultValue = "256", paramLabel = "N",
      description = "Most tokens to generate per prompt (default: ${DEFAULT-VALUE}).")
  int maxNewTokens;

  @Option(names = "--temperature", defaultValue = "0", paramLabel = "T",
      description = "Sampling temperature; 0 is greedy (default: ${DEFAULT-VALUE}).")
  double temperature;

  @Option(names = "--top-k", defaultValue = "0", paramLabel = "K",
      description = "Sample among the K most likely tokens; 0 is off (default: ${DEFAULT-VALUE}).")
  int topK;

  @Option(names = "--top-p", defaultValue = "1", paramLabel = "P",
      description = "Nucleus sampling: the smallest set of tokens reaching P; 1 is off (default: ${DEFAULT-VALUE}).")
  double topP;

  @Option(names = "--repetition-penalty", defaultValue = "1", paramLabel = "R",
      description = "Penalty for tokens already in the text, as transformers; 1 is off (default: ${DEFAULT-VALUE}).")
  double repetitionPenalty;

  @Option(names = "--seed", defaultValue = "3407", paramLabel = "S",
      description = "Random seed of sampling (default: ${DEFAULT-VALUE}).")
  long seed;

  @Option(names = "--device", defaultValue = "auto", paramLabel = "DEVICE",
      description = "auto (CUDA when present, else CPU), cpu or cuda (default: ${DEFAULT-VALUE}).")
  String device;

  @Option(names = "--special-tokens",
      description = "Print special tokens (<|eot_id|>, reserved ones) as text; by default they are left out of the answer.")
  boolean specialTokens;

  @Override
  public Integer call() {
    model = HubAccess.model(model, new java.io.PrintWriter(System.err, true));
    if (maxNewTokens < 1) {
      throw new UsageException("--max-new-tokens must be at least 1, found " + maxNewTokens);
    }
    Sampler.Params params;
    try {
      params = new Sampler.Params(temperature, topK, topP, repetitionPenalty, seed);
    } catch (IllegalArgumentException e) {
      throw new UsageException(e.getMessage());
    }
    List<String> prompts = prompts();
    // UTF-8 whatever the platform charset; bytes pass through to System.out's stream
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    try (Checkpoint base = Checkpoint.open(model);
        LlamaTokenizer tokenizer = LlamaTokenizer.load(model);
        Backend backend = Devices.open(device)) {
      Checkpoint checkpoint = withAdapter(base);
      LlamaConfig config = checkpoint.config();
      List<int[]> ids = new ArrayList<>();
      int longest = 0;
      for (int i = 0; i < prompts.size(); i++) {
        int[] t = tokenizer.encode(prompts.get(i), true);
        if (t.length == 0) {
          throw new MedtuneFailure("prompt " + (i + 1) + " has no tokens");
        }
        try {
          Generator.checkFits(config, t.length, maxNewTokens, config.maxPositionEmbeddings());
        } catch (IllegalArgumentException e) {
          throw new MedtuneFailure((prompts.size() > 1 ? "prompt " + (i + 1) + ": " : "") + e.getMessage());
        }
        ids.add(t);
        longest = Math.max(longest, t.length);
      }
      int batch = Math.min(MAX_BATCH, ids.size());
      int maxLength = Math.min(config.maxPositionEmbeddings(), longest + maxNewTokens);
      int rows = Math.max(batch, Math.min(PREFILL_ROWS, ids.stream().mapToInt(a -> a.length).sum()));
      Llama llama = new Llama(checkpoint, backend, rows, batch, maxLength);
      Generator generator = new Generator(llama, llama.newCache(batch));
      long prefillTokens = 0, prefillNanos = 0, decodeTokens = 0, decodeNanos = 0;
      for (int from = 0; from < ids.size(); from += batch) {
        List<int[]> group = ids.subList(from, Math.min(ids.size(), from + batch));
        Printer printer = new Printer(out, tokenizer, group.size(), from, prompts.size() > 1, specialTokens);
        Generator.Result r = generator.generate(group, params, maxNewTokens, printer::onToken);
        printer.finish();
        prefillTokens += r.prefillTokens();
        prefillNanos += r.prefillNanos();
        decodeTokens += r.decodeTokens();
        decodeNanos += r.decodeNanos();
      }
      out.flush();
      System.err.printf("medtune: %s; prefill %d tokens in %.2f s (%.1f tokens/s), decode %d tokens in %.2f s (%.1f tokens/s)%n",
          backend.description(), prefillTokens, prefillNanos / 1e9, rate(prefillTokens, prefillNanos),
          decodeTokens, decodeNanos / 1e9, rate(decodeTokens, decodeNanos));
    }
    return 0;
  }

  /** The model with the adapter merged into its projections in memory (base dtype), or as is. */
  private Checkpoint withAdapter(Checkpoint base) {
    try {
      return Adapters.apply(base, adapter);
    } catch (IllegalArgumentException e) {
      throw new MedtuneFailure(e.getMessage());
    }
  }

  private static double rate(long tokens, long nanos) {
    return nanos == 0 ? 0 : tokens * 1e9 / nanos;
  }


  private List<String> prompts() {
    if (input.question != null) {
      return List.of(PromptTemplate.recipe().prompt(input.question));
    }
    if (input.prompt != null) {
      return List.of(input.prompt);
    }
    List<String> lines;
    try {
      lines = Files.readAllLines(input.file, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new MedtuneFailure(input.file + ": cannot read (" + e.getMessage() + ")");
    }
    ObjectMapper json = new ObjectMapper();
    List<String> prompts = new ArrayList<>();
    for (int i = 0; i < lines.size(); i++) {
      String line = lines.get(i);
      if (line.isBlank()) {
        continue;
      }
      if (line.stripLeading().startsWith("{")) {
        JsonNode node;
        try {
          node = json.readTree(line);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
          throw new MedtuneFailure(input.file + " line " + (i + 1) + ": not valid JSON ("
              + e.getOriginalMessage() + ")");
        }
        if (node.hasNonNull("prompt") && node.get("prompt").isTextual()) {
          prompts.add(node.get("prompt").asText());
        } else if (node.hasNonNull("question") && node.get("question").isTextual()) {
          prompts.add(PromptTemplate.recipe().prompt(node.get("question").asText()));
        } else {
          throw new MedtuneFailure(input.file + " line " + (i + 1)
              + ": expected a JSON object with a text \"prompt\" or \"question\"");
        }
      } else {
        prompts.add(line);
      }
    }
    if (prompts.isEmpty()) {
      throw new MedtuneFailure(input.file + ": no prompts (the file is empty)");
    }
    return prompts;
  }

  /**
   * Prints answers in prompt order: the current prompt's text as it is produced, the others'
   * held until their turn (a batch decodes them together). EOS tokens are not printed.
   */
  private static final class Printer {
    private final PrintStream out;
    private final StreamingDecoder[] decoders;
    private final StringBuilder[] held;
    private final boolean[] finished;
    private final int first;
    private final boolean headers;
    private int current;

    Printer(PrintStream out, LlamaTokenizer tokenizer, int n, int first, boolean headers, boolean specialTokens) {
      this.out = out;
      this.decoders = new StreamingDecoder[n];
      this.held = new StringBuilder[n];
      this.finished = new boolean[n];
      this.first = first;
      this.headers = headers;
      for (int i = 0; i < n; i++) {
        decoders[i] = tokenizer.streamingDecoder(!specialTokens);
        held[i] = new StringBuilder();
      }
      header(0);
    }

    private void header(int p) {
      if (headers && p < decoders.length) {
        out.println("### prompt " + (first + p + 1));
      }
    }

    void onToken(int p, int token, boolean eos) {
      String text = eos ? "" : decoders[p].push(token);
      if (p == current) {
        out.print(text);
        out.flush();
      } else {
        held[p].append(text);
      }
      if (eos) {
        end(p);
      }
    }

    private void end(int p) {
      finished[p] = true;
      held[p].append(decoders[p].flush());
      while (current < decoders.length && finished[current]) {
        out.print(held[current]);
        out.println();
        current++;
        header(current);
        if (current < decoders.length) {
          out.print(held[current]);
          held[current].setLength(0);
        }
      }
      out.flush();
    }

    /** Ends the sequences stopped by the token limit (no EOS) and prints what is held. */
    void finish() {
      for (int p = 0; p < decoders.length; p++) {
        if (!finished[p]) {
          end(p);
        }
      }
    }
  }
}
