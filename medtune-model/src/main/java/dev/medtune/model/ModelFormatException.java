package dev.medtune.model;

/**
 * A model file (config.json, safetensors, index, tokenizer) that medtune cannot read: the message
 * is one line naming the file, the key or tensor, what was expected and what was found.
 * It extends {@link IllegalArgumentException} because the file is the caller's input.
 */
public class ModelFormatException extends IllegalArgumentException {
  public ModelFormatException(String message) {
    super(message);
  }

  public ModelFormatException(String message, Throwable cause) {
    super(message, cause);
  }
}
