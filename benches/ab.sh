#!/usr/bin/env bash
# Two ebiq binaries alternating on the same report: a change's before and after, on one machine.
#
#   benches/ab.sh --before BIN --after BIN [--data DIR] [--queries DIR] [--runs R]
#
# Each run is `BIN report --quiet --data DIR --queries DIR --format csv --out TMP` (default: the
# 20M-row dataset and every query in queries/), the two binaries taking turns so that both see the
# same state of the machine. Prints each binary's median wall time and peak memory and their
# ratio; fails if their CSV outputs differ.
set -euo pipefail

source "$(dirname "$0")/common.sh"
before="" after="" runs=7
data=$root/bench-data/sus-20000000
queries=$root/queries
while [ $# -gt 0 ]; do
    case "$1" in
        --before) before=$2; shift 2 ;;
        --after) after=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --queries) queries=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "ab.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
done
[ -x "$before" ] && [ -x "$after" ] || { echo "ab.sh: --before and --after take two ebiq binaries" >&2; exit 2; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
declare -A walls peaks
for _ in $(seq "$runs"); do
    for side in before after; do
        binary=${!side}
        /usr/bin/time -f '%e %M' -o "$scratch/time" "$binary" report --quiet --data "$data" \
            --queries "$queries" --format csv --out "$scratch/$side" > /dev/null 2> "$scratch/err" \
            || { cat "$scratch/err" >&2; exit 1; }
        read -r wall peak < "$scratch/time"
        walls[$side]+="$wall "
        peaks[$side]+="$peak "
    done
done
for output in "$scratch"/before/*.csv; do
    cmp -s "$output" "$scratch/after/$(basename "$output")" \
        || { echo "ab.sh: $(basename "$output") differs between the two binaries" >&2; exit 1; }
done

median() { tr ' ' '\n' | grep . | sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
echo "$(date -u +%Y-%m-%d); $(nproc) cores; $runs runs each, alternating; data $data; queries $queries"
echo
echo "| binary | median wall (s) | peak memory (MB) | runs (s) |"
echo "|---|---:|---:|---|"
for side in before after; do
    wall=$(echo "${walls[$side]}" | median)
    peak=$(( $(echo "${peaks[$side]}" | median) / 1024 ))
    echo "| $side (${!side}) | $wall | $peak | ${walls[$side]% } |"
    eval "${side}_wall=$wall"
done
awk -v b="$before_wall" -v a="$after_wall" 'BEGIN { printf "\nafter / before: %.3f\n", a / b }'
