package dev.medtune.cli;

import dev.medtune.hub.HubClient;
import dev.medtune.hub.HubConfig;
import dev.medtune.hub.HubException;
import dev.medtune.hub.RepoType;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Map;

/**
 * The hub as commands see it: the configuration from the environment ({@code HF_*} variables,
 * like the Python client) and the resolution of a {@code --model}/{@code --input} argument that
 * is a hub id into a local snapshot folder, with progress bars on stderr.
 */
final class HubAccess {
  /** The environment the hub configuration is read from; tests point it at a local hub. */
  static volatile Map<String, String> environment = System.getenv();

  private HubAccess() {}

  static HubConfig config(String tokenOption) {
    return HubConfig.from(environment, tokenOption);
  }

  /**
   * {@code arg} as a local path when it names one, else the snapshot of the hub repository it
   * names (downloaded into the hub cache unless already there). For {@code --model} and
   * {@code --input} of every command.
   */
  static Path resolve(String arg, RepoType type, String tokenOption, PrintWriter err) {
    // only org/name counts as a hub id here: a bare name is far more often a mistyped local file
    if (!HubClient.isRepoId(arg) || arg.indexOf('/') < 0) {
      return Path.of(arg);
    }
    try (HubClient hub = new HubClient(config(tokenOption));
        ProgressBars bars = new ProgressBars(err, ProgressBars.stderrIsTerminal())) {
      return hub.snapshot(arg, type, "main", java.util.List.of(), java.util.List.of(), bars);
    } catch (HubException e) {
      if (e.kind() == HubException.Kind.REPO_NOT_FOUND || e.kind() == HubException.Kind.NETWORK
          || e.kind() == HubException.Kind.OFFLINE) {
        throw new MedtuneFailure(arg + ": no such file or folder, nor a " + type.name().toLowerCase(java.util.Locale.ROOT)
            + " on the hub (" + e.getMessage() + ")", e);
      }
      throw new MedtuneFailure(e.getMessage(), e);
    }
  }

  /**
   * The model folder a {@code --model} (or {@code --compare}) argument names: the local path
   * as it is, or the hub model's snapshot. Every command resolves its model through here.
   */
  static Path model(Path arg, PrintWriter err) {
    return arg == null ? null : resolve(arg.toString(), RepoType.MODEL, null, err);
  }

  /** The data a {@code --input} argument names: the local path, or the hub dataset's snapshot. */
  static Path dataset(Path arg, PrintWriter err) {
    return arg == null ? null : resolve(arg.toString(), RepoType.DATASET, null, err);
  }
}
