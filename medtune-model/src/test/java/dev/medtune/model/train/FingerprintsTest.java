package dev.medtune.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FingerprintsTest {
  @TempDir Path tmp;

  @Test
  void sha256OfAFile() throws Exception {
    Path f = tmp.resolve("abc");
    Files.writeString(f, "abc");
    // FIPS 180-2 test vector
    assertEquals("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", Fingerprints.sha256(f));
  }

  @Test
  void firstLastMibCoversSizeAndBothEnds() throws Exception {
    Path f = tmp.resolve("w.safetensors");
    byte[] data = new byte[3 << 20];
    for (int i = 0; i < data.length; i++) {
      data[i] = (byte) (i * 31 + (i >> 13));
    }
    Files.write(f, data);
    MessageDigest md = MessageDigest.getInstance("SHA-256");
    md.update(ByteBuffer.allocate(8).putLong(data.length).array());
    md.update(data, 0, 1 << 20);
    md.update(data, data.length - (1 << 20), 1 << 20);
    String want = HexFormat.of().formatHex(md.digest());
    assertEquals(want, Fingerprints.sha256FirstLastMib(f));

    data[(3 << 20) / 2] ^= 1; // the middle MiB is not sampled: documented
    Files.write(f, data);
    assertEquals(want, Fingerprints.sha256FirstLastMib(f));
    data[5] ^= 1;
    Files.write(f, data);
    assertNotEquals(want, Fingerprints.sha256FirstLastMib(f));
  }

  @Test
  void modelFingerprintChangesWithConfigOrWeights() throws Exception {
    Files.writeString(tmp.resolve("config.json"), "{\"hidden_size\": 64}");
    Files.write(tmp.resolve("model-00001-of-00002.safetensors"), new byte[100]);
    Files.write(tmp.resolve("model-00002-of-00002.safetensors"), new byte[200]);
    Files.writeString(tmp.resolve("tokenizer.json"), "{}");
    Map<String, Object> m = Fingerprints.model(tmp);
    @SuppressWarnings("unchecked")
    var weights = (List<Map<String, Object>>) m.get("weights");
    assertEquals(List.of("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"),
        weights.stream().map(w -> w.get("file")).toList());
    assertEquals(200L, weights.get(1).get("bytes"));
    Object before = m.get("fingerprint");
    Files.write(tmp.resolve("model-00002-of-00002.safetensors"), new byte[201]);
    assertNotEquals(before, Fingerprints.model(tmp).get("fingerprint"));
  }
}
