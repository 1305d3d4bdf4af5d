package dev.medtune.hub;

/** The kinds of hub repository medtune reads and writes. */
public enum RepoType {
  MODEL("model", "models", ""),
  DATASET("dataset", "datasets", "datasets/");

  private final String name;
  private final String plural;
  private final String urlPrefix;

  RepoType(String name, String plural, String urlPrefix) {
    this.name = name;
    this.plural = plural;
    this.urlPrefix = urlPrefix;
  }

  /** {@code model} or {@code dataset}, as the hub's API and the command line spell it. */
  public String id() {
    return name;
  }

  /** {@code models} or {@code datasets}: the API path segment and the cache folder prefix. */
  String plural() {
    return plural;
  }

  /** Prefix of the repository in file URLs ({@code /datasets/org/name/resolve/...}). */
  String urlPrefix() {
    return urlPrefix;
  }

  /** Parses {@code model} or {@code dataset} (also the plural forms). */
  public static RepoType parse(String s) {
    for (RepoType t : values()) {
      if (t.name.equalsIgnoreCase(s) || t.plural.equalsIgnoreCase(s)) {
        return t;
      }
    }
    throw new IllegalArgumentException("repository type '" + s + "' is not one of model, dataset");
  }
}
