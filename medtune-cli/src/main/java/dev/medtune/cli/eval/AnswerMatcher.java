package dev.medtune.cli.eval;

import java.text.Normalizer;
import java.util.List;
import java.util.Locale;

/**
 * Matches a generated answer to one of a question's options. The recipe's completion is
 * {@code "{answer}. {explanation}\n"}, so the answer is the generated text's first line, and an
 * option matches when that line is the option's text, or starts with it followed by the template's
 * {@code "."} separator (or by whitespace). First the texts as they are (exact), then both
 * normalised (Unicode NFKC, lower case, punctuation dropped, runs of whitespace as one space). When
 * several options match, the longest wins ("Both A and B" over "Both"); a tie between equally long
 * options (duplicates, or options equal after normalising), or no match, is unmatched.
 */
public final class AnswerMatcher {
  private AnswerMatcher() {}

  /** How a generated answer was matched. */
  public enum Kind { EXACT, NORMALISED, UNMATCHED }

  /** The matched option (or -1) and how. */
  public record Match(int option, Kind kind) {}

  public static Match match(String generated, List<String> options) {
    String line = firstLine(generated).strip();
    int exact = longestMatch(line, options, false);
    if (exact >= 0) {
      return new Match(exact, Kind.EXACT);
    }
    int norm = longestMatch(normalise(line), options, true);
    if (norm >= 0) {
      return new Match(norm, Kind.NORMALISED);
    }
    return new Match(-1, Kind.UNMATCHED);
  }

  /** The answer line: the text up to the first line break. */
  static String firstLine(String s) {
    int nl = s.indexOf('\n');
    return nl < 0 ? s : s.substring(0, nl);
  }

  static String normalise(String s) {
    String t = Normalizer.normalize(s, Normalizer.Form.NFKC).toLowerCase(Locale.ROOT);
    t = t.replaceAll("[\\p{P}\\p{S}]", " ");
    return t.replaceAll("\\s+", " ").strip();
  }

  private static int longestMatch(String line, List<String> options, boolean normalised) {
    int best = -1;
    int bestLen = -1;
    boolean tie = false;
    for (int k = 0; k < options.size(); k++) {
      String opt = normalised ? normalise(options.get(k)) : options.get(k).strip();
      if (opt.isEmpty() || !matches(line, opt, normalised)) {
        continue;
      }
      if (opt.length() > bestLen) {
        best = k;
        bestLen = opt.length();
        tie = false;
      } else if (opt.length() == bestLen) {
        tie = true; // two options match equally well (equal after normalising, or duplicates)
      }
    }
    return tie ? -1 : best;
  }

  private static boolean matches(String line, String opt, boolean normalised) {
    if (line.equals(opt)) {
      return true;
    }
    if (!line.startsWith(opt)) {
      return false;
    }
    char next = line.charAt(opt.length());
    // normalised text has no punctuation left: the separator became a space
    return normalised ? next == ' ' : next == '.' || Character.isWhitespace(next);
  }
}
