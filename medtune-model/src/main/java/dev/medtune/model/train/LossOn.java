package dev.medtune.model.train;

/** Which tokens the training loss counts ({@code --loss-on}). */
public enum LossOn {
  /** The completion (answer and explanation) and the EOS after it: the model learns to answer, not to ask. */
  COMPLETION,
  /** Every token after BOS, prompt included: what the recipe did (TRL's default then). */
  ALL
}
