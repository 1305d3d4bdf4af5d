package dev.medtune.data;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * The original notebook's explanation cleanup, exactly: eight Python regular expressions applied in
 * order, each as {@code re.sub(p, "", s)} (../shared/reference/seed-facts.md). Kept for comparison;
 * it damages text (the first word is always lost, "Chronic" becomes "hronic").
 *
 * <p>Python's {@code re} on {@code str} differs from {@code java.util.regex}; the translation keeps
 * Python's meaning: {@code .} matches everything but {@code \n} (UNIX_LINES), {@code \s} is Python's
 * {@code str.isspace()} (Unicode White_Space plus U+001C..U+001F), {@code \w} is
 * {@code str.isalnum()} or {@code _} (letters and numbers, no combining marks). The test
 * {@code NotebookCleanerParityTest} checks the translation against CPython's output.
 */
final class NotebookCleaner extends ExplanationCleaner {

  /** The patterns as the notebook wrote them. */
  static final List<String> PYTHON_PATTERNS = List.of(
      "^\\s",
      "Ans.* [^\\w\\s][A-Za-z][^\\w\\s]",
      "ANS.* [^\\w\\s][A-Za-z][^\\w\\s]",
      "^[a-dA-D]*",
      "^\\S*\\s",
      "^i\\.e\\.",
      "^[^\\w\\s]",
      "^\\s");

  private static final String SPACE = "\\s\\x{1c}-\\x{1f}";
  private static final String WORD = "\\p{L}\\p{N}_";

  private final List<Pattern> patterns = new ArrayList<>();

  NotebookCleaner() {
    super(PYTHON_PATTERNS.size());
    for (String p : PYTHON_PATTERNS) {
      patterns.add(Pattern.compile(toJava(p), Pattern.UNIX_LINES | Pattern.UNICODE_CHARACTER_CLASS));
    }
  }

  /** Rewrites the classes of one of the notebook's patterns with Python's meaning. */
  static String toJava(String python) {
    // markers first, so that a replacement is never rewritten by the next one
    return python
        .replace("[^\\w\\s]", "\u0000A")
        .replace("\\S", "\u0000B")
        .replace("\\s", "\u0000C")
        .replace("\u0000A", "[^" + WORD + SPACE + "]")
        .replace("\u0000B", "[^" + SPACE + "]")
        .replace("\u0000C", "[" + SPACE + "]");
  }

  /** "1: ^\\s" ... "8: ^\\s": numbered, since the first and the last pattern are the same. */
  @Override
  List<String> rules() {
    return java.util.stream.IntStream.range(0, PYTHON_PATTERNS.size())
        .mapToObj(i -> (i + 1) + ": " + PYTHON_PATTERNS.get(i)).toList();
  }

  @Override
  String clean(String explanation, List<String> options, int answerIndex) {
    String s = explanation;
    for (int i = 0; i < patterns.size(); i++) {
      String t = patterns.get(i).matcher(s).replaceAll("");
      if (!t.equals(s)) {
        changed(i);
        s = t;
      }
    }
    return s;
  }
}
