package dev.medtune.cli;

import java.io.PrintWriter;
import picocli.CommandLine;

/**
 * Turns exceptions into the exit-code contract: a failure is one line on stderr and exit 1
 * (the stack trace only with {@code --verbose}); bad usage is the message, the usage hint and exit 2.
 */
final class Failures {
  private Failures() {}

  static int handle(Exception e, CommandLine cl, CommandLine.ParseResult parsed) {
    PrintWriter err = cl.getErr();
    if (e instanceof CommandLine.ParameterException pe) {
      return handleUsage(pe, new String[0]);
    }
    if (e instanceof UsageException) {
      err.println("medtune: " + e.getMessage());
      err.println("Try 'medtune " + cl.getCommandName() + " --help'.");
      err.flush();
      return 2;
    }
    err.println("medtune: " + oneLine(e));
    if (verbose(cl)) {
      e.printStackTrace(err);
    }
    err.flush();
    return 1;
  }

  static int handleUsage(CommandLine.ParameterException e, String[] args) {
    CommandLine cl = e.getCommandLine();
    PrintWriter err = cl.getErr();
    err.println("medtune: " + e.getMessage());
    err.println("Try '" + cl.getCommandSpec().qualifiedName() + " --help'.");
    err.flush();
    return 2;
  }

  /** The message of the exception, or of its first cause that has one, on one line. */
  static String oneLine(Throwable e) {
    Throwable t = e;
    while (t != null && (t.getMessage() == null || t.getMessage().isBlank())) {
      t = t.getCause();
    }
    String msg = t == null ? e.getClass().getSimpleName() : t.getMessage();
    if (t != null && !(t instanceof MedtuneFailure) && !(t instanceof java.io.UncheckedIOException)
        && !(t instanceof java.io.IOException) && !(t instanceof IllegalArgumentException)) {
      msg = t.getClass().getSimpleName() + ": " + msg;
    }
    return msg.replaceAll("\\s*\\R\\s*", " ").strip();
  }

  private static boolean verbose(CommandLine cl) {
    CommandLine root = cl;
    while (root.getParent() != null) {
      root = root.getParent();
    }
    return root.getCommand() instanceof Main m && m.verbose;
  }
}
