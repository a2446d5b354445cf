"""Load on `ebiq serve`: CLIENTS connections at once for SECONDS, each running, in turn, the main
report query (as an analyst), a lookup by opa_ident, the rule's explain function on one record,
and a report view read by a publisher. Every answer is compared with the same statement's answer
run alone before the load; latencies are reported per kind (p50, p95). Prints a Markdown table.

    python serve_load.py PORT MAIN_SQL_FILE CLIENTS SECONDS ANALYST_PASSWORD PUBLISHER_PASSWORD

Run by benches/serve_load.sh, which starts the server (loopback only) and its users.
"""

import random
import statistics
import sys
import threading
import time

import psycopg

port, main_file, clients, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
analyst_password, publisher_password = sys.argv[5], sys.argv[6]
main_sql = open(main_file).read()


def connect(user, password):
    return psycopg.connect(host="127.0.0.1", port=port, dbname="ebiq", user=user,
                           password=password, connect_timeout=30, autocommit=True)


def analyst():
    return connect("load_analyst", analyst_password)


def publisher():
    return connect("load_publisher", publisher_password)


with analyst() as conn:
    ids = [row[0] for row in conn.execute(
        "SELECT opa_ident FROM opa WHERE opa_ident % 100003 = 7 LIMIT 40").fetchall()]
    flagged = [row[0] for row in conn.execute(
        "SELECT opa_ident FROM opa WHERE ebi_lower_back_imaging(der_procedure_all, "
        "age_at_start_of_episode_sus, der_age_at_cds_activity_date, der_diagnosis_all, "
        "administrative_category) IS NOT NULL LIMIT 10").fetchall()]

EXPLAIN = ("SELECT opa_ident, ebi_lower_back_imaging_explain(der_procedure_all, "
           "age_at_start_of_episode_sus, der_age_at_cds_activity_date, der_diagnosis_all, "
           "administrative_category) FROM opa WHERE opa_ident = %s")
LOOKUP = "SELECT * FROM opa WHERE opa_ident = %s"
PUBLISHED = "SELECT * FROM reports.flagged_by_provider_month"

# Each kind: (connect, sql, parameters for one run), and its answers run alone.
kinds = {
    "main report query": (analyst, lambda rng: (main_sql, None)),
    "lookup by opa_ident": (analyst, lambda rng: (LOOKUP, (rng.choice(ids),))),
    "explain of a record": (analyst, lambda rng: (EXPLAIN, (rng.choice(flagged),))),
    "reports view (publisher)": (publisher, lambda rng: (PUBLISHED, None)),
}
alone = {}
with analyst() as conn:
    alone[main_sql, None] = conn.execute(main_sql).fetchall()
    for i in ids:
        alone[LOOKUP, (i,)] = conn.execute(LOOKUP, (i,)).fetchall()
    for i in flagged:
        alone[EXPLAIN, (i,)] = conn.execute(EXPLAIN, (i,)).fetchall()
with publisher() as conn:
    alone[PUBLISHED, None] = conn.execute(PUBLISHED).fetchall()

latencies = {kind: [] for kind in kinds}
failures = []
lock = threading.Lock()
deadline = time.monotonic() + seconds


def client(number):
    rng = random.Random(number)
    names = list(kinds)
    connections = {}
    turn = number
    while time.monotonic() < deadline:
        kind = names[turn % len(names)]
        turn += 1
        connect, make = kinds[kind]
        try:
            conn = connections.get(connect) or connections.setdefault(connect, connect())
            sql, params = make(rng)
            started = time.perf_counter()
            rows = conn.execute(sql, params).fetchall()
            took = time.perf_counter() - started
            with lock:
                latencies[kind].append(took)
                if rows != alone[sql, params]:
                    failures.append(f"{kind}: answer differs from the statement run alone")
        except Exception as error:  # noqa: BLE001 - every failure is counted and shown
            with lock:
                failures.append(f"{kind}: {type(error).__name__}: {error}")
    for conn in connections.values():
        conn.close()


threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()

print(f"| kind | statements | p50 (s) | p95 (s) |")
print(f"|---|---:|---:|---:|")
for kind, times in latencies.items():
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))] if times else float("nan")
    p50 = statistics.median(times) if times else float("nan")
    print(f"| {kind} | {len(times)} | {p50:.3f} | {p95:.3f} |")
print(f"\nfailed statements: {len(failures)}")
for failure in failures[:20]:
    print(f"  {failure}")
sys.exit(1 if failures else 0)
