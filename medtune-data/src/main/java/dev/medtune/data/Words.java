package dev.medtune.data;

import java.text.Normalizer;
import java.util.Locale;

/** Word counting and text normalisation with the semantics the original Python recipe used. */
final class Words {
  private Words() {}

  /**
   * Python's {@code str.isspace()}: Unicode White_Space plus the separators U+001C..U+001F
   * (bidi types B and S), which Java's {@code Character.isWhitespace} misses for U+00A0 etc.
   */
  static boolean isPythonSpace(int c) {
    if (c < 0x80) {
      return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
    }
    return (c >= 0x1c && c <= 0x1f) || Character.isWhitespace(c) || Character.isSpaceChar(c)
        || c == 0x85;
  }

  /** {@code len(s.split())} in Python: the recipe counted explanation words this way. */
  static int count(String s) {
    int n = 0;
    boolean in = false;
    for (int i = 0; i < s.length(); i++) {
      boolean space = isPythonSpace(s.charAt(i));
      if (!space && !in) {
        n++;
      }
      in = !space;
    }
    return n;
  }

  /**
   * The form used to compare texts (duplicate questions, explanation equal to the answer): NFKC,
   * lower case, runs of whitespace as one space, no surrounding spaces or final full stops.
   */
  static String normalise(String s) {
    String t = (ascii(s) ? s : Normalizer.normalize(s, Normalizer.Form.NFKC))
        .toLowerCase(Locale.ROOT);
    StringBuilder b = new StringBuilder(t.length());
    boolean space = false;
    for (int i = 0; i < t.length(); i++) {
      char c = t.charAt(i);
      if (isPythonSpace(c)) {
        space = b.length() > 0;
      } else {
        if (space) {
          b.append(' ');
          space = false;
        }
        b.append(c);
      }
    }
    int end = b.length();
    while (end > 0 && (b.charAt(end - 1) == '.' || b.charAt(end - 1) == ' ')) {
      end--;
    }
    b.setLength(end);
    return b.toString();
  }

  /** NFKC leaves ASCII as it is; checking is much cheaper than normalising. */
  private static boolean ascii(String s) {
    for (int i = 0; i < s.length(); i++) {
      if (s.charAt(i) >= 0x80) {
        return false;
      }
    }
    return true;
  }
}
