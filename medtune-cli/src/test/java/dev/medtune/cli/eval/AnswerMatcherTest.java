package dev.medtune.cli.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.medtune.cli.eval.AnswerMatcher.Kind;
import dev.medtune.cli.eval.AnswerMatcher.Match;
import java.util.List;
import org.junit.jupiter.api.Test;

class AnswerMatcherTest {
  // a real MedMCQA question's options (validation-sample.csv)
  static final List<String> OPTS = List.of(
      "Histamine receptors", "Bradykinin receptors", "Adenosine receptors", "Imidazoline receptors");

  @Test
  void exactWithTheTemplatesSeparator() {
    assertEquals(new Match(2, Kind.EXACT),
        AnswerMatcher.match("Adenosine receptors. Theophylline blocks them.\n", OPTS));
    assertEquals(new Match(0, Kind.EXACT), AnswerMatcher.match("Histamine receptors", OPTS));
    assertEquals(new Match(3, Kind.EXACT), AnswerMatcher.match("  Imidazoline receptors\nmore", OPTS));
  }

  @Test
  void normalisedCasePunctuationWhitespace() {
    assertEquals(new Match(1, Kind.NORMALISED),
        AnswerMatcher.match("bradykinin   RECEPTORS!", OPTS));
    assertEquals(new Match(1, Kind.NORMALISED),
        AnswerMatcher.match("Bradykinin-receptors, because", List.of("x", "Bradykinin receptors")));
  }

  @Test
  void unmatched() {
    assertEquals(new Match(-1, Kind.UNMATCHED), AnswerMatcher.match("Adenosine", OPTS));
    assertEquals(new Match(-1, Kind.UNMATCHED), AnswerMatcher.match("", OPTS));
    // the answer is on the first line only
    assertEquals(new Match(-1, Kind.UNMATCHED), AnswerMatcher.match("I think\nAdenosine receptors", OPTS));
    // an option followed by more letters is another word, not the option
    assertEquals(new Match(-1, Kind.UNMATCHED),
        AnswerMatcher.match("Adenosine receptorsX", OPTS));
  }

  @Test
  void longestOptionWins() {
    List<String> opts = List.of("Both", "Both A and B", "None", "All");
    assertEquals(new Match(1, Kind.EXACT), AnswerMatcher.match("Both A and B. Because", opts));
    assertEquals(new Match(0, Kind.EXACT), AnswerMatcher.match("Both. Because", opts));
  }

  @Test
  void differentOptionsEqualAfterNormalisingAreUnmatched() {
    List<String> opts = List.of("T-cells", "T cells", "B cells", "NK cells");
    assertEquals(new Match(0, Kind.EXACT), AnswerMatcher.match("T-cells.", opts));
    assertEquals(new Match(-1, Kind.UNMATCHED), AnswerMatcher.match("t cells!", opts));
  }
}
