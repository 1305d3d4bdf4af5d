package dev.medtune.cli;

import dev.medtune.hub.HubClient;
import dev.medtune.hub.HubException;
import dev.medtune.hub.RepoType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code medtune pull}: a hub repository into the hub cache; prints the local snapshot folder. */
@Command(
    name = "pull",
    mixinStandardHelpOptions = true,
    description = {
      "Download a model or dataset from the Hugging Face hub into the hub cache that Python tools use"
          + " too, and print its local folder. Files already in the cache are not downloaded again;"
          + " an interrupted download resumes.",
      "Cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub"
    },
    footer = {
      "", "Environment (as huggingface_hub reads it): HF_TOKEN, HF_TOKEN_PATH, HF_HOME, HF_HUB_CACHE,"
          + " HF_ENDPOINT, HF_HUB_OFFLINE, HF_HUB_DOWNLOAD_TIMEOUT.",
      "", "Example:", "  medtune pull unsloth/Llama-3.2-1B --include '*.json' '*.safetensors'"
    })
final class PullCommand implements Runnable {
  @Parameters(index = "0", paramLabel = "REPO_ID", description = "The repository, e.g. meta-llama/Llama-3.1-8B.")
  String repoId;

  @Option(names = "--revision", paramLabel = "R", defaultValue = "main",
      description = "Branch, tag or commit hash (default: ${DEFAULT-VALUE}).")
  String revision;

  @Option(names = "--include", paramLabel = "GLOB", arity = "1..*",
      description = "Only files matching one of these patterns (fnmatch: * also crosses /; 'dir/' is a folder).")
  List<String> includes = new ArrayList<>();

  @Option(names = "--exclude", paramLabel = "GLOB", arity = "1..*", description = "Skip files matching these patterns.")
  List<String> excludes = new ArrayList<>();

  @Option(names = "--repo-type", paramLabel = "TYPE", defaultValue = "model",
      description = "model or dataset (default: ${DEFAULT-VALUE}).")
  String repoType;

  @Option(names = "--token", paramLabel = "T",
      description = "Hub access token (default: $HF_TOKEN, else the token file `hf auth login` writes).")
  String token;

  @CommandLine.Spec CommandLine.Model.CommandSpec spec;

  @Override
  public void run() {
    RepoType type;
    try {
      type = RepoType.parse(repoType);
    } catch (IllegalArgumentException e) {
      throw new UsageException("--repo-type: " + e.getMessage());
    }
    if (!repoId.matches("[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9_.-]+)?")) {
      throw new UsageException("REPO_ID '" + repoId + "' is not a hub repository id (name or org/name)");
    }
    Path snapshot;
    try (HubClient hub = new HubClient(HubAccess.config(token));
        ProgressBars bars = new ProgressBars(spec.commandLine().getErr(), ProgressBars.stderrIsTerminal())) {
      snapshot = hub.snapshot(repoId, type, revision, includes, excludes, bars);
    } catch (HubException e) {
      throw new MedtuneFailure(e.getMessage(), e);
    }
    spec.commandLine().getOut().println(snapshot);
    spec.commandLine().getOut().flush();
  }
}
