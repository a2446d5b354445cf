# What the benchmark scripts share; sourced, not run. Sets $root and $ebiq after `build_ebiq`.
#
#   build_ebiq                 builds the release binary into $CARGO_TARGET_DIR (or ~/.cache/ebiq-target)
#   ensure_dataset ROWS DIR [LAYOUT]
#                              generates ROWS outpatient rows (seed 2026) into DIR, laid out as
#                              `ebiq generate --layout` LAYOUT (default by-month), unless a
#                              complete dataset of that size is already there
#   client_venv                sets $venv: benches/.venv with the Python clients of tests/clients
#   start_server LOG ARGS...   starts `ebiq serve --quiet --listen 127.0.0.1:0 ARGS...` in the
#                              background, its stderr to LOG; sets $server (pid) and $port once it
#                              listens, or stops the script showing LOG. The caller's EXIT trap
#                              stops it.
#   measure RUNS CMD...        sets $wall (median seconds) and $peak (median peak resident MB) of RUNS
#                              runs of CMD (GNU time), its stdout discarded; stops the script, showing
#                              CMD's stderr, if it fails (no subshell, so that the exit stops it)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

build_ebiq() {
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/ebiq-target}
    echo "building ebiq (release)..." >&2
    cargo build --release --quiet --manifest-path "$root/Cargo.toml"
    ebiq=$CARGO_TARGET_DIR/release/ebiq
}

ensure_dataset() {
    local rows=$1 dir=$2 layout=${3:-by-month}
    # One marker for every script; a dataset from before the generator wrote the population is
    # made again, since the population queries need it.
    if [ ! -f "$dir/.complete-$rows" ] || [ ! -d "$dir/population" ]; then
        "$ebiq" generate --rows "$rows" --seed 2026 --layout "$layout" --out "$dir" --force
        touch "$dir/.complete-$rows"
    fi
}

client_venv() {
    venv=$root/benches/.venv
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/tests/clients/requirements.txt"
}

start_server() {
    local log=$1; shift
    "$ebiq" serve --quiet --listen 127.0.0.1:0 "$@" 2> "$log" &
    server=$!
    port=""
    for _ in $(seq 1 600); do
        port=$(sed -n 's/^ebiq serve: listening on 127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$log")
        [ -n "$port" ] && return
        kill -0 "$server" 2> /dev/null || break
        sleep 0.5
    done
    cat "$log" >&2
    exit 1
}

measure() {
    local runs=$1; shift
    local scratch walls=() peaks=() one_wall one_peak
    scratch=$(mktemp)
    for _ in $(seq "$runs"); do
        /usr/bin/time -f '%e %M' -o "$scratch" "$@" > /dev/null 2> "$scratch.err" \
            || { cat "$scratch.err" >&2; rm -f "$scratch" "$scratch.err"; exit 1; }
        read -r one_wall one_peak < "$scratch"
        walls+=("$one_wall"); peaks+=("$one_peak")
    done
    rm -f "$scratch" "$scratch.err"
    local median=$(( (runs + 1) / 2 ))
    wall=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "${median}p")
    peak=$(( $(printf '%s\n' "${peaks[@]}" | sort -n | sed -n "${median}p") / 1024 ))
}
