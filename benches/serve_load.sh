#!/usr/bin/env bash
# Load on ebiq serve (release build) over a generated dataset: --clients connections at once for
# --seconds (benches/serve_load.py: main report query, lookups by opa_ident, the explain function,
# a publisher's report view; every answer compared with the same statement run alone), the
# server's resident memory sampled every second against --memory-limit, then a client killed
# mid-statement and the server's memory after. The server listens on 127.0.0.1 only, with logins,
# and is stopped at the end. Each client holds two connections (an analyst's and a publisher's).
#
#   benches/serve_load.sh [--rows 20000000] [--clients 32] [--seconds 300] [--memory-limit 4G]
#                         [--data DIR]   (a dataset of that many rows laid out otherwise)
set -euo pipefail
source "$(dirname "$0")/common.sh"

rows=20000000
clients=32
seconds=300
memory_limit=4G
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) rows=$2; shift 2 ;;
        --clients) clients=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --memory-limit) memory_limit=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
data=${data:-$root/bench-data/sus-$rows}

build_ebiq
[ "$data" != "$root/bench-data/sus-$rows" ] || ensure_dataset "$rows" "$data"
client_venv

work=$(mktemp -d)
server=""
sampler=""
cleanup() {
    for pid in $sampler $server; do kill "$pid" 2> /dev/null || true; wait "$pid" 2> /dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

printf 'load analyst pw\nload analyst pw\n' | "$ebiq" serve --add-user load_analyst --role analyst --users "$work/users" 2> /dev/null
printf 'load publisher pw\nload publisher pw\n' | "$ebiq" serve --add-user load_publisher --role publisher --users "$work/users" 2> /dev/null
start_server "$work/serve.log" --data "$data" --users "$work/users" \
    --memory-limit "$memory_limit" --max-connections $((2 * clients + 8))
rss_mb() { awk '/^VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$server/status"; }

sed "s/\$from_month/'000000'/; s/\$to_month/'999999'/" "$root/queries/01_flagged_by_provider_month.sql" > "$work/main.sql"
( while kill -0 "$server" 2> /dev/null; do rss_mb >> "$work/rss"; echo >> "$work/rss"; sleep 1; done ) &
sampler=$!

echo "## ebiq serve under load: $clients clients for ${seconds}s, $rows rows, --memory-limit $memory_limit"
echo "dataset $data"
echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(date -u +%Y-%m-%d)"
echo
status=0
"$venv/bin/python" "$root/benches/serve_load.py" "$port" "$work/main.sql" "$clients" "$seconds" \
    'load analyst pw' 'load publisher pw' || status=$?
echo
echo "server resident memory during the load: peak $(sort -n "$work/rss" | tail -n 1) MB (--memory-limit $memory_limit)"

# A client killed mid-statement, three times: the server's memory before, while the statement
# ran, and ten seconds after each kill. Memory that a kill leaked would grow with each; memory the
# allocator keeps for reuse stays level.
sleep 5
before=$(rss_mb)
echo "client killed mid-statement: server RSS ${before} MB before the first"
for kill_number in 1 2 3; do
    PGPASSWORD='load analyst pw' psql "host=127.0.0.1 port=$port dbname=ebiq user=load_analyst" \
        -c "SELECT der_provider_code, array_agg(der_procedure_all) FROM opa GROUP BY der_provider_code" > /dev/null 2>&1 &
    killed=$!
    sleep 3
    during=$(rss_mb)
    kill -9 "$killed" 2> /dev/null || true
    wait "$killed" 2> /dev/null || true
    sleep 10
    echo "  kill $kill_number: ${during} MB while it ran, $(rss_mb) MB ten seconds after"
done
echo "statements the server stopped because their client went away: $(grep -c 'the client went away' "$work/serve.log" || true)"
exit $status
