package dev.medtune.cli;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Backends;

/** Opens the backend a command's {@code --device} names; an unusable device is a one-line failure. */
final class Devices {
  private Devices() {}

  static Backend open(String device) {
    try {
      return Backends.open(device);
    } catch (IllegalStateException e) {
      throw new MedtuneFailure(e.getMessage(), e);
    }
  }
}
