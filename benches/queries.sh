#!/usr/bin/env bash
# What each report query costs on one generated dataset, and the whole report as CSV and as HTML.
#
#   benches/queries.sh [--rows N] [--runs R] [--data DIR] [--layout by-month|by-provider|shuffled]
#
# Builds ebiq (release), generates N outpatient rows (default 20,000,000) with their population into
# DIR unless a complete dataset is already there (--layout shuffled: every file mixes every month,
# in bench-data/sus-N-shuffled), then runs each queries/*.sql alone through
# `ebiq report` (summary included), and the whole report with --format csv and --format html, R
# times each (default 3): a table of median wall time and peak resident memory (GNU time).
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
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "queries.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
if [ -z "$data" ]; then
    data=$root/bench-data/sus-$rows
    [ "$layout" = by-month ] || data=$data-$layout
fi

build_ebiq
ensure_dataset "$rows" "$data" "$layout"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "layout $layout; medians of $runs runs; $(nproc) cores; $(date -u +%Y-%m-%d)"
echo
echo "| report | median wall (s) | peak memory (MB) |"
echo "|---|---:|---:|"
for query in "$root"/queries/*.sql; do
    name=$(basename "$query" .sql)
    mkdir -p "$scratch/$name"
    cp "$query" "$scratch/$name/"
    measure "$runs" "$ebiq" report --quiet --data "$data" --queries "$scratch/$name" --format csv
    echo "| $name alone | $wall | $peak |"
done
measure "$runs" "$ebiq" report --quiet --data "$data" --format csv --out "$scratch/csv"
echo "| all $(ls "$root"/queries/*.sql | wc -l) queries, --format csv --out | $wall | $peak |"
measure "$runs" "$ebiq" report --quiet --data "$data" --format html --out "$scratch/html"
echo "| all queries, --format html --out (one page) | $wall | $peak |"
