#!/usr/bin/env bash
# How ebiq's cost grows with the data, and what the main report costs over the rule's own yardstick.
#
#   benches/scaling.sh [--sizes "1000000 5000000 ..."] [--runs R] [--keep] [--layout LAYOUT]
#
# --layout by-provider or shuffled generates files that each mix every month (bench-data/sus-N-LAYOUT),
# as extracts ordered by provider or by load time come; the default is one file per month.
# Builds ebiq (release) and, for each size (default 1M, 5M, 20M, 100M outpatient rows), generates a
# dataset into bench-data/sus-N unless one is there, then measures, R times each (default 3):
#   clause  SELECT count(*) FROM opa WHERE <the rule's procedure clause>   (ebiq sql)
#   query   01's SQL alone, months bound as literals                       (ebiq sql -f)
#   report  ebiq report with only queries/01, so with the input checks and the run summary
#   whole   ebiq report with every query in queries/, CSV files into a scratch folder
# and prints a table of median wall times, the ratios the report is held to (report / query,
# whole / report), the whole report's ns per row, and peak resident memory.
# Datasets above 20M rows are deleted after their row unless --keep (500M rows is 6.5 GB).
set -euo pipefail
source "$(dirname "$0")/common.sh"

sizes="1000000 5000000 20000000 100000000"
runs=3
keep=false
layout=by-month
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --keep) keep=true; shift ;;
        --layout) layout=$2; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "scaling.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done

build_ebiq
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
main=$root/queries/01_flagged_by_provider_month.sql
mkdir -p "$scratch/queries"
cp "$main" "$scratch/queries/"
sed 's/\$from_month/'"'000000'"'/; s/\$to_month/'"'999999'"'/' "$main" > "$scratch/01_bound.sql"
clause="SELECT count(*) FROM opa WHERE \
ebi_lower_back_imaging_included_by_der_procedure_all(der_procedure_all)"

echo "layout $layout; medians of $runs runs; $(nproc) cores; $(date -u +%Y-%m-%d)"
echo
echo "| outpatient rows | clause (s) | 01 SQL (s) | report, 01 alone (s) | report / 01 SQL | whole report (s) | whole / report | whole ns/row | report peak (MB) | whole peak (MB) |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for rows in $sizes; do
    data=$root/bench-data/sus-$rows
    [ "$layout" = by-month ] || data=$data-$layout
    ensure_dataset "$rows" "$data" "$layout"
    measure "$runs" "$ebiq" sql --data "$data" --format csv "$clause"
    clause_wall=$wall
    measure "$runs" "$ebiq" sql --data "$data" --format csv -f "$scratch/01_bound.sql"
    query_wall=$wall
    measure "$runs" "$ebiq" report --quiet --data "$data" --queries "$scratch/queries" --format csv
    report_wall=$wall report_peak=$peak
    measure "$runs" "$ebiq" report --quiet --data "$data" --format csv --out "$scratch/whole"
    awk -v rows="$rows" -v c="$clause_wall" -v q="$query_wall" -v r="$report_wall" \
        -v rp="$report_peak" -v w="$wall" -v wp="$peak" 'BEGIN {
        printf "| %d | %.2f | %.2f | %.2f | %.2fx | %.2f | %.2fx | %.0f | %d | %d |\n",
            rows, c, q, r, r / q, w, w / r, w * 1e9 / rows, rp, wp }'
    if [ "$keep" = false ] && [ "$rows" -gt 20000000 ]; then
        rm -rf "$data"
    fi
done
