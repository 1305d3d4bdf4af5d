package dev.medtune.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The {@code medtune} command line. Exit codes are a contract (ARCHITECTURE.md): 0 success,
 * 1 a failure explained in one line on stderr, 2 bad usage.
 */
@Command(
    name = "medtune",
    mixinStandardHelpOptions = true,
    versionProvider = Main.Version.class,
    description = "Fine-tune Llama 3.x with LoRA on medical multiple-choice questions, in Java.",
    subcommands = {
      // one line per command; keep alphabetical
      DemoCommand.class,
      GenerateCommand.class,
      CommandLine.HelpCommand.class,
      InitModelCommand.class,
      MergeCommand.class,
      PrepareCommand.class,
      PullCommand.class,
      PushCommand.class,
      TrainCommand.class,
    })
public final class Main implements Runnable {

  @Option(names = "--verbose", scope = CommandLine.ScopeType.INHERIT,
      description = "Print stack traces of failures.")
  boolean verbose;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    throw new CommandLine.ParameterException(spec.commandLine(), "Missing command");
  }

  public static void main(String[] args) {
    System.exit(execute(args));
  }

  /** Runs the command line and returns its exit code; tests call this. */
  public static int execute(String... args) {
    CommandLine cl = new CommandLine(new Main());
    cl.setExecutionExceptionHandler(Failures::handle);
    cl.setParameterExceptionHandler(Failures::handleUsage);
    return cl.execute(args);
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      return new String[] {"medtune " + BuildInfo.version() + " (" + BuildInfo.commit() + ")"};
    }
  }
}
