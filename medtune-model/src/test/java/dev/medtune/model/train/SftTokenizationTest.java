package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.ModelPresets;
import dev.medtune.model.RandomInit;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Tokenization and batching with the real tokenizer {@code init-model --preset tiny} writes. */
class SftTokenizationTest {
  @TempDir static Path tmp;
  static LlamaTokenizer tok;

  // prepare's output, with the recipe's template (seed-facts.md)
  static final String PROMPT = "Give an answer for the following medical question.\n\n### Question:\n"
      + "Which vitamin deficiency causes scurvy?\n\n### Answer:\n";
  static final String COMPLETION = "Vitamin C. Ascorbic acid is needed for collagen synthesis.\n";

  @BeforeAll
  static void tinyModel() {
    RandomInit.write(ModelPresets.get("tiny"), tmp.resolve("tiny"), 7, null, false, s -> {});
    tok = LlamaTokenizer.load(tmp.resolve("tiny"));
  }

  @AfterAll
  static void close() {
    tok.close();
  }

  private static SftExample example() {
    return new SftExample(PROMPT, COMPLETION, PROMPT + COMPLETION, 1);
  }

  private static String decodeCounted(TokenizedExample t, boolean dropLast) {
    int[] ids = Arrays.stream(t.targets()).filter(x -> x != TokenizedExample.IGNORE).toArray();
    return tok.decode(dropLast ? Arrays.copyOf(ids, ids.length - 1) : ids);
  }

  @Test
  void bosTextEosWithTheCompletionMask() {
    TokenizedExample t = TokenizedExample.of(example(), tok::encode, tok.bosId(), tok.eosId(), LossOn.COMPLETION, 2048);
    int[] body = tok.encode(PROMPT + COMPLETION, false);
    assertEquals(body.length + 2, t.length());
    assertEquals(tok.bosId(), t.tokens()[0]);
    assertEquals(tok.eosId(), t.tokens()[t.length() - 1]);
    assertArrayEquals(body, Arrays.copyOfRange(t.tokens(), 1, t.length() - 1));
    assertArrayEquals(tok.encode(PROMPT + COMPLETION, true), Arrays.copyOf(t.tokens(), t.length() - 1),
        "the tokenizer's own BOS handling agrees");
    assertFalse(t.truncated());
    // the counted targets are exactly the completion's tokens, then EOS
    assertEquals(COMPLETION, decodeCounted(t, true));
    int[] counted = Arrays.stream(t.targets()).filter(x -> x != TokenizedExample.IGNORE).toArray();
    assertEquals(tok.eosId(), counted[counted.length - 1]);
    assertEquals(tok.encode(COMPLETION, false).length + 1, t.counted());
    for (int i = 0; i + 1 < t.length(); i++) {
      assertTrue(t.targets()[i] == TokenizedExample.IGNORE || t.targets()[i] == t.tokens()[i + 1]);
    }
    assertEquals(TokenizedExample.IGNORE, t.targets()[t.length() - 1]);
  }

  @Test
  void lossOnAllCountsEverythingAfterBos() {
    TokenizedExample t = TokenizedExample.of(example(), tok::encode, tok.bosId(), tok.eosId(), LossOn.ALL, 2048);
    assertEquals(t.length() - 1, t.counted());
    assertEquals(PROMPT + COMPLETION, decodeCounted(t, true));
    var textOnly = new SftExample(null, null, "just text", 4);
    assertEquals("just text", decodeCounted(
        TokenizedExample.of(textOnly, tok::encode, tok.bosId(), tok.eosId(), LossOn.ALL, 2048), true));
  }

  @Test
  void truncationIsCountedAndExamplesLeftWithNothingAreDropped() {
    int promptLen = tok.encode(PROMPT, false).length;
    TokenizedExample t = TokenizedExample.of(example(), tok::encode, tok.bosId(), tok.eosId(), LossOn.COMPLETION,
        promptLen + 4);
    assertTrue(t.truncated());
    assertEquals(promptLen + 4, t.length());
    assertEquals(3, t.counted(), "positions of the 3 completion tokens that fit predict them; no EOS");
    assertFalse(Arrays.stream(t.tokens()).anyMatch(x -> x == tok.eosId()));

    var ds = TokenizedExample.tokenizeAll(List.of(example(), new SftExample("a", "b", "ab", 2)),
        tok::encode, tok.bosId(), tok.eosId(), LossOn.COMPLETION, promptLen);
    assertEquals(1, ds.truncated());
    assertEquals(1, ds.droppedNoTargets());
    assertEquals(1, ds.examples().size());
    var e = assertThrows(IllegalArgumentException.class, () -> TokenizedExample.tokenizeAll(List.of(example()),
        tok::encode, tok.bosId(), tok.eosId(), LossOn.COMPLETION, 10));
    assertTrue(e.getMessage().contains("raise --max-seq-len"), e.getMessage());
  }

  @Test
  void fromJsonlToOptimizerSteps() throws Exception {
    StringBuilder jsonl = new StringBuilder();
    for (int i = 0; i < 37; i++) {
      String p = PROMPT.replace("scurvy", "condition number " + i);
      String c = "Answer " + i + ". " + "explanation ".repeat(i % 9) + "\n";
      jsonl.append(dev.medtune.model.Json.MAPPER.valueToTree(
          java.util.Map.of("prompt", p, "completion", c, "text", p + c)).toString()).append('\n');
    }
    Path f = tmp.resolve("train.jsonl");
    Files.writeString(f, jsonl);
    var ds = TokenizedExample.tokenizeAll(SftExample.readJsonl(f, LossOn.COMPLETION), tok::encode,
        tok.bosId(), tok.eosId(), LossOn.COMPLETION, 256);
    assertEquals(37, ds.examples().size());
    for (boolean packing : new boolean[] {false, true}) {
      var b = new SftBatcher(ds.examples(), 2, 4, 256, packing, 3407);
      long counted = 0;
      DataPosition pos = DataPosition.START;
      while (pos.epoch() == 0) {
        StepBatch s = b.step(pos);
        counted += s.countedTokens();
        pos = s.next();
      }
      assertEquals(ds.countedTokens(), counted, "one epoch counts every counted token once");
    }
  }
}
