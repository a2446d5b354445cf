"""Side-by-side: ebiq against DuckDB, Polars, ClickHouse (chdb, in-process) and stock DataFusion
(Python) on the same data.

Each engine answers the main report, outpatient appointments the EBI rule "Low back pain imaging"
flags by provider and month (queries/01_flagged_by_provider_month.sql), in its own process, so
that wall time and peak memory are that engine's alone. Runs alternate between engines. Every
peer's answer must equal ebiq's, or the script fails.

Run through benches/compare.sh, which builds ebiq, generates the data and makes the virtualenv.
"""

import argparse
import csv
import glob
import io
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# The rule as the peers can say it: the published LIKE patterns as case-insensitive regular
# expressions ('%U05[45]%' is an unanchored search for U05[45]). NULL handling is ebiq's default
# ("intended") reading: a NULL diagnosis or administrative category excludes nothing.
SPINE = "U05[45]"
IMAGING = "U13[2356]|U21[1267]"
SITE = "Z665|O162"
CANCER = "C[0-9][0-9]|D0|D3[789]|D4[0-8]"
MONTH = "^[0-9]{4}(0[1-9]|1[0-2])$"
# The same patterns expanded into literal codes, for engines whose substring search beats regex.
SPINE_CODES = ["U054", "U055"]
IMAGING_CODES = ["U132", "U133", "U135", "U136", "U211", "U212", "U216", "U217"]
SITE_CODES = ["Z665", "O162"]


def provider_sql(col):
    return (f"CASE WHEN length({col}) = 5 AND right({col}, 2) = '00' "
            f"THEN left({col}, 3) ELSE {col} END")


def duckdb_sql(data, matcher):
    p, d = "Der_Procedure_All", "Der_Diagnosis_All"
    if matcher == "regexp":
        def any_of(col, pattern, _codes):
            return f"regexp_matches({col}, '{pattern}', 'i')"
    else:
        def any_of(col, _pattern, codes):
            return "(" + " OR ".join(f"contains(upper({col}), '{c}')" for c in codes) + ")"
    return f"""
        SELECT {provider_sql('Der_Provider_Code')} AS provider, Der_Activity_Month AS month,
               count(*) AS flagged
        FROM read_parquet('{data}/opa/*.parquet')
        WHERE ({any_of(p, SPINE, SPINE_CODES)}
               OR ({any_of(p, IMAGING, IMAGING_CODES)} AND {any_of(p, SITE, SITE_CODES)}))
          AND coalesce(Age_at_Start_of_Episode_SUS, Der_Age_at_CDS_Activity_Date) BETWEEN 19 AND 120
          AND NOT coalesce(regexp_matches({d}, '{CANCER}', 'i'), false)
          AND NOT coalesce(rtrim(Administrative_Category) = '02', false)
          AND regexp_matches(Der_Activity_Month, '{MONTH}')
        GROUP BY 1, 2 ORDER BY 1, 2"""


def run_duckdb(data, matcher):
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count()}")
    return con.execute(duckdb_sql(data, matcher)).fetchall()


def clickhouse_sql(data, matcher):
    p, d = "Der_Procedure_All", "Der_Diagnosis_All"
    if matcher == "match":
        def any_of(col, pattern, _codes):
            return f"match({col}, '(?i){pattern}')"
    else:
        def any_of(col, _pattern, codes):
            listed = ", ".join(f"'{c}'" for c in codes)
            return f"multiSearchAnyCaseInsensitive({col}, [{listed}])"
    code = "Der_Provider_Code"
    return f"""
        SELECT if(length({code}) = 5 AND right({code}, 2) = '00', left({code}, 3), {code}) AS provider,
               Der_Activity_Month AS month, count(*) AS flagged
        FROM file('{data}/opa/*.parquet', Parquet)
        WHERE ({any_of(p, SPINE, SPINE_CODES)}
               OR ({any_of(p, IMAGING, IMAGING_CODES)} AND {any_of(p, SITE, SITE_CODES)}))
          AND coalesce(Age_at_Start_of_Episode_SUS, Der_Age_at_CDS_Activity_Date) BETWEEN 19 AND 120
          AND NOT coalesce(match({d}, '(?i){CANCER}'), false)
          AND NOT coalesce(trimRight(Administrative_Category) = '02', false)
          AND match(Der_Activity_Month, '{MONTH}')
        GROUP BY provider, month ORDER BY provider, month"""


def run_clickhouse(data, matcher):
    import chdb
    text = str(chdb.query(clickhouse_sql(data, matcher), "CSV"))
    return [tuple(row) for row in csv.reader(io.StringIO(text))]


def run_polars(data):
    import polars as pl
    p, d = pl.col("Der_Procedure_All"), pl.col("Der_Diagnosis_All")
    age = pl.coalesce(pl.col("Age_at_Start_of_Episode_SUS"), pl.col("Der_Age_at_CDS_Activity_Date"))
    included = (p.str.contains(f"(?i){SPINE}")
                | (p.str.contains(f"(?i){IMAGING}") & p.str.contains(f"(?i){SITE}")))
    excluded = (d.str.contains(f"(?i){CANCER}").fill_null(False)
                | (pl.col("Administrative_Category").str.strip_chars_end(" ") == "02").fill_null(False))
    code = pl.col("Der_Provider_Code")
    provider = (pl.when((code.str.len_chars() == 5) & code.str.ends_with("00"))
                .then(code.str.slice(0, 3)).otherwise(code))
    frame = (pl.scan_parquet(f"{data}/opa/*.parquet")
             .filter(included.fill_null(False)
                     & age.is_between(19, 120).fill_null(False)
                     & ~excluded
                     & pl.col("Der_Activity_Month").str.contains(MONTH).fill_null(False))
             .group_by(provider.alias("provider"), pl.col("Der_Activity_Month").alias("month"))
             .agg(pl.len().alias("flagged"))
             .sort("provider", "month")
             .collect())
    return frame.rows()


def run_datafusion(data):
    from datafusion import SessionConfig, SessionContext
    ctx = SessionContext(SessionConfig().with_target_partitions(os.cpu_count()))
    ctx.register_parquet("opa", f"{data}/opa/")
    p, d = '"Der_Procedure_All"', '"Der_Diagnosis_All"'
    sql = f"""
        SELECT {provider_sql('"Der_Provider_Code"')} AS provider, "Der_Activity_Month" AS month,
               count(*) AS flagged
        FROM opa
        WHERE (regexp_like({p}, '{SPINE}', 'i')
               OR (regexp_like({p}, '{IMAGING}', 'i') AND regexp_like({p}, '{SITE}', 'i')))
          AND coalesce("Age_at_Start_of_Episode_SUS", "Der_Age_at_CDS_Activity_Date") BETWEEN 19 AND 120
          AND NOT coalesce(regexp_like({d}, '{CANCER}', 'i'), false)
          AND NOT coalesce(rtrim("Administrative_Category") = '02', false)
          AND regexp_like("Der_Activity_Month", '{MONTH}')
        GROUP BY 1, 2 ORDER BY 1, 2"""
    table = ctx.sql(sql).to_arrow_table()
    return list(zip(*(table.column(name).to_pylist() for name in ("provider", "month", "flagged"))))


def worker(engine, data):
    """Runs one engine and prints its answer as CSV: the parent times this process."""
    runners = {
        "duckdb (regexp)": lambda: run_duckdb(data, "regexp"),
        "duckdb (contains)": lambda: run_duckdb(data, "contains"),
        "polars": lambda: run_polars(data),
        "clickhouse (match)": lambda: run_clickhouse(data, "match"),
        "clickhouse (multiSearch)": lambda: run_clickhouse(data, "multisearch"),
        "datafusion-python": lambda: run_datafusion(data),
    }
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["provider", "month", "flagged"])
    out.writerows(runners[engine]())


def answer(text):
    rows = csv.DictReader(io.StringIO(text))
    return {(r["provider"], r["month"]): int(r["flagged"]) for r in rows}


def opa_rows(data):
    import pyarrow.parquet as pq
    return sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(f"{data}/opa/*.parquet"))


def versions():
    import chdb
    import datafusion
    import duckdb
    import polars
    return (f"duckdb {duckdb.__version__}, polars {polars.__version__}, chdb {chdb.__version__} "
            f"(ClickHouse {chdb.engine_version}), datafusion-python {datafusion.__version__}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker")
    parser.add_argument("--data", required=True)
    parser.add_argument("--ebiq")
    parser.add_argument("--queries")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.data)

    main_query = os.path.join(args.queries, "01_flagged_by_provider_month.sql")
    with tempfile.TemporaryDirectory() as only_main:
        shutil.copy(main_query, only_main)
        commands = {
            "ebiq": [args.ebiq, "report", "--quiet", "--format", "csv", "--data", args.data,
                     "--queries", only_main],
        }
        peers = ("duckdb (regexp)", "duckdb (contains)", "polars", "clickhouse (match)",
                 "clickhouse (multiSearch)", "datafusion-python")
        for engine in peers:
            commands[engine] = [sys.executable, __file__, "--worker", engine, "--data", args.data]
        walls = {engine: [] for engine in commands}
        peaks = {engine: 0 for engine in commands}
        answers = {}
        engines = list(commands)
        for run in range(args.runs):
            # Alternate: each run starts with a different engine, so none always runs warm.
            order = engines[run % len(engines):] + engines[:run % len(engines)]
            for engine in order:
                before = time.perf_counter()
                child = subprocess.Popen(commands[engine], stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
                # wait4 gives this child's own peak memory, not the largest of all children.
                out_chunks = []
                while True:
                    chunk = child.stdout.read(1 << 16)
                    if not chunk:
                        break
                    out_chunks.append(chunk)
                stderr = child.stderr.read()
                _, status, usage = os.wait4(child.pid, 0)
                walls[engine].append(time.perf_counter() - before)
                if os.waitstatus_to_exitcode(status) != 0:
                    sys.exit(f"{engine} failed:\n{stderr.decode()}")
                peaks[engine] = max(peaks[engine], usage.ru_maxrss / 1024)
                answers[engine] = answer(b"".join(out_chunks).decode())
                print(f"run {run + 1}: {engine:18} {walls[engine][-1]:7.2f}s", file=sys.stderr)

    reference = answers["ebiq"]
    for engine, got in answers.items():
        if got != reference:
            differ = sorted(set(got.items()) ^ set(reference.items()))[:5]
            sys.exit(f"{engine}'s answer differs from ebiq's, for example {differ}")

    rows = opa_rows(args.data)
    flagged = sum(reference.values())
    base = statistics.median(walls["ebiq"])
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"{rows:,} outpatient rows, {flagged:,} flagged in {len(reference):,} provider-months; "
          f"every answer equal to ebiq's")
    print(f"machine: {os.cpu_count()} cores, {cpu}; {versions()}; median of {args.runs} runs")
    print()
    print("| engine | median wall (s) | rows/s | peak memory (MB) | wall vs ebiq |")
    print("|---|---:|---:|---:|---:|")
    for engine in engines:
        wall = statistics.median(walls[engine])
        print(f"| {engine} | {wall:.2f} | {rows / wall / 1e6:.1f}M | {peaks[engine]:.0f} | "
              f"{wall / base:.2f}x |")


if __name__ == "__main__":
    main()
