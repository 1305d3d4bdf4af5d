package dev.medtune.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.data.PromptTemplate;
import dev.medtune.model.Checkpoint;
import dev.medtune.model.Generator;
import dev.medtune.model.Llama;
import dev.medtune.model.Sampler;
import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Backends;
import dev.medtune.model.tokenizer.LlamaTokenizer;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code medtune generate} on a real {@code init-model --preset tiny} model, run in-process. */
class GenerateCommandTest {

  @TempDir static Path tmp;
  static Path model;

  record Run(int exit, String out, String err) {}

  static Run run(String... args) {
    PrintStream oldOut = System.out, oldErr = System.err;
    ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
    try {
      System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
      System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
      int exit = Main.execute(args);
      return new Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    } finally {
      System.setOut(oldOut);
      System.setErr(oldErr);
    }
  }

  @BeforeAll
  static void tinyModel() {
    model = tmp.resolve("tiny");
    Run r = run("init-model", "--preset", "tiny", "--output", model.toString());
    assertEquals(0, r.exit(), r.err());
  }

  @Test
  void questionStreamsTheGreedyAnswerOfTheRecipePrompt() {
    String question = "Which vitamin deficiency causes scurvy?";
    Run r = run("generate", "--model", model.toString(), "--question", question, "--max-new-tokens", "24",
        "--device", "cpu");
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.err().matches("(?s).*prefill \\d+ tokens in .* tokens/s\\), decode \\d+ tokens in .* tokens/s\\).*"), r.err());

    // the same generation through the library: the printed text is the decoded answer, EOS excluded
    try (Checkpoint ckpt = Checkpoint.open(model); LlamaTokenizer tok = LlamaTokenizer.load(model);
        Backend cpu = Backends.open("cpu")) {
      int[] prompt = tok.encode(PromptTemplate.recipe().prompt(question), true);
      Llama llama = new Llama(ckpt, cpu, prompt.length, 1, prompt.length + 24);
      int[] answer = new Generator(llama, llama.newCache(1))
          .generate(List.of(prompt), Sampler.Params.greedy(), 24, (p, t, eos) -> {}).tokens().get(0);
      if (answer.length > 0 && ckpt.config().isEos(answer[answer.length - 1])) {
        answer = Arrays.copyOf(answer, answer.length - 1);
      }
      // special tokens are left out of the answer unless --special-tokens (this random model emits them)
      assertEquals(tok.decode(answer, true) + System.lineSeparator(), r.out());
      Run withSpecials = run("generate", "--model", model.toString(), "--question", question, "--max-new-tokens", "24",
          "--device", "cpu", "--special-tokens");
      assertEquals(0, withSpecials.exit(), withSpecials.err());
      assertEquals(tok.decode(answer) + System.lineSeparator(), withSpecials.out());
    }
  }

  @Test
  void aFileOfPromptsIsAnsweredInOrderAsABatch() throws Exception {
    Path file = tmp.resolve("prompts.jsonl");
    Files.writeString(file, "{\"question\": \"Fever and rash?\"}\n\n{\"prompt\": \"Raw prompt\"}\nplain line\n");
    Run r = run("generate", "--model", model.toString(), "--file", file.toString(), "--max-new-tokens", "8");
    assertEquals(0, r.exit(), r.err());
    int p1 = r.out().indexOf("### prompt 1"), p2 = r.out().indexOf("### prompt 2"), p3 = r.out().indexOf("### prompt 3");
    assertTrue(p1 == 0 && p2 > p1 && p3 > p2, r.out());
    // batched answers equal the answers generated one by one
    Run single = run("generate", "--model", model.toString(), "--prompt", "Raw prompt", "--max-new-tokens", "8");
    String second = r.out().substring(p2 + "### prompt 2\n".length(), p3);
    assertEquals(single.out(), second);
  }

  @Test
  void samplingIsReproducibleWithASeed() {
    String[] args = {"generate", "--model", model.toString(), "--prompt", "The patient", "--temperature", "0.9",
        "--top-k", "40", "--top-p", "0.95", "--repetition-penalty", "1.1", "--seed", "7", "--max-new-tokens", "16"};
    Run a = run(args);
    Run b = run(args);
    assertEquals(0, a.exit(), a.err());
    assertEquals(a.out(), b.out());
  }

  @Test
  void badInputIsAOneLineErrorWithTheRightExitCode() throws Exception {
    Run overflow = run("generate", "--model", model.toString(), "--prompt", "hi", "--max-new-tokens", "131072");
    assertEquals(1, overflow.exit());
    assertTrue(overflow.err().contains("exceeds the model's context of 131072 tokens"), overflow.err());
    assertEquals(1, overflow.err().strip().lines().count(), overflow.err());

    // medtune-cuda is on the class path; without a GPU (CI) --device cuda is a one-line reason
    if (dev.medtune.cuda.CudaBackendProvider.check() != null) {
      Run cuda = run("generate", "--model", model.toString(), "--prompt", "hi", "--device", "cuda");
      assertEquals(1, cuda.exit());
      assertTrue(cuda.err().contains("device 'cuda' is not usable here: "
          + dev.medtune.cuda.CudaBackendProvider.check()), cuda.err());
      assertEquals(1, cuda.err().strip().lines().count(), cuda.err());
    }

    Path bad = tmp.resolve("bad.jsonl");
    Files.writeString(bad, "{\"prompt\": \"ok\"}\n{\"text\": \"no prompt\"}\n");
    Run badFile = run("generate", "--model", model.toString(), "--file", bad.toString());
    assertEquals(1, badFile.exit());
    assertTrue(badFile.err().contains("bad.jsonl line 2: expected a JSON object with a text \"prompt\" or \"question\""),
        badFile.err());

    Run missingModel = run("generate", "--model", tmp.resolve("nope").toString(), "--prompt", "hi");
    assertEquals(1, missingModel.exit());
    assertTrue(missingModel.err().contains("nope"), missingModel.err());

    assertEquals(2, run("generate", "--model", model.toString()).exit());
    assertEquals(2, run("generate", "--model", model.toString(), "--prompt", "a", "--question", "b").exit());
    assertEquals(2, run("generate", "--model", model.toString(), "--prompt", "a", "--top-p", "0").exit());
  }
}
