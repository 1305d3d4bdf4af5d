package dev.medtune.cli;

import dev.medtune.hub.HubClient;
import dev.medtune.hub.HubException;
import dev.medtune.hub.ModelCard;
import dev.medtune.hub.PushOptions;
import dev.medtune.hub.PushResult;
import dev.medtune.hub.RepoType;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import picocli.CommandLine;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code medtune push}: an adapter or merged model folder to a hub repository, in one commit. */
@Command(
    name = "push",
    mixinStandardHelpOptions = true,
    description = {
      "Upload a LoRA adapter (--adapter) or a merged model (--model) folder to a Hugging Face hub repository,"
          + " creating it when missing. Large files go through Git LFS; files the hub already has unchanged are"
          + " not sent again.",
      "When the folder has a training.json and no README.md, a model card README.md is written from it first."
    },
    footer = {"", "Example:", "  medtune push --adapter out/adapter --repo my-org/medmcqa-lora --private"})
final class PushCommand implements Runnable {
  static final class What {
    @Option(names = "--adapter", paramLabel = "DIR", required = true, description = "A PEFT adapter folder.")
    Path adapter;

    @Option(names = "--model", paramLabel = "DIR", required = true, description = "A model folder (merged weights).")
    Path model;
  }

  @ArgGroup(exclusive = true, multiplicity = "1")
  What what;

  @Option(names = "--repo", paramLabel = "ID", required = true, description = "Target repository, org/name.")
  String repo;

  @Option(names = "--private", description = "Create the repository private (an existing one keeps its visibility).")
  boolean privateRepo;

  @Option(names = "--revision", paramLabel = "R", defaultValue = "main",
      description = "Branch to commit to, created from main if missing (default: ${DEFAULT-VALUE}).")
  String revision;

  @Option(names = "--message", paramLabel = "M", description = "Commit message.")
  String message;

  @Option(names = "--token", paramLabel = "T",
      description = "Hub write token (default: $HF_TOKEN, else the token file `hf auth login` writes).")
  String token;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    boolean adapter = what.adapter != null;
    Path folder = adapter ? what.adapter : what.model;
    if (!repo.matches("[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")) {
      throw new UsageException("--repo '" + repo + "' must be org/name (or user/name)");
    }
    if (!Files.isDirectory(folder)) {
      throw new MedtuneFailure((adapter ? "--adapter " : "--model ") + folder + " is not a folder");
    }
    if (adapter && !Files.isRegularFile(folder.resolve("adapter_config.json"))) {
      throw new MedtuneFailure(folder + " has no adapter_config.json: it is not a PEFT adapter folder"
          + " (use --model for a merged model)");
    }
    if (!adapter && !Files.isRegularFile(folder.resolve("config.json"))) {
      throw new MedtuneFailure(folder + " has no config.json: it is not a model folder");
    }
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    String defaultMessage = "Upload " + (adapter ? "adapter" : "model") + " with medtune " + BuildInfo.version();
    PushResult r;
    try (HubClient hub = new HubClient(HubAccess.config(token));
        ProgressBars bars = new ProgressBars(err, ProgressBars.stderrIsTerminal())) {
      Optional<Path> card = ModelCard.writeIfAbsent(folder, repo, BuildInfo.version(), adapter);
      card.ifPresent(c -> bars.note("wrote the model card " + c + " from training.json"));
      r = hub.push(folder, repo, RepoType.MODEL,
          new PushOptions(privateRepo, revision, message == null ? defaultMessage : message), bars);
    } catch (HubException e) {
      throw new MedtuneFailure(e.getMessage(), e);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    if (r.commitUrl() == null) {
      out.println("nothing to push: " + repo + " already has the " + r.unchanged().size() + " files of " + folder);
    } else {
      out.println(r.commitUrl());
      err.printf("pushed %d file(s) (%s to LFS storage), %d unchanged%n", r.uploaded().size(),
          dev.medtune.hub.DownloadProgress.human(r.lfsBytesSent()), r.unchanged().size());
    }
    out.flush();
    err.flush();
  }
}
