package dev.medtune.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.medtune.model.backend.Backend;
import dev.medtune.model.backend.Backends;
import org.junit.jupiter.api.Test;

/** The CPU backend is found through ServiceLoader; a missing device is a one-line error. */
class BackendsTest {

  @Test
  void cpuAndAutoFindTheCpuBackendWhenThereIsNoCuda() {
    assertTrue(Backends.names().contains("cpu"), Backends.names().toString());
    try (Backend cpu = Backends.open("cpu")) {
      assertEquals("cpu", cpu.name());
    }
    if (!Backends.names().contains("cuda")) {
      try (Backend auto = Backends.open("auto")) {
        assertEquals("cpu", auto.name());
      }
    }
  }

  @Test
  void aDeviceWithoutABackendIsAOneLineError() {
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> Backends.open("tpu"));
    assertEquals("device 'tpu' is not available: no backend named 'tpu' on the class path (found: "
        + Backends.names() + ")", e.getMessage());
  }
}
