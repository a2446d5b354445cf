// JDBC against a running `ebiq serve`, as DBeaver and other Java tools use it: the driver's
// DatabaseMetaData lists the tables and columns, a PreparedStatement binds a parameter, and the
// main report view and a statistic's equal the report's CSVs.
//
//   java -cp /usr/share/java/postgresql.jar tests/clients/JdbcClient.java PORT EXPECTED_RXH_COUNT \
//       REPORT_CSV_DIR
//
// Run by tests/clients/run.sh; prints "jdbc: N passed, N failed" and exits 1 on any failure.

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
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

    /** Equal as text, or as numbers where both are (the wire and the CSV may spell a double differently). */
    static boolean sameCell(String wire, String csv) {
        if (wire.equals(csv)) {
            return true;
        }
        try {
            double a = Double.parseDouble(wire);
            double b = Double.parseDouble(csv);
            return Math.abs(a - b) <= 1e-12 * Math.max(Math.abs(a), Math.abs(b));
        } catch (NumberFormatException notNumbers) {
            return false;
        }
    }

    /** A report view read through JDBC equals the report's CSV (header included), row for row. */
    static void sameAsReport(Connection conn, String view, Path csv) throws Exception {
        List<String> want = Files.readAllLines(csv);
        List<String[]> got = new ArrayList<>();
        try (Statement statement = conn.createStatement();
                ResultSet rs = statement.executeQuery("SELECT * FROM reports." + view)) {
            int columns = rs.getMetaData().getColumnCount();
            String[] header = new String[columns];
            for (int i = 0; i < columns; i++) {
                header[i] = rs.getMetaData().getColumnName(i + 1);
            }
            got.add(header);
            while (rs.next()) {
                String[] row = new String[columns];
                for (int i = 0; i < columns; i++) {
                    String value = rs.getString(i + 1);
                    row[i] = value == null ? "" : value;
                }
                got.add(row);
            }
        }
        require(got.size() == want.size() && got.size() > 1, view + ": rows " + got.size() + " vs " + want.size());
        for (int r = 0; r < want.size(); r++) {
            String[] cells = want.get(r).split(",", -1);
            String[] row = got.get(r);
            require(cells.length == row.length, view + " row " + r + ": columns");
            for (int c = 0; c < cells.length; c++) {
                require(sameCell(row[c], cells[c]), view + " row " + r + ": " + row[c] + " vs " + cells[c]);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/ebiq?connectTimeout=10";
        long expectedCount = Long.parseLong(args[1]);
        Path reportDir = Path.of(args[2]);
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
            check("the main report view equals the report's CSV", () ->
                    sameAsReport(conn, "flagged_by_provider_month",
                            reportDir.resolve("01_flagged_by_provider_month.csv")));
            check("the DSR view equals the report's CSV", () ->
                    sameAsReport(conn, "standardised_rates_by_commissioner",
                            reportDir.resolve("06_standardised_rates_by_commissioner.csv")));
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
