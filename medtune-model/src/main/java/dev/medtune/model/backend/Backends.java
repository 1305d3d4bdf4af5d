package dev.medtune.model.backend;

import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;

/** Finds backends with {@link ServiceLoader} and picks one for {@code --device}. */
public final class Backends {

  private Backends() {}

  /** The names of the backends on the class path, available or not. */
  public static List<String> names() {
    List<String> names = new ArrayList<>();
    for (BackendProvider p : ServiceLoader.load(BackendProvider.class)) {
      names.add(p.name());
    }
    return names;
  }

  /**
   * Opens the backend for {@code device}: {@code auto} picks {@code cuda} when it is present and
   * usable, else {@code cpu}; a named device that is missing or unusable is an
   * {@link IllegalStateException} with a one-line reason.
   */
  public static Backend open(String device) {
    List<BackendProvider> providers = new ArrayList<>();
    ServiceLoader.load(BackendProvider.class).forEach(providers::add);
    if (device.equals("auto")) {
      for (String preferred : new String[] {"cuda", "cpu"}) {
        for (BackendProvider p : providers) {
          if (p.name().equals(preferred) && p.unavailableReason() == null) {
            return p.create();
          }
        }
      }
      throw new IllegalStateException("no usable backend on the class path (found: "
          + names() + "); medtune-cpu must be on the class path");
    }
    for (BackendProvider p : providers) {
      if (p.name().equals(device)) {
        String reason = p.unavailableReason();
        if (reason != null) {
          throw new IllegalStateException("device '" + device + "' is not usable here: " + reason);
        }
        return p.create();
      }
    }
    throw new IllegalStateException("device '" + device + "' is not available: no backend named '"
        + device + "' on the class path (found: " + names() + ")");
  }
}
