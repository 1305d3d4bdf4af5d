package dev.medtune.cli;

import java.io.IOException;
import java.io.InputStream;
import java.util.Properties;

/** The medtune version and the commit the jar was built from (filled in by the build). */
final class BuildInfo {
  private static final Properties PROPS = load();

  private BuildInfo() {}

  static String version() {
    return PROPS.getProperty("version", "dev");
  }

  static String commit() {
    return PROPS.getProperty("commit", "unknown");
  }

  private static Properties load() {
    Properties p = new Properties();
    try (InputStream in = BuildInfo.class.getResourceAsStream("/medtune-build.properties")) {
      if (in != null) {
        p.load(in);
      }
    } catch (IOException ignored) {
      // version stays "dev"
    }
    return p;
  }
}
