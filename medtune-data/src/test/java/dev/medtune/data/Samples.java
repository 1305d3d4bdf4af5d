package dev.medtune.data;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** The real MedMCQA rows shipped in src/test/resources/medmcqa, by id. */
final class Samples {
  record Sample(String id, List<String> options, int cop, String exp) {}

  static final List<String> FILES =
      List.of("train-sample.csv", "validation-sample.csv", "validation-pharmacology.csv");

  private static Map<String, Sample> byId;

  private Samples() {}

  static Path resource(String name) {
    try {
      return Path.of(Samples.class.getResource("/medmcqa/" + name).toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  static synchronized Map<String, Sample> byId() throws SQLException {
    if (byId == null) {
      Map<String, Sample> m = new HashMap<>();
      try (Connection c = DriverManager.getConnection("jdbc:duckdb:");
          Statement s = c.createStatement()) {
        for (String f : FILES) {
          try (ResultSet rs = s.executeQuery("SELECT id, opa, opb, opc, opd, cop, exp FROM read_csv("
              + MedMcqaReader.literal(resource(f)) + ", header=true, all_varchar=true)")) {
            while (rs.next()) {
              m.putIfAbsent(rs.getString(1), new Sample(rs.getString(1),
                  List.of(rs.getString(2), rs.getString(3), rs.getString(4), rs.getString(5)),
                  Integer.parseInt(rs.getString(6)), rs.getString(7) == null ? "" : rs.getString(7)));
            }
          }
        }
      }
      byId = m;
    }
    return byId;
  }
}
