package dev.medtune.model.tokenizer;

import java.util.HashMap;
import java.util.Map;

/**
 * GPT-2's byte-to-unicode table, which byte-level BPE (Llama 3's tokenizer) uses to spell every
 * byte as a printable character: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * map to U+0100 onwards in order (Radford et al. 2019, {@code encoder.py bytes_to_unicode};
 * the Hugging Face tokenizers {@code ByteLevel} pre-tokenizer and decoder use the same table).
 */
final class ByteLevel {
  private ByteLevel() {}

  static final char[] BYTE_TO_CHAR = new char[256];
  static final Map<Character, Byte> CHAR_TO_BYTE = new HashMap<>();

  static {
    int n = 0;
    for (int b = 0; b < 256; b++) {
      boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      BYTE_TO_CHAR[b] = printable ? (char) b : (char) (256 + n++);
      CHAR_TO_BYTE.put(BYTE_TO_CHAR[b], (byte) b);
    }
  }

  /** The byte-level spelling of UTF-8 bytes. */
  static String encode(byte[] bytes) {
    StringBuilder sb = new StringBuilder(bytes.length);
    for (byte b : bytes) {
      sb.append(BYTE_TO_CHAR[b & 0xff]);
    }
    return sb.toString();
  }

  /**
   * The bytes a token string stands for, as the tokenizers {@code ByteLevel} decoder computes them:
   * mapped characters are one byte each, any other character is its own UTF-8.
   */
  static byte[] decode(String token) {
    java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(token.length());
    for (int i = 0; i < token.length(); ) {
      int cp = token.codePointAt(i);
      Byte b = cp < 0x10000 ? CHAR_TO_BYTE.get((char) cp) : null;
      if (b != null) {
        out.write(b);
      } else {
        out.writeBytes(new String(Character.toChars(cp)).getBytes(java.nio.charset.StandardCharsets.UTF_8));
      }
      i += Character.charCount(cp);
    }
    return out.toByteArray();
  }
}
