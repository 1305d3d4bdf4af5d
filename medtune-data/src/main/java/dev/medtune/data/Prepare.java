package dev.medtune.data;

import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStream;
import java.io.OutputStreamWriter;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Random;
import java.util.Set;

/**
 * {@code prepare}: raw MedMCQA (parquet, CSV, JSON lines, JSON array, gzipped or not, a file or a
 * folder) to a training set, in one streaming pass. Stages: 1 read, 2 choice type, 3 answer
 * ({@code cop}, 0- or 1-based), 4 explanation cleanup, 5 filters and duplicates, 6 selection,
 * 7 train/validation split, 8 prompt formatting. Writes {@code train.jsonl}, {@code val.jsonl},
 * {@code rejected.jsonl} and {@code report.json}; see the module README.
 */
public final class Prepare {

  private Prepare() {}

  /** Runs prepare; failures are {@link PrepareException}s with a one-line message. */
  public static PrepareReport run(PrepareOptions options) {
    PromptTemplate template = options.template() == null
        ? PromptTemplate.recipe() : PromptTemplate.read(options.template());
    InputFiles inputs = InputFiles.find(options.input(), options.split());
    OutputFolder out = OutputFolder.begin(options.output(), options.overwrite());
    try {
      PrepareReport report = new Run(options, template, out).execute(inputs);
      out.commit();
      return report;
    } catch (RuntimeException | Error e) {
      out.abandon();
      throw e;
    }
  }

  /** One line of train.jsonl / val.jsonl. */
  @JsonPropertyOrder({"id", "question", "options", "answer", "explanation", "subject", "prompt",
      "completion", "text"})
  record Example(String id, String question, List<String> options, String answer,
      String explanation, String subject, String prompt, String completion, String text) {}

  /** A row that passed the filters, with what selection needs. */
  record Candidate(long seq, int words, long randomKey, String id, String question,
      List<String> options, String answer, String explanation, String subject) {}

  private static final class Run implements MedMcqaReader.Sink {
    private final PrepareOptions o;
    private final PromptTemplate template;
    private final OutputFolder out;
    private final ObjectMapper json = new ObjectMapper();
    private final ExplanationCleaner cleaner;
    private final BufferedWriter rejectedOut;
    private final Map<String, Long> rejectedBy = new LinkedHashMap<>();
    private final Set<String> seen = new HashSet<>();
    private final PriorityQueue<Candidate> kept;
    private final Comparator<Candidate> order;
    private final ArrayNode filesReport = json.createArrayNode();

    private long records;
    private long rejectedRead;
    private long choiceDropped;
    private long rejectedAnswer;
    private long cleanedRows;
    private long empty;
    private long equalsAnswer;
    private long tooFewWords;
    private long duplicates;
    private long passed;
    private long seq;

    // per file
    private Integer copBase;
    private String copBaseFrom;
    private final List<Object[]> pending = new ArrayList<>();
    private long fileRecords;

    Run(PrepareOptions o, PromptTemplate template, OutputFolder out) {
      this.o = o;
      this.template = template;
      this.out = out;
      this.cleaner = ExplanationCleaner.of(o.cleaner());
      this.order = order(o.order());
      Comparator<Candidate> worstFirst = (a, b) -> order.compare(b, a);
      this.kept = new PriorityQueue<>(Math.min(o.limit(), 1 << 16) + 1, worstFirst);
      try {
        this.rejectedOut = Files.newBufferedWriter(out.temp().resolve("rejected.jsonl"));
      } catch (IOException e) {
        throw new PrepareException(out.temp() + ": cannot write: " + e.getMessage(), e);
      }
    }

    PrepareReport execute(InputFiles inputs) {
      MedMcqaReader reader = new MedMcqaReader(out.temp());
      String keepChoiceType = o.choiceType() == PrepareOptions.ChoiceType.ALL
          ? null : o.choiceType().name().toLowerCase(Locale.ROOT);
      try (rejectedOut) {
        for (Path file : inputs.files()) {
          copBase = o.copBase();
          copBaseFrom = o.copBase() == null ? null : "--cop-base";
          pending.clear();
          fileRecords = 0;
          reader.read(file, keepChoiceType, this);
          endFile(file);
        }
      } catch (IOException e) {
        throw new PrepareException(out.temp() + ": cannot write rejected.jsonl: " + e.getMessage(),
            e);
      }
      if (records == 0) {
        throw new PrepareException(o.input() + ": no MedMCQA records in the input");
      }
      List<Candidate> selected = new ArrayList<>(kept);
      selected.sort(order);
      return write(inputs, selected);
    }

    // ---- stage 1: read

    @Override
    public void reject(String source, long row, long line, String id, String reason) {
      records++;
      fileRecords++;
      rejectedRead++;
      rejected("read", "unparseable", source, row, line, id, reason);
    }

    @Override
    public void row(MedMcqaRow r) {
      records++;
      fileRecords++;
      String missing = missingField(r);
      if (missing != null) {
        rejectedRead++;
        rejected("read", "missing_field", r.source(), r.row(), -1, r.id(),
            "missing field " + missing);
        return;
      }
      Integer cop = integer(r.cop());
      if (copBase == null && CopBase.decidedBy(cop) != null) {
        copBase = CopBase.decidedBy(cop);
        copBaseFrom = "value " + cop + " seen at row " + r.row();
      }
      // stage 2: choice type
      if (!choiceTypeKept(r.choiceType())) {
        choiceDropped++;
        return;
      }
      // stage 3: answer
      if (cop == null) {
        rejectedAnswer++;
        rejected("answer", "cop_not_integer", r.source(), r.row(), -1, r.id(),
            "cop '" + r.cop() + "' is not an option number");
        return;
      }
      if (cop == -1) {
        rejectedAnswer++;
        rejected("answer", "no_answer", r.source(), r.row(), -1, r.id(),
            "cop -1: the record has no answer (a test split)");
        return;
      }
      if (copBase == null) {
        pending.add(new Object[] {r, cop});
        return;
      }
      flushPending();
      answer(r, cop);
    }

    private void endFile(Path file) {
      ObjectNode f = filesReport.addObject();
      f.put("path", file.toString());
      f.put("format", InputFormat.of(file).name().toLowerCase(Locale.ROOT));
      f.put("records", fileRecords);
      if (!pending.isEmpty() && copBase == null) {
        copBase = CopBase.byForm(file);
        if (copBase == null) {
          throw new PrepareException(CopBase.undecidable(file, pending.size()));
        }
        copBaseFrom = "no 0 or 4 seen; parquet is the hub's form, which is 0-based";
      }
      flushPending();
      if (copBase != null) {
        f.put("cop_base", copBase);
        f.put("cop_base_from", copBaseFrom);
      } else {
        f.putNull("cop_base");
      }
    }

    private void flushPending() {
      if (pending.isEmpty()) {
        return;
      }
      List<Object[]> rows = new ArrayList<>(pending);
      pending.clear();
      for (Object[] p : rows) {
        answer((MedMcqaRow) p[0], (Integer) p[1]);
      }
    }

    private String missingField(MedMcqaRow r) {
      if (blank(r.id())) {
        return "id";
      }
      if (blank(r.question())) {
        return "question";
      }
      for (int i = 0; i < 4; i++) {
        if (blank(r.options().get(i))) {
          return "op" + (char) ('a' + i);
        }
      }
      if (blank(r.cop())) {
        return "cop";
      }
      if (o.choiceType() != PrepareOptions.ChoiceType.ALL && blank(r.choiceType())) {
        return "choice_type";
      }
      return null;
    }

    private boolean choiceTypeKept(String t) {
      return switch (o.choiceType()) {
        case ALL -> true;
        case SINGLE -> t.strip().equalsIgnoreCase("single");
        case MULTI -> t.strip().equalsIgnoreCase("multi");
      };
    }

    private void answer(MedMcqaRow r, int cop) {
      int index = cop - copBase;
      if (index < 0 || index > 3) {
        rejectedAnswer++;
        rejected("answer", "cop_out_of_range", r.source(), r.row(), -1, r.id(),
            "cop " + cop + " is outside the options (" + (copBase == 0 ? "0-3" : "1-4")
                + " with " + copBase + "-based cop, " + copBaseFrom + ")");
        return;
      }
      List<String> options = List.of(r.options().get(0).strip(), r.options().get(1).strip(),
          r.options().get(2).strip(), r.options().get(3).strip());
      String answer = options.get(index);
      // stage 4: cleanup
      String exp = r.exp() == null ? "" : r.exp();
      String cleaned = cleaner.clean(exp, options, index);
      if (!cleaned.equals(exp)) {
        cleanedRows++;
      }
      // stage 5: filters
      if (cleaned.isBlank()) {
        empty++;
        return;
      }
      int words = Words.count(cleaned);
      // equal texts have as many words; counting first spares normalising long explanations
      if (words == Words.count(answer)
          && Words.normalise(cleaned).equals(Words.normalise(answer))) {
        equalsAnswer++;
        return;
      }
      if (words < o.minWords()) {
        tooFewWords++;
        return;
      }
      if (!seen.add(Words.normalise(r.question()) + '\u0000' + Words.normalise(answer))) {
        duplicates++;
        return;
      }
      passed++;
      // stage 6: selection, keeping only the best --limit rows
      long s = seq++;
      Candidate c = new Candidate(s, words, mix(o.seed() ^ (s * 0x9E3779B97F4A7C15L)), r.id().strip(),
          r.question().strip(), options, answer, cleaned,
          r.subject() == null ? null : r.subject().strip());
      if (kept.size() < o.limit()) {
        kept.add(c);
      } else if (order.compare(c, kept.peek()) < 0) {
        kept.poll();
        kept.add(c);
      }
    }

    private void rejected(String stage, String kind, String source, long row, long line,
        String id, String reason) {
      rejectedBy.merge(stage + "." + kind, 1L, Long::sum);
      if (o.strict()) {
        throw new PrepareException(source + (row > 0 ? " row " + row : "")
            + (line > 0 && line != row ? " line " + line : "") + ": " + reason
            + " (--strict stops at the first rejected row)");
      }
      ObjectNode n = json.createObjectNode();
      n.put("source", source);
      if (row > 0) {
        n.put("row", row);
      }
      if (line > 0) {
        n.put("line", line);
      }
      if (id != null) {
        n.put("id", id);
      }
      n.put("stage", stage);
      n.put("reason", reason);
      try {
        rejectedOut.write(json.writeValueAsString(n));
        rejectedOut.write('\n');
      } catch (IOException e) {
        throw new PrepareException(out.temp() + ": cannot write rejected.jsonl: " + e.getMessage(), e);
      }
    }

    // ---- stages 7 and 8: split, format, write

    private PrepareReport write(InputFiles inputs, List<Candidate> selected) {
      int n = selected.size();
      int nVal = n == 0 ? 0 : (int) Math.min(n - 1, Math.round(n * o.valFraction()));
      List<Integer> perm = new ArrayList<>(n);
      for (int i = 0; i < n; i++) {
        perm.add(i);
      }
      Collections.shuffle(perm, new Random(o.seed()));
      boolean[] isVal = new boolean[n];
      for (int i = 0; i < nVal; i++) {
        isVal[perm.get(i)] = true;
      }
      String trainSha;
      String valSha;
      try (Digested train = new Digested(out.temp().resolve("train.jsonl"));
          Digested val = new Digested(out.temp().resolve("val.jsonl"))) {
        for (int i = 0; i < n; i++) {
          Candidate c = selected.get(i);
          String prompt = template.prompt(c.question());
          String completion = template.completion(c.answer(), c.explanation());
          Example e = new Example(c.id(), c.question(), c.options(), c.answer(), c.explanation(),
              c.subject(), prompt, completion, prompt + completion);
          (isVal[i] ? val : train).line(json.writeValueAsString(e));
        }
        trainSha = train.sha256();
        valSha = val.sha256();
      } catch (IOException e) {
        throw new PrepareException(out.temp() + ": cannot write the training set: "
            + e.getMessage(), e);
      }
      long nTrain = n - nVal;
      ObjectNode report = report(inputs, n, nTrain, nVal, trainSha, valSha);
      try {
        json.writerWithDefaultPrettyPrinter().writeValue(
            out.temp().resolve("report.json").toFile(), report);
      } catch (IOException e) {
        throw new PrepareException(out.temp() + ": cannot write report.json: " + e.getMessage(), e);
      }
      List<PrepareReport.Line> lines = new ArrayList<>();
      lines.add(new PrepareReport.Line("read", records,
          "records in " + inputs.files().size() + " file" + (inputs.files().size() == 1 ? "" : "s")));
      lines.add(new PrepareReport.Line("1 read", -rejectedRead,
          "rejected: unparseable or missing a field (rejected.jsonl)"));
      lines.add(new PrepareReport.Line("2 choice type", -choiceDropped,
          "not " + o.choiceType().name().toLowerCase(Locale.ROOT)));
      lines.add(new PrepareReport.Line("3 answer", -rejectedAnswer,
          "rejected: cop not an option (rejected.jsonl)"));
      lines.add(new PrepareReport.Line("4 cleanup", cleanedRows,
          "explanations changed (" + o.cleaner().name().toLowerCase(Locale.ROOT) + ")"));
      lines.add(new PrepareReport.Line("5 filter", -empty, "empty explanation"));
      lines.add(new PrepareReport.Line("5 filter", -equalsAnswer, "explanation = answer"));
      lines.add(new PrepareReport.Line("5 filter", -tooFewWords,
          "fewer than " + o.minWords() + " words"));
      lines.add(new PrepareReport.Line("5 filter", -duplicates, "repeated question and answer"));
      lines.add(new PrepareReport.Line("6 select", -(passed - n),
          "beyond --limit " + o.limit() + " (" + o.order().name().toLowerCase(Locale.ROOT) + ")"));
      lines.add(new PrepareReport.Line("7 split", nTrain, "train.jsonl"));
      lines.add(new PrepareReport.Line("7 split", nVal, "val.jsonl"));
      return new PrepareReport(out.target(), lines, nTrain, nVal, rejectedRead + rejectedAnswer);
    }

    private ObjectNode report(InputFiles inputs, int n, long nTrain, long nVal, String trainSha,
        String valSha) {
      ObjectNode r = json.createObjectNode();
      ObjectNode in = r.putObject("input");
      in.put("path", o.input().toString());
      in.set("files", filesReport);
      ArrayNode skipped = in.putArray("skipped_files");
      inputs.skipped().forEach(p -> skipped.add(p.toString()));
      ObjectNode opt = r.putObject("options");
      opt.put("split", o.split());
      opt.put("choice_type", lower(o.choiceType()));
      if (o.copBase() == null) {
        opt.putNull("cop_base");
      } else {
        opt.put("cop_base", o.copBase());
      }
      opt.put("cleaner", lower(o.cleaner()));
      opt.put("min_words", o.minWords());
      opt.put("limit", o.limit());
      opt.put("order", lower(o.order()));
      opt.put("seed", o.seed());
      opt.put("val_fraction", o.valFraction());
      opt.put("template", o.template() == null ? "recipe" : o.template().toString());
      opt.put("strict", o.strict());
      ObjectNode st = r.putObject("stages");
      ObjectNode read = st.putObject("1_read");
      read.put("records", records);
      read.put("rejected", rejectedRead);
      read.put("rejected_unparseable", rejectedBy.getOrDefault("read.unparseable", 0L));
      read.put("rejected_missing_field", rejectedBy.getOrDefault("read.missing_field", 0L));
      ObjectNode ct = st.putObject("2_choice_type");
      ct.put("keep", lower(o.choiceType()));
      ct.put("dropped", choiceDropped);
      ObjectNode ans = st.putObject("3_answer");
      ans.put("rejected", rejectedAnswer);
      ans.put("rejected_cop_not_integer", rejectedBy.getOrDefault("answer.cop_not_integer", 0L));
      ans.put("rejected_no_answer", rejectedBy.getOrDefault("answer.no_answer", 0L));
      ans.put("rejected_cop_out_of_range", rejectedBy.getOrDefault("answer.cop_out_of_range", 0L));
      ObjectNode cl = st.putObject("4_cleanup");
      cl.put("cleaner", lower(o.cleaner()));
      cl.put("rows_changed", cleanedRows);
      ObjectNode rules = cl.putObject("rows_changed_by_rule");
      long[] counts = cleaner.changedCounts();
      for (int i = 0; i < counts.length; i++) {
        rules.put(cleaner.rules().get(i), counts[i]);
      }
      if (cleaner instanceof AnswerRestatementCleaner m) {
        cl.put("prefix_letter_not_cop", m.letterNotCop());
      }
      ObjectNode fl = st.putObject("5_filter");
      fl.put("empty_explanation", empty);
      fl.put("explanation_equals_answer", equalsAnswer);
      fl.put("fewer_than_min_words", tooFewWords);
      fl.put("repeated_question", duplicates);
      fl.put("kept", passed);
      ObjectNode sel = st.putObject("6_select");
      sel.put("order", lower(o.order()));
      sel.put("limit", o.limit());
      sel.put("selected", n);
      sel.put("dropped", passed - n);
      ObjectNode sp = st.putObject("7_split");
      sp.put("train", nTrain);
      sp.put("val", nVal);
      ObjectNode fm = st.putObject("8_format");
      fm.put("template", o.template() == null ? "recipe" : o.template().toString());
      fm.put("template_text", template.text());
      ObjectNode outs = r.putObject("outputs");
      outs.putObject("train.jsonl").put("rows", nTrain).put("sha256", trainSha);
      outs.putObject("val.jsonl").put("rows", nVal).put("sha256", valSha);
      outs.putObject("rejected.jsonl").put("rows", rejectedRead + rejectedAnswer);
      return r;
    }

    private static String lower(Enum<?> e) {
      return e.name().toLowerCase(Locale.ROOT);
    }
  }

  /** Smaller is selected first; ties by source order. Plain comparisons: this runs per row. */
  private static Comparator<Candidate> order(PrepareOptions.Order order) {
    return switch (order) {
      case SHORTEST -> (a, b) -> a.words() != b.words()
          ? Integer.compare(a.words(), b.words()) : Long.compare(a.seq(), b.seq());
      case LONGEST -> (a, b) -> a.words() != b.words()
          ? Integer.compare(b.words(), a.words()) : Long.compare(a.seq(), b.seq());
      case RANDOM -> (a, b) -> a.randomKey() != b.randomKey()
          ? Long.compare(a.randomKey(), b.randomKey()) : Long.compare(a.seq(), b.seq());
      case SOURCE -> (a, b) -> Long.compare(a.seq(), b.seq());
    };
  }

  /** SplitMix64's finaliser (Steele, Lea, Flood 2014): a seeded random key per row. */
  static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  private static boolean blank(String s) {
    return s == null || s.isBlank();
  }

  /** "2", " 2 ", "2.0" to 2; anything else to null. */
  static Integer integer(String s) {
    if (s == null) {
      return null;
    }
    if (s.length() == 1 && s.charAt(0) >= '0' && s.charAt(0) <= '9') {
      return s.charAt(0) - '0';
    }
    try {
      BigDecimal d = new BigDecimal(s.strip());
      return d.stripTrailingZeros().scale() <= 0 ? d.intValueExact() : null;
    } catch (NumberFormatException | ArithmeticException e) {
      return null;
    }
  }

  /** A JSON lines file with its SHA-256 computed as it is written. */
  private static final class Digested implements AutoCloseable {
    private final MessageDigest digest;
    private final BufferedWriter w;

    Digested(Path p) throws IOException {
      try {
        digest = MessageDigest.getInstance("SHA-256");
      } catch (NoSuchAlgorithmException e) {
        throw new IllegalStateException(e);
      }
      OutputStream os = new DigestOutputStream(Files.newOutputStream(p), digest);
      w = new BufferedWriter(new OutputStreamWriter(os, StandardCharsets.UTF_8), 1 << 16);
    }

    void line(String s) throws IOException {
      w.write(s);
      w.write('\n');
    }

    String sha256() throws IOException {
      w.flush();
      return HexFormat.of().formatHex(digest.digest());
    }

    @Override
    public void close() throws IOException {
      w.close();
    }
  }
}
