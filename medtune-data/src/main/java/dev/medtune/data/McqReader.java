package dev.medtune.data;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * Reads multiple-choice questions for evaluation, from either form:
 *
 * <ul>
 *   <li>MedMCQA as {@code prepare} reads it (parquet, CSV, JSON lines or a JSON array, through the
 *       same DuckDB reader): {@code question}, {@code opa..opd}, {@code cop} (0-based on the hub,
 *       1-based in the official release: told apart as {@code prepare} does, by a 0 or a 4 seen,
 *       parquet being the hub's 0-based form; else {@code copBase} must be given),
 *       {@code subject_name} when present;</li>
 *   <li>the "choices" JSON lines of the dev split as shared with this project, one object a line:
 *       {@code {"question": "...", "choices": ["A. ...", "B. ...", "C. ...", "D. ..."],
 *       "answer": 0-3}}, optionally with {@code id} and {@code subject} (or {@code subject_name}).
 *       The prefix {@code "A. "} is removed from an option when it carries the option's own letter,
 *       so that the option text is what {@code opa..opd} hold and what the recipe's template puts
 *       after "### Answer:".</li>
 * </ul>
 *
 * <p>A record that is not a usable question (an option missing or empty, the answer index out of
 * range, no answer, not JSON) is returned as {@link Rejected} with its place and reason, for the
 * report to count: never dropped silently. A file with no records, or none usable, is an error.
 */
public final class McqReader {
  private static final ObjectMapper JSON = new ObjectMapper();

  private McqReader() {}

  /** A record that is not a usable question: where it is (file, line or row) and why. */
  public record Rejected(String where, String reason) {}

  /** The questions of a file and the records rejected, both in file order. */
  public record McqSet(List<McqQuestion> questions, List<Rejected> rejected) {}

  /**
   * Reads a file in either form.
   *
   * @param copBase 0 or 1 to say how MedMCQA's {@code cop} counts, or null to tell it from the data
   */
  public static McqSet read(Path file, Integer copBase) throws IOException {
    return read(file, "validation", copBase);
  }

  /**
   * Reads a file in either form, or the data files of a folder as {@code prepare} finds them (the
   * hub's {@code data/validation-00000-of-00001.parquet} layout: only the files of {@code split}
   * when the names say their split), in path order.
   *
   * @param copBase 0 or 1 to say how MedMCQA's {@code cop} counts, or null to tell it from the data
   *     of each file
   */
  public static McqSet read(Path input, String split, Integer copBase) throws IOException {
    if (Files.isRegularFile(input) && isBlank(input)) {
      throw new IllegalArgumentException(input + ": no questions (the file is empty)");
    }
    List<Path> files;
    try {
      files = InputFiles.find(input, split).files();
    } catch (PrepareException e) {
      throw new IllegalArgumentException(e.getMessage(), e);
    }
    List<McqQuestion> questions = new ArrayList<>();
    List<Rejected> rejected = new ArrayList<>();
    for (Path file : files) {
      if (isBlank(file)) {
        rejected.add(new Rejected(file.toString(), "the file is empty"));
        continue;
      }
      McqSet set = isChoicesForm(file) ? readChoices(file) : readMedMcqa(file, copBase);
      questions.addAll(set.questions());
      rejected.addAll(set.rejected());
    }
    if (questions.isEmpty()) {
      if (rejected.isEmpty()) {
        throw new IllegalArgumentException(input + ": no questions (the file is empty)");
      }
      Rejected first = rejected.get(0);
      throw new IllegalArgumentException(input + ": no usable questions; all "
          + rejected.size() + " records rejected, the first at " + first.where() + ": "
          + first.reason());
    }
    return new McqSet(questions, rejected);
  }

  /** Whether the file holds nothing but whitespace (after decompressing {@code .gz}). */
  private static boolean isBlank(Path file) throws IOException {
    try (var in = InputFormat.open(file)) {
      int b;
      while ((b = in.read()) >= 0) {
        if (!Character.isWhitespace(b)) {
          return false;
        }
      }
      return true;
    }
  }

  /** Whether the file's first record is in the "choices" form (a JSON object with {@code choices}). */
  public static boolean isChoicesForm(Path file) throws IOException {
    if (InputFormat.isGzip(file)) {
      return false;
    }
    try (BufferedReader in = new BufferedReader(
        new InputStreamReader(Files.newInputStream(file), StandardCharsets.UTF_8))) {
      String line;
      while ((line = in.readLine()) != null) {
        if (line.isBlank()) {
          continue;
        }
        try {
          JsonNode node = JSON.readTree(line);
          return node != null && node.isObject() && node.has("choices");
        } catch (JsonProcessingException e) {
          return false;
        }
      }
      return false;
    } catch (java.nio.charset.MalformedInputException | UncheckedIOException e) {
      return false;
    }
  }

  // ------------------------------------------------------------------ the choices form

  static McqSet readChoices(Path file) throws IOException {
    List<McqQuestion> questions = new ArrayList<>();
    List<Rejected> rejected = new ArrayList<>();
    try (BufferedReader in = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      String line;
      int lineNo = 0;
      while ((line = in.readLine()) != null) {
        lineNo++;
        if (line.isBlank()) {
          continue;
        }
        try {
          questions.add(parseChoices(file, lineNo, line));
        } catch (IllegalArgumentException e) {
          rejected.add(new Rejected(file + " line " + lineNo, e.getMessage()));
        }
      }
    }
    return new McqSet(questions, rejected);
  }

  private static McqQuestion parseChoices(Path file, int lineNo, String line) {
    JsonNode node;
    try {
      node = JSON.readTree(line);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("not a JSON object (" + e.getOriginalMessage() + ")");
    }
    if (node == null || !node.isObject()) {
      throw new IllegalArgumentException("expected a JSON object, found " + line.strip());
    }
    JsonNode q = node.get("question");
    if (q == null || !q.isTextual() || q.asText().isBlank()) {
      throw new IllegalArgumentException("'question' is missing or empty");
    }
    JsonNode choices = node.get("choices");
    if (choices == null || !choices.isArray()) {
      throw new IllegalArgumentException(
          "'choices' is missing (expected a list of options like [\"A. ...\", \"B. ...\"])");
    }
    if (choices.size() < 2) {
      throw new IllegalArgumentException("expected at least 2 options in 'choices', found "
          + choices.size());
    }
    List<String> options = new ArrayList<>();
    for (int k = 0; k < choices.size(); k++) {
      JsonNode c = choices.get(k);
      String letter = String.valueOf((char) ('A' + k));
      if (c == null || !c.isTextual()) {
        throw new IllegalArgumentException("option " + letter + " is not a string");
      }
      String text = stripLetter(c.asText(), k).strip();
      if (text.isEmpty()) {
        throw new IllegalArgumentException("option " + letter + " is empty");
      }
      options.add(text);
    }
    JsonNode a = node.get("answer");
    if (a == null || !a.isIntegralNumber() || !a.canConvertToInt()) {
      throw new IllegalArgumentException("'answer' is missing or not a whole number (expected the"
          + " 0-based index of the correct option)");
    }
    int answer = a.intValue();
    if (answer < 0 || answer >= options.size()) {
      throw new IllegalArgumentException("answer " + answer + " is out of range (expected 0 to "
          + (options.size() - 1) + ")");
    }
    String id = text(node, "id");
    String subject = text(node, "subject");
    if (subject == null) {
      subject = text(node, "subject_name");
    }
    return new McqQuestion(id == null ? file.getFileName() + ":" + lineNo : id,
        q.asText(), options, answer, subject);
  }

  /** "A. Antegrade" as option 0 is " Antegrade"; a prefix with another letter is kept. */
  static String stripLetter(String choice, int index) {
    String prefix = (char) ('A' + index) + ".";
    if (choice.startsWith(prefix) && (choice.length() == prefix.length()
        || Character.isWhitespace(choice.charAt(prefix.length())))) {
      return choice.substring(prefix.length());
    }
    return choice;
  }

  private static String text(JsonNode node, String field) {
    JsonNode v = node.get(field);
    return v == null || v.isNull() || v.asText().isBlank() ? null : v.asText();
  }

  // ------------------------------------------------------------------ MedMCQA

  static McqSet readMedMcqa(Path file, Integer copBase) throws IOException {
    List<MedMcqaRow> rows = new ArrayList<>();
    List<Rejected> rejected = new ArrayList<>();
    Path scratch = Files.createTempDirectory("medtune-eval-read");
    try {
      new MedMcqaReader(scratch).read(file, null, new MedMcqaReader.Sink() {
        @Override
        public void row(MedMcqaRow row) {
          rows.add(row);
        }

        @Override
        public void reject(String source, long row, long line, String id, String reason) {
          rejected.add(new Rejected(place(source, row, line), reason));
        }
      });
    } finally {
      try (Stream<Path> s = Files.walk(scratch)) {
        for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
          Files.deleteIfExists(p);
        }
      }
    }
    int base = copBase != null ? copBase : copBase(file, rows);
    List<McqQuestion> questions = new ArrayList<>();
    for (MedMcqaRow r : rows) {
      String problem = problem(r, base);
      if (problem != null) {
        rejected.add(new Rejected(place(r.source(), r.row(), -1), problem));
        continue;
      }
      List<String> options = r.options().stream().map(String::strip).toList();
      questions.add(new McqQuestion(blank(r.id()) ? file.getFileName() + ":" + r.row() : r.id(),
          r.question(), options, integer(r.cop()) - base,
          blank(r.subject()) ? null : r.subject().strip()));
    }
    return new McqSet(questions, rejected);
  }

  /** How {@code cop} counts, by prepare's rule ({@link CopBase}). */
  private static int copBase(Path file, List<MedMcqaRow> rows) {
    int undecided = 0;
    for (MedMcqaRow r : rows) {
      Integer cop = integer(r.cop());
      Integer base = CopBase.decidedBy(cop);
      if (base != null) {
        return base;
      }
      if (cop != null && cop > 0) {
        undecided++;
      }
    }
    Integer byForm = CopBase.byForm(file);
    if (byForm != null || undecided == 0) {
      return 0;
    }
    throw new IllegalArgumentException(CopBase.undecidable(file, undecided));
  }

  private static String problem(MedMcqaRow r, int base) {
    if (blank(r.question())) {
      return "the question is missing";
    }
    for (int i = 0; i < r.options().size(); i++) {
      if (blank(r.options().get(i))) {
        return "option op" + (char) ('a' + i) + " is missing";
      }
    }
    Integer cop = integer(r.cop());
    if (cop == null) {
      return "cop '" + r.cop() + "' is not an option number";
    }
    if (cop == -1) {
      return "cop -1: the record has no answer (a test split)";
    }
    int index = cop - base;
    if (index < 0 || index >= r.options().size()) {
      return "cop " + cop + " is outside the options (" + (base == 0 ? "0-3" : "1-4") + " with "
          + base + "-based cop)";
    }
    return null;
  }

  private static String place(String source, long row, long line) {
    return source + (row > 0 ? " row " + row : line > 0 ? " line " + line : "");
  }

  private static boolean blank(String s) {
    return s == null || s.isBlank();
  }

  private static Integer integer(String s) {
    return Prepare.integer(s);
  }
}
