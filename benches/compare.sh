#!/usr/bin/env bash
# ebiq against DuckDB, Polars, ClickHouse (chdb) and stock DataFusion (Python), side by side, on one
# generated dataset.
#
#   benches/compare.sh [--rows N] [--runs R] [--data DIR] [--layout by-month|by-provider|shuffled]
#
# Builds ebiq (release), generates N outpatient rows (default 20,000,000) into DIR unless a complete
# dataset is already there (--layout shuffled: every file mixes every month, in
# bench-data/sus-N-shuffled), makes its own virtualenv with the peers pinned in
# benches/requirements.txt, then runs benches/compare.py: alternating runs, answers checked equal,
# a table of median wall time, rows/s, peak memory and the ratio to ebiq.
set -euo pipefail

source "$(dirname "$0")/common.sh"
rows=20000000
runs=3
data=""
layout=by-month
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) rows=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --layout) layout=$2; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$data" ]; then
    data=$root/bench-data/sus-$rows
    [ "$layout" = by-month ] || data=$data-$layout
fi

build_ebiq
ensure_dataset "$rows" "$data" "$layout"
echo "layout $layout; $(nproc) cores; $(date -u +%Y-%m-%d)"

venv=${EBIQ_BENCH_VENV:-$root/benches/.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/benches/requirements.txt"

exec "$venv/bin/python" "$root/benches/compare.py" \
    --ebiq "$ebiq" --data "$data" --runs "$runs" --queries "$root/queries"
