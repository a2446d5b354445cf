// JDBC against a running `ebiq serve`, as DBeaver and other Java tools use it: the driver's
// DatabaseMetaData lists the tables and columns, and a PreparedStatement binds a parameter.
//
//   java -cp /usr/share/java/postgresql.jar tests/clients/JdbcClient.java PORT EXPECTED_RXH_COUNT
//
// Run by tests/clients/run.sh; prints "jdbc: N passed, N failed" and exits 1 on any failure.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.List;

public class JdbcClient {
    static int passed = 0;
    static int failed = 0;

    interface Check {
        void run() throws Exception;
    }

    static void check(String name, Check check) {
        try {
            check.run();
            passed++;
            System.out.println("ok   jdbc: " + name);
        } catch (Throwable error) {
            failed++;
            System.out.println("FAIL jdbc: " + name + ": " + error);
        }
    }

    static void require(boolean condition, String what) {
        if (!condition) {
            throw new AssertionError(what);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/ebiq?connectTimeout=10";
        long expectedCount = Long.parseLong(args[1]);
        try (Connection conn = DriverManager.getConnection(url, "analyst", "")) {
            DatabaseMetaData meta = conn.getMetaData();
            check("getTables lists opa as a table", () -> {
                List<String> tables = new ArrayList<>();
                try (ResultSet rs = meta.getTables(null, null, "%", new String[] {"TABLE"})) {
                    while (rs.next()) {
                        tables.add(rs.getString("TABLE_NAME"));
                    }
                }
                require(tables.contains("opa"), "tables: " + tables);
            });
            check("getColumns describes opa", () -> {
                List<String> columns = new ArrayList<>();
                try (ResultSet rs = meta.getColumns(null, "public", "opa", "%")) {
                    while (rs.next()) {
                        columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
                    }
                }
                require(columns.contains("der_procedure_all:text"), "columns: " + columns);
            });
            check("getSchemas lists reports", () -> {
                List<String> schemas = new ArrayList<>();
                try (ResultSet rs = meta.getSchemas()) {
                    while (rs.next()) {
                        schemas.add(rs.getString("TABLE_SCHEM"));
                    }
                }
                require(schemas.contains("reports"), "schemas: " + schemas);
            });
            check("a PreparedStatement binds a parameter", () -> {
                String sql = "SELECT count(*) FROM opa WHERE der_provider_code = ?";
                try (PreparedStatement statement = conn.prepareStatement(sql)) {
                    statement.setString(1, "RXH");
                    try (ResultSet rs = statement.executeQuery()) {
                        require(rs.next(), "a row");
                        long count = rs.getLong(1);
                        require(count == expectedCount, count + " != " + expectedCount);
                    }
                }
            });
            check("an unknown table is SQLSTATE 42P01", () -> {
                try (PreparedStatement statement = conn.prepareStatement("SELECT * FROM opa_typo")) {
                    statement.executeQuery();
                    throw new AssertionError("no error");
                } catch (SQLException error) {
                    require("42P01".equals(error.getSQLState()), "state " + error.getSQLState());
                }
            });
        }
        System.out.println("jdbc: " + passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
