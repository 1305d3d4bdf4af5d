package dev.medtune.hub;

/**
 * How {@link HubClient#push} commits.
 *
 * @param privateRepo create the repository private (an existing one keeps its visibility)
 * @param revision the branch to commit to; created from main when it does not exist
 * @param message the commit summary
 */
public record PushOptions(boolean privateRepo, String revision, String message) {
  public PushOptions {
    revision = revision == null || revision.isBlank() ? "main" : revision;
    message = message == null || message.isBlank() ? "Upload with medtune" : message;
  }
}
