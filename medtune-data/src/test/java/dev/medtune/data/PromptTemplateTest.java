package dev.medtune.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The recipe's template exactly as seed-facts.md gives it, and templates from files. */
class PromptTemplateTest {
  @TempDir Path tmp;

  @Test
  void recipeTextSplitsIntoPromptAndCompletion() {
    PromptTemplate t = PromptTemplate.recipe();
    String prompt = t.prompt("Drug of choice for absence seizures?");
    String completion = t.completion("Ethosuximide", "It blocks T-type calcium channels.");
    assertEquals("Give an answer for the following medical question.\n\n### Question:\n"
        + "Drug of choice for absence seizures?\n\n### Answer:\n", prompt);
    assertEquals("Ethosuximide. It blocks T-type calcium channels.\n", completion);
  }

  @Test
  void valuesAreInsertedLiterally() {
    PromptTemplate t = PromptTemplate.of("Q {question}\nA {answer} ({explanation})");
    assertEquals("Q $1 {answer} \\n\nA ", t.prompt("$1 {answer} \\n"));
    assertEquals("x ({question})", t.completion("x", "{question}"));
  }

  @Test
  void templateFileErrorsNameTheFile() throws Exception {
    Path bad = Files.writeString(tmp.resolve("t.txt"), "{question} {answer} {subject}");
    PrepareException e = assertThrows(PrepareException.class, () -> PromptTemplate.read(bad));
    assertTrue(e.getMessage().startsWith(bad + ": unknown placeholder {subject}"), e.getMessage());
    Path none = tmp.resolve("none.txt");
    e = assertThrows(PrepareException.class, () -> PromptTemplate.read(none));
    assertTrue(e.getMessage().startsWith(none + ": cannot read the template"), e.getMessage());
    Path noAnswer = Files.writeString(tmp.resolve("n.txt"), "{question}");
    assertThrows(PrepareException.class, () -> PromptTemplate.read(noAnswer));
  }
}
