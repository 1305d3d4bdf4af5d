package dev.medtune.data.bench;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;

/**
 * The benchmark's baseline: DuckDB (the same JDBC driver, in the same kind of JVM) reading every
 * column of a MedMCQA file once, with no Java-side work. Prints the row count and text length.
 */
public final class DuckDbScan {
  public static void main(String[] args) throws Exception {
    String path = args[0];
    String lit = "'" + path.replace("'", "''") + "'";
    String source;
    if (path.endsWith(".parquet")) {
      source = "read_parquet(" + lit + ")";
    } else if (path.endsWith(".csv")) {
      source = "read_csv(" + lit + ", header=true, all_varchar=true)";
    } else {
      source = "read_json(" + lit + ", format='newline_delimited')";
    }
    String sql = "SELECT count(*), sum(length(CAST(id AS VARCHAR)) + length(question) + length(opa)"
        + " + length(opb) + length(opc) + length(opd) + length(CAST(cop AS VARCHAR))"
        + " + length(choice_type) + coalesce(length(exp), 0) + length(subject_name)) FROM " + source;
    try (Connection c = DriverManager.getConnection("jdbc:duckdb:");
        Statement s = c.createStatement();
        ResultSet rs = s.executeQuery(sql)) {
      rs.next();
      System.out.println(rs.getLong(1) + " rows, " + rs.getLong(2) + " characters");
    }
  }
}
