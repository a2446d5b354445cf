#!/usr/bin/env bash
# ebiq serve against ebiq sql over a generated dataset: the main report query through psycopg (a
# Python client) and through `ebiq sql`, alternating, medians of --runs; then the server's peak
# resident memory before and while a client streams every row of opa (COPY ... TO STDOUT through
# psql, the rows discarded), which shows whether the server holds the result or streams it.
# The server listens on 127.0.0.1 only and is stopped at the end.
#
#   benches/serve.sh [--rows 20000000] [--runs 5] [--data DIR]
set -euo pipefail
source "$(dirname "$0")/common.sh"

rows=20000000
runs=5
data=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) rows=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
data=${data:-$root/bench-data/sus-$rows}

build_ebiq
ensure_dataset "$rows" "$data"
client_venv

work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2> /dev/null || true; wait "$server" 2> /dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
start_server "$work/serve.log" --data "$data"

main_sql=$(sed "s/\$from_month/'000000'/; s/\$to_month/'999999'/" "$root/queries/01_flagged_by_provider_month.sql")
cat > "$work/psycopg_main.py" << 'PY'
import sys, time, psycopg
started = time.perf_counter()
with psycopg.connect(f"host=127.0.0.1 port={sys.argv[1]} dbname=ebiq user=bench") as conn:
    rows = conn.execute(open(sys.argv[2]).read()).fetchall()
print(len(rows))
# Connecting, running and fetching, without the interpreter's start and imports.
print(f"{time.perf_counter() - started:.3f}", file=sys.stderr)
PY
printf '%s' "$main_sql" > "$work/main.sql"
# The same rows both ways, before timing.
"$venv/bin/python" "$work/psycopg_main.py" "$port" "$work/main.sql" > "$work/served.count" 2> /dev/null
"$ebiq" sql --quiet --data "$data" --format csv "$main_sql" | tail -n +2 | wc -l > "$work/sql.count"
cmp "$work/served.count" "$work/sql.count"

served=()
in_client=()
direct=()
for _ in $(seq "$runs"); do
    measure 1 "$venv/bin/python" "$work/psycopg_main.py" "$port" "$work/main.sql"
    served+=("$wall")
    in_client+=("$("$venv/bin/python" "$work/psycopg_main.py" "$port" "$work/main.sql" 2>&1 > /dev/null)")
    measure 1 "$ebiq" sql --quiet --data "$data" --format csv "$main_sql"
    direct+=("$wall")
done
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
echo "main query, $rows rows, median of $runs: psycopg through ebiq serve $(median "${served[@]}") s" \
     "(the client's process; connect, run and fetch alone $(median "${in_client[@]}") s), ebiq sql $(median "${direct[@]}") s"

rss() { awk '/^VmRSS/ { print int($2 / 1024) }' "/proc/$server/status"; }
hwm() { awk '/^VmHWM/ { print int($2 / 1024) }' "/proc/$server/status"; }
before=$(rss)
peak_before=$(hwm)
start=$(date +%s.%N)
PGCONNECT_TIMEOUT=10 psql "host=127.0.0.1 port=$port dbname=ebiq user=bench" \
    -c "COPY (SELECT * FROM opa) TO STDOUT" | wc -c > "$work/bytes"
end=$(date +%s.%N)
echo "streaming every opa row (COPY TO STDOUT): $(cat "$work/bytes") bytes in $(echo "$end - $start" | bc) s;" \
     "server resident ${before} MB before (peak so far ${peak_before} MB), peak $(hwm) MB after"
