#!/usr/bin/env bash
# The replicated path's figures (issue 18): one node, then three nodes at
# RF 3 QUORUM, each with `ilion stress` at 128 in flight; for every run the
# throughput, p50/p99, and the servers' CPU per operation read from
# /proc/<pid>/stat (utime + stime of every node) before and after.
#
#   benches/cluster.sh [seconds per run, default 20] [ilion binary]
#
# Then, with the Python driver from .venv, how often a read at ONE through
# one node misses a write at ONE made just before through another
# (benches/stale_reads.py, 1,000 keys).
#
# Uses 127.0.60.x (one node) and 127.0.61.x (three nodes) and its own
# cluster directories under a temporary folder, removed at the end.
set -euo pipefail

SECONDS_PER_RUN=${1:-20}
ILION=${2:-target/release/ilion}
WORK=$(mktemp -d)
trap 'for d in "$WORK"/*/; do "$ILION" cluster clear --dir "$d" >/dev/null 2>&1 || true; done; rm -rf "$WORK"' EXIT
TICKS=$(getconf CLK_TCK)

pids_of() { # cluster dir -> pids of its nodes
    "$ILION" cluster status --dir "$1" | awk '$1 ~ /^node[0-9]+$/ && $6 == "UP" {print $5}'
}

cpu_ticks() { # pids -> total utime + stime ticks
    local total=0
    for pid in "$@"; do
        read -r -a f < "/proc/$pid/stat"
        total=$((total + f[13] + f[14]))
    done
    echo "$total"
}

run() { # label dir host cl rf workload [extra stress args]
    local label=$1 dir=$2 host=$3 cl=$4 rf=$5 workload=$6
    shift 6
    local pids before after out ops cpu
    pids=$(pids_of "$dir")
    before=$(cpu_ticks $pids)
    out=$("$ILION" stress "$workload" --duration "${SECONDS_PER_RUN}s" --concurrency 128 \
        --keys 1000000 --host "$host" --cl "$cl" --replication-factor "$rf" --quiet --json "$WORK/run.json" "$@" 2>&1) || {
        echo "$out"
        return 1
    }
    after=$(cpu_ticks $pids)
    python3 - "$WORK/run.json" "$label" "$((after - before))" "$TICKS" <<'EOF'
import json, sys
run = json.load(open(sys.argv[1]))
label, ticks, hz = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ops = run["ops_per_s"]
total = run["operations"]
lat = run["latency_ms"]
cpu = ticks / hz
per_cpu = total / cpu if cpu else float("nan")
print(f"| {label} | {ops:,.0f} | {lat.get('p50', float('nan')):.2f} | {lat.get('p99', float('nan')):.2f} | {cpu:.1f} | {per_cpu:,.0f} | {run.get('errors', 0)} |")
EOF
}

echo "| run | ops/s | p50 ms | p99 ms | server CPU s | ops per server CPU-s | errors |"
echo "|---|---|---|---|---|---|---|"
"$ILION" cluster start -n 1 --dir "$WORK/one" --base-address 127.0.60.1 --native-port 9042 >/dev/null
run "1 node, RF 1, ONE, write" "$WORK/one" 127.0.60.1 ONE 1 write
run "1 node, RF 1, ONE, read" "$WORK/one" 127.0.60.1 ONE 1 read
"$ILION" cluster clear --dir "$WORK/one" >/dev/null

"$ILION" cluster start -n 3 --dir "$WORK/three" --base-address 127.0.61.1 >/dev/null
run "3 nodes, RF 3, QUORUM, write" "$WORK/three" 127.0.61.1 QUORUM 3 write
run "3 nodes, RF 3, QUORUM, read" "$WORK/three" 127.0.61.1 QUORUM 3 read
run "3 nodes, RF 3, QUORUM, write at 5,000/s" "$WORK/three" 127.0.61.1 QUORUM 3 write --rate 5000
if [ -x .venv/bin/python ]; then # `cargo xtask venv` makes it
    echo
    .venv/bin/python benches/stale_reads.py 127.0.61.1 127.0.61.2 1000 2>/dev/null
fi
"$ILION" cluster clear --dir "$WORK/three" >/dev/null
