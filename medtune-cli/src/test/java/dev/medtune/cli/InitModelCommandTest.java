package dev.medtune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.Checkpoint;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class InitModelCommandTest {
  @TempDir Path tmp;

  @Test
  void writesTinyThenRefusesToOverwriteUnlessAsked() throws Exception {
    Path out = tmp.resolve("tiny");
    assertEquals(0, Main.execute("init-model", "--preset", "tiny", "--output", out.toString(), "--seed", "5"));
    try (Checkpoint c = Checkpoint.open(out); LlamaTokenizer t = LlamaTokenizer.load(out)) {
      assertEquals(64, c.config().hiddenSize());
      String text = "Which nerve is compressed in carpal tunnel syndrome?";
      assertEquals(text, t.decode(t.encode(text, false)));
    }
    byte[] first = Files.readAllBytes(out.resolve("model.safetensors"));
    assertEquals(1, Main.execute("init-model", "--preset", "tiny", "--output", out.toString()),
        "existing output, no --overwrite");
    assertTrue(java.util.Arrays.equals(first, Files.readAllBytes(out.resolve("model.safetensors"))),
        "left untouched");
    assertEquals(0, Main.execute("init-model", "--preset", "tiny", "--output", out.toString(),
        "--seed", "6", "--overwrite"));
    assertFalse(java.util.Arrays.equals(first, Files.readAllBytes(out.resolve("model.safetensors"))));
  }

  @Test
  void badUsageIsExitTwoAndAMissingTokenizerExitOne() {
    assertEquals(2, Main.execute("init-model", "--preset", "huge", "--output", tmp.resolve("x").toString()));
    assertEquals(2, Main.execute("init-model", "--output", tmp.resolve("x").toString()));
    assertEquals(1, Main.execute("init-model", "--preset", "tiny", "--output", tmp.resolve("y").toString(),
        "--tokenizer", tmp.resolve("nope.json").toString()));
    assertFalse(Files.exists(tmp.resolve("x")));
    assertFalse(Files.exists(tmp.resolve("y")));
  }

  @Test
  void tinyWithAnotherTokenizerTakesItsVocabulary() throws Exception {
    Path base = tmp.resolve("base");
    assertEquals(0, Main.execute("init-model", "--preset", "tiny", "--output", base.toString()));
    Path tok = tmp.resolve("tok");
    Files.createDirectories(tok);
    Files.copy(base.resolve("tokenizer.json"), tok.resolve("tokenizer.json"));
    Path out = tmp.resolve("with-tokenizer");
    assertEquals(0, Main.execute("init-model", "--preset", "tiny", "--output", out.toString(),
        "--tokenizer", tok.resolve("tokenizer.json").toString()));
    assertEquals(Files.readString(base.resolve("tokenizer.json")), Files.readString(out.resolve("tokenizer.json")));
    try (Checkpoint c = Checkpoint.open(out); LlamaTokenizer t = LlamaTokenizer.load(out)) {
      assertEquals(1024, c.config().vocabSize());
      assertEquals(768, t.bosId());
      assertEquals(c.config().bosTokenId(), t.bosId());
    }
  }
}
