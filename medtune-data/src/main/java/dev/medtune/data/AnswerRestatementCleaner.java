package dev.medtune.data;

import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * medtune's explanation cleanup: removes only the text that restates the answer, which the
 * training completion already states ({@code "{answer}. {explanation}"}).
 *
 * <ul>
 *   <li>answer prefixes: {@code Ans. (c)}, {@code Ans. is 'd'}, {@code Ans) C}, {@code Ans : B},
 *       {@code Answer is D}, {@code Ans is 'c' i.e.}, {@code Answer- B.}, {@code Ans: (b)},
 *       {@code Ans, is 'a'}, {@code ANS. A}, {@code Answer is option4,}, and a bare {@code Ans.}
 *       before text;
 *   <li>a bare letter that is the answer's letter: {@code C i.e. Mite}, {@code C. Deficit ...}
 *       (the dot form only when the answer text follows, so that "C. difficile" survives);
 *   <li>the answer text right after such a prefix, also when glued to the next sentence
 *       ({@code Ans: B. Pre-Botzinger complexRef: Ganong} keeps {@code Ref: Ganong}), or in
 *       brackets ({@code Ans. B (Acetaminophen)}, or {@code (Warfarin)} opening the explanation).
 * </ul>
 *
 * Nothing else is touched: the answer text is removed only where it matches the option letter for
 * letter (case, spaces and punctuation aside) and ends at a word boundary or where a capitalised
 * word is glued to it. Letters of the prefix that disagree with {@code cop} are counted.
 */
final class AnswerRestatementCleaner extends ExplanationCleaner {

  static final int ANSWER_PREFIX = 0;
  static final int LETTER_PREFIX = 1;
  static final int ANSWER_TEXT = 2;
  static final int BRACKETED_ANSWER = 3;
  static final int TRIM = 4;
  static final List<String> RULES =
      List.of("answer_prefix", "letter_prefix", "answer_text", "bracketed_answer", "trim");

  private static final String SEP = "[\\s.:;,)\\-\u2013\u2014]";
  private static final String IE = "(?:(?i:i\\.?\\s?e)(?![\\p{L}\\p{N}])\\.?)";
  private static final String LETTER =
      "(?:(?i:option|opt)[\\s.]*(?<num>[1-4])(?!\\p{N})"
          + "|['`\u2018\"\u201c](?<q>[a-dA-D])['`\u2019\"\u201d]"
          + "|\\((?<p>[a-dA-D])\\)"
          + "|\\[(?<b>[a-dA-D])]"
          // a bare letter only where it cannot be the article "a" or a word's first letter
          + "|(?<bare>[a-dA-D])(?=$|[.):;,(\\[\\-\u2013\u2014]|\\s+(?:" + IE
          + "|[.):;,(\\[\\p{Lu}\\p{N}'\"\u2018\u201c]|$)))";

  /** "Ans"/"Answer", separators, optional "is", optional letter, optional "i.e.". */
  private static final Pattern ANS = Pattern.compile(
      "^\\s*(?i:answer|ans)(?![\\p{L}])(?<sep>" + SEP + "*)"
          + "(?<is>(?i:is)(?![\\p{L}])" + SEP + "*)?"
          + "(?:" + LETTER + ")?"
          + "(?<ie>" + SEP + "*" + IE + ")?" + SEP + "*",
      Pattern.UNICODE_CHARACTER_CLASS);

  /** "C i.e. Mite": a bare letter and "i.e.". */
  private static final Pattern LETTER_IE = Pattern.compile(
      "^\\s*(?<l>[a-dA-D])[\\s.:,]+" + IE + SEP + "*", Pattern.UNICODE_CHARACTER_CLASS);

  /** "C. Deficit", "(c) Thromboxane", "c) ...": a letter that must be followed by the answer. */
  private static final Pattern LETTER_DOT = Pattern.compile(
      "^\\s*(?:\\((?<p>[a-dA-D])\\)|(?<l>[a-dA-D])[.)])\\s*", Pattern.UNICODE_CHARACTER_CLASS);

  private static final Pattern REF = Pattern.compile("(?i)ref(?![a-z])");

  private long letterNotCop;

  AnswerRestatementCleaner() {
    super(RULES.size());
  }

  @Override
  List<String> rules() {
    return RULES;
  }

  /** Rows whose prefix names a letter other than the one {@code cop} picks. */
  long letterNotCop() {
    return letterNotCop;
  }

  @Override
  String clean(String explanation, List<String> options, int answerIndex) {
    String s = explanation;
    int first = 0;
    while (first < s.length() && Character.isWhitespace(s.charAt(first))) {
      first++;
    }
    if (first == s.length() || "aAbBcCdD([".indexOf(s.charAt(first)) < 0) {
      // every form this cleaner removes starts with one of these; most explanations do not
      return finish(s, s);
    }
    String answer = options.get(answerIndex);
    char copLetter = (char) ('a' + answerIndex);
    int at = -1;
    boolean removeAnswer = false;

    Matcher m = ANS.matcher(s);
    if (m.lookingAt()) {
      Character letter = letter(m);
      boolean punctuated = !m.group("sep").isBlank();
      if (letter != null || m.group("ie") != null || punctuated) {
        at = m.end();
        changed(ANSWER_PREFIX);
        removeAnswer = letter != null || m.group("ie") != null;
        if (letter != null && letter != copLetter) {
          letterNotCop++;
        }
      }
    }
    if (at < 0) {
      Matcher ie = LETTER_IE.matcher(s);
      if (ie.lookingAt() && Character.toLowerCase(ie.group("l").charAt(0)) == copLetter) {
        at = ie.end();
        removeAnswer = true;
        changed(LETTER_PREFIX);
      }
    }
    if (at < 0) {
      Matcher dot = LETTER_DOT.matcher(s);
      if (dot.lookingAt()) {
        String l = dot.group("p") != null ? dot.group("p") : dot.group("l");
        if (Character.toLowerCase(l.charAt(0)) == copLetter) {
          int end = answerEnd(s, dot.end(), answer);
          if (end >= 0) {
            changed(LETTER_PREFIX);
            changed(ANSWER_TEXT);
            return finish(s.substring(skipSeparators(s, end)), s);
          }
        }
      }
    }
    if (at < 0) {
      int end = bracketedEnd(s, 0, answer);
      if (end >= 0) {
        changed(BRACKETED_ANSWER);
        return finish(s.substring(skipSeparators(s, end)), s);
      }
      return finish(s, s);
    }
    if (removeAnswer) {
      int end = bracketedEnd(s, at, answer);
      if (end < 0) {
        end = answerEnd(s, at, answer);
      }
      if (end >= 0) {
        changed(ANSWER_TEXT);
        at = skipSeparators(s, end);
      }
    }
    return finish(s.substring(at), s);
  }

  private String finish(String cleaned, String original) {
    String t = cleaned.strip();
    if (cleaned == original && !t.equals(original)) {
      changed(TRIM);
    }
    return t;
  }

  private static Character letter(Matcher m) {
    if (m.group("num") != null) {
      return (char) ('a' + m.group("num").charAt(0) - '1');
    }
    for (String g : new String[] {"q", "p", "b", "bare"}) {
      if (m.group(g) != null) {
        return Character.toLowerCase(m.group(g).charAt(0));
      }
    }
    return null;
  }

  private static int skipSeparators(String s, int i) {
    while (i < s.length()) {
      char c = s.charAt(i);
      if (Character.isWhitespace(c) || Character.isSpaceChar(c) || ".,;:*-\u2013\u2014".indexOf(c) >= 0) {
        i++;
      } else {
        break;
      }
    }
    return i;
  }

  /** End of "(answer)" or "[answer]" starting at {@code from} (after spaces), or -1. */
  static int bracketedEnd(String s, int from, String answer) {
    int i = from;
    while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
      i++;
    }
    if (i >= s.length() || (s.charAt(i) != '(' && s.charAt(i) != '[')) {
      return -1;
    }
    char close = s.charAt(i) == '(' ? ')' : ']';
    int j = s.indexOf(close, i + 1);
    if (j < 0) {
      return -1;
    }
    return folded(s.substring(i + 1, j)).equals(folded(answer)) && !folded(answer).isEmpty()
        ? j + 1 : -1;
  }

  /**
   * End of the answer text starting at {@code from}: the letters and digits of the answer, in
   * order and case-insensitively, with any spaces or punctuation between them; it must end at a
   * word boundary, or where a capitalised word ("Ref", "The") or "REF" is glued to it. -1 if the
   * text there is not the answer.
   */
  static int answerEnd(String s, int from, String answer) {
    String want = folded(answer);
    if (want.isEmpty()) {
      return -1;
    }
    int i = from;
    while (i < s.length() && !Character.isLetterOrDigit(s.charAt(i)) && s.charAt(i) != '('
        && s.charAt(i) != '[') {
      i++;
    }
    int k = 0;
    int last = -1;
    while (i < s.length() && k < want.length()) {
      int c = s.codePointAt(i);
      if (Character.isLetterOrDigit(c)) {
        if (Character.toLowerCase(c) != want.codePointAt(k)) {
          return -1;
        }
        k += Character.charCount(want.codePointAt(k));
        last = i;
      }
      i += Character.charCount(c);
    }
    if (k < want.length()) {
      return -1;
    }
    int end = last + Character.charCount(s.codePointAt(last));
    if (end == s.length() || !Character.isLetterOrDigit(s.codePointAt(end))) {
      return end;
    }
    // glued: "complexRef: Ganong", "AllThe NT scan", "GREF:"
    int next = s.codePointAt(end);
    int after = end + Character.charCount(next);
    boolean capitalisedWord = Character.isUpperCase(next) && after < s.length()
        && Character.isLowerCase(s.codePointAt(after));
    if (capitalisedWord || REF.matcher(s).region(end, s.length()).lookingAt()) {
      return end;
    }
    return -1;
  }

  /** Letters and digits only, lower case: how answer texts are compared. */
  static String folded(String s) {
    StringBuilder b = new StringBuilder(s.length());
    s.codePoints().filter(Character::isLetterOrDigit)
        .forEach(c -> b.appendCodePoint(Character.toLowerCase(c)));
    return b.toString();
  }
}
