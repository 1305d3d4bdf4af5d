package dev.medtune.model.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Turns generated token ids into text as they come. A byte-level token can end in the middle of a
 * UTF-8 character (an emoji or a CJK character is often two or three tokens), so the bytes of an
 * incomplete trailing character are held back until the token that completes them arrives;
 * {@link #flush()} returns what is left (an incomplete tail becomes U+FFFD, as the Hugging Face
 * decoder's lossy UTF-8 does). The concatenation of every {@link #push} and the final
 * {@link #flush} equals {@link LlamaTokenizer#decode(int[])} of all the ids (with special tokens
 * skipped, {@code decode(ids, true)}).
 *
 * <p>For a tokenizer whose decoder is not byte-level, it re-decodes the ids since the last complete
 * text and holds back while the text ends in U+FFFD (transformers' {@code TextStreamer} approach).
 */
public final class StreamingDecoder {
  private final LlamaTokenizer tokenizer;
  private final ByteArrayOutputStream pending = new ByteArrayOutputStream();
  private final List<Integer> pendingIds = new ArrayList<>();
  private final boolean skipSpecial;

  StreamingDecoder(LlamaTokenizer tokenizer, boolean skipSpecial) {
    this.tokenizer = tokenizer;
    this.skipSpecial = skipSpecial;
  }

  /** Adds one id; returns the text it completes (possibly empty; always empty for a skipped special token). */
  public String push(int id) {
    if (skipSpecial && tokenizer.isSpecial(id)) {
      return "";
    }
    if (!tokenizer.byteLevel()) {
      pendingIds.add(id);
      String text = tokenizer.decode(pendingIds.stream().mapToInt(Integer::intValue).toArray());
      if (text.endsWith("\uFFFD")) {
        return "";
      }
      pendingIds.clear();
      return text;
    }
    pending.writeBytes(tokenizer.tokenBytes(id));
    byte[] b = pending.toByteArray();
    int complete = completePrefix(b);
    pending.reset();
    pending.write(b, complete, b.length - complete);
    return new String(b, 0, complete, StandardCharsets.UTF_8);
  }

  /** Returns whatever is held back and resets. */
  public String flush() {
    if (!tokenizer.byteLevel()) {
      String text = pendingIds.isEmpty() ? ""
          : tokenizer.decode(pendingIds.stream().mapToInt(Integer::intValue).toArray());
      pendingIds.clear();
      return text;
    }
    String text = pending.toString(StandardCharsets.UTF_8);
    pending.reset();
    return text;
  }

  /**
   * Length of the longest prefix of {@code b} that does not end inside a UTF-8 character that
   * could still be completed: a trailing lead byte with fewer continuation bytes than it announces.
   */
  static int completePrefix(byte[] b) {
    int n = b.length;
    // look back at most 3 bytes for the lead byte of the last character
    for (int k = 1; k <= Math.min(3, n); k++) {
      int c = b[n - k] & 0xff;
      if ((c & 0xC0) == 0x80) {
        continue; // continuation byte: keep looking for the lead
      }
      int need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
      return need > k ? n - k : n;
    }
    return n; // only continuation bytes: malformed, not incomplete; let the decoder replace them
  }
}
