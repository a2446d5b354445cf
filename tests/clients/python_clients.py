"""Python clients analysts use, against a running `ebiq serve`: psycopg 3 with a bound parameter,
pandas and polars over it, SQLAlchemy, and the ADBC driver reading Arrow through binary COPY.
Each answer is compared with what the `ebiq` binary itself gives for the same SQL or report.

Usage: python_clients.py PORT EBIQ_BINARY REPORT_CSV_DIR   (run by tests/clients/run.sh)
"""

import csv
import subprocess
import sys

import adbc_driver_postgresql.dbapi as adbc
import pandas as pd
import polars as pl
import psycopg
import sqlalchemy as sa

port, ebiq, report_dir = sys.argv[1], sys.argv[2], sys.argv[3]
dsn = f"host=127.0.0.1 port={port} dbname=ebiq user=analyst connect_timeout=10"
uri = f"postgresql://analyst@127.0.0.1:{port}/ebiq"
MAIN = "reports.flagged_by_provider_month"
passed, failed = 0, 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as error:  # noqa: BLE001 - every failure is reported, then counted
        failed += 1
        print(f"FAIL {name}: {type(error).__name__}: {error}")


def ebiq_sql_csv(sql):
    """Rows of `ebiq sql --format csv SQL` over the sample, as text."""
    out = subprocess.run(
        [ebiq, "sql", "--quiet", "--format", "csv", sql],
        check=True, capture_output=True, text=True, timeout=300,
    ).stdout
    return list(csv.reader(out.splitlines()))


def report_rows(name):
    with open(f"{report_dir}/{name}.csv", newline="") as f:
        return list(csv.reader(f))


def as_text_rows(frame):
    """A data frame's rows as the text the CSV writer gives (integers without '.0')."""
    return [[str(v) for v in row] for row in frame.itertuples(index=False)]


expected_main = report_rows("01_flagged_by_provider_month")


def psycopg_bound_parameter():
    with psycopg.connect(dsn) as conn:
        got = conn.execute(
            "SELECT count(*) FROM opa WHERE der_provider_code = %s", ("RXH",)
        ).fetchone()[0]
    want = ebiq_sql_csv("SELECT count(*) FROM opa WHERE der_provider_code = 'RXH'")[1][0]
    assert str(got) == want and got > 0, (got, want)


def psycopg_sqlstate():
    with psycopg.connect(dsn) as conn:
        try:
            conn.execute("SELECT * FROM opa_typo")
        except psycopg.errors.UndefinedTable as error:
            assert error.sqlstate == "42P01"
            return
    raise AssertionError("no UndefinedTable error")


def psycopg_copy_csv():
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        text = ""
        with cur.copy(f"COPY (SELECT * FROM {MAIN}) TO STDOUT (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                text += bytes(chunk).decode()
    assert list(csv.reader(text.splitlines())) == expected_main


def pandas_read_sql():
    with psycopg.connect(dsn) as conn:
        frame = pd.read_sql(f"SELECT * FROM {MAIN}", conn)
    assert [list(frame.columns)] + as_text_rows(frame) == expected_main


def polars_over_psycopg():
    with psycopg.connect(dsn) as conn:
        frame = pl.read_database(f"SELECT * FROM {MAIN}", conn)
    assert frame.columns == expected_main[0]
    assert [[str(v) for v in row] for row in frame.rows()] == expected_main[1:]


def polars_over_adbc():
    frame = pl.read_database_uri(f"SELECT * FROM {MAIN}", uri, engine="adbc")
    assert [[str(v) for v in row] for row in frame.rows()] == expected_main[1:]


def adbc_arrow_table():
    with adbc.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM {MAIN}")
        table = cur.fetch_arrow_table()
    assert table.column_names == expected_main[0]
    rows = [[str(v) for v in row.values()] for row in table.to_pylist()]
    assert rows == expected_main[1:]


def adbc_statistic():
    # A statistic: directly standardised rates by commissioner, against the report's CSV.
    want = report_rows("06_standardised_rates_by_commissioner")
    with adbc.connect(uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM reports.standardised_rates_by_commissioner")
        table = cur.fetch_arrow_table()
    assert table.column_names == want[0]
    got = table.to_pylist()
    assert len(got) == len(want) - 1 > 0
    for row, expected in zip(got, want[1:]):
        for value, text in zip(row.values(), expected):
            if isinstance(value, float):
                assert abs(value - float(text)) <= 1e-9 * max(1.0, abs(value)), (value, text)
            else:
                assert ("" if value is None else str(value)) == text, (value, text)


def sqlalchemy_query():
    engine = sa.create_engine(f"postgresql+psycopg://analyst@127.0.0.1:{port}/ebiq")
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text(f"SELECT * FROM {MAIN} WHERE provider = :p"), conn,
                            params={"p": expected_main[1][0]})
    want = [row for row in expected_main[1:] if row[0] == expected_main[1][0]]
    assert as_text_rows(frame) == want


def sqlalchemy_reflect():
    engine = sa.create_engine(f"postgresql+psycopg://analyst@127.0.0.1:{port}/ebiq")
    metadata = sa.MetaData()
    metadata.reflect(engine)
    want = ebiq_sql_csv("SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'opa' ORDER BY ordinal_position")
    assert [c.name for c in metadata.tables["opa"].columns] == [row[0] for row in want[1:]]
    types = {c.name: type(c.type).__name__ for c in metadata.tables["opa"].columns}
    assert (types["opa_ident"], types["appointment_date"]) == ("BIGINT", "DATE"), types
    views = sa.MetaData()
    views.reflect(engine, schema="reports", views=True)
    main = views.tables[MAIN]
    assert [c.name for c in main.columns] == expected_main[0], [c.name for c in main.columns]
    assert "reports" in sa.inspect(engine).get_schema_names()


for test in [psycopg_bound_parameter, psycopg_sqlstate, psycopg_copy_csv, pandas_read_sql,
             polars_over_psycopg, polars_over_adbc, adbc_arrow_table, adbc_statistic,
             sqlalchemy_query, sqlalchemy_reflect]:
    check(test.__name__, test)

print(f"python clients: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
