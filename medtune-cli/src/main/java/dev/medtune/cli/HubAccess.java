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
    if (!HubClient.isRepoId(arg)) {
      return Path.of(arg);
    }
    try (HubClient hub = new HubClient(config(tokenOption));
        ProgressBars bars = new ProgressBars(err, ProgressBars.stderrIsTerminal())) {
      return hub.snapshot(arg, type, "main", java.util.List.of(), java.util.List.of(), bars);
    } catch (HubException e) {
      throw new MedtuneFailure(e.getMessage(), e);
    }
  }
}
