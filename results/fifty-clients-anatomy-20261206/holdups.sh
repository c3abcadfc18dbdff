#!/usr/bin/env bash
# The main job (`corepax bench`) RUNS times, each beside dprobe.py (a 4 KiB durable write
# every 10 ms on the same disk), looking for the rare ~100 ms hold-ups of the half-load
# phase: prints per run the closed loop's and the half-load phase's ops/s, p99 and p99.99,
# the WAL syncs over 50 ms in each (`syncs_slow`, from the result JSON) and the probe's
# writes over 10 ms during the run (ms).
#   results/fifty-clients-anatomy-20261206/holdups.sh BIN RUNS
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$(readlink -f "$1")
RUNS=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
for i in $(seq 1 "$RUNS"); do
    python3 "$HERE/dprobe.py" "$WORK/probe-$i.txt" 120 &
    probe=$!
    start=$(date +%s.%N)
    "$BIN" bench >"$WORK/run-$i.txt" 2>&1
    end=$(date +%s.%N)
    kill "$probe" 2>/dev/null || true
    wait "$probe" 2>/dev/null || true
    closed=$(ls -t results/default-*.json | grep -v half-load | head -1)
    half=$(ls -t results/default-*-half-load.json | head -1)
    slow() { grep -o '"syncs_slow[^,]*' "$1" | tr -d '"' | tr '\n' ' '; }
    echo "run $i $(date -u +%T): closed $(grep -m1 '^all' "$WORK/run-$i.txt" | awk '{print $3, $6, $8}')" \
        "[$(slow "$closed")] half $(grep '^all' "$WORK/run-$i.txt" | sed -n 2p | awk '{print $3, $6, $8}')" \
        "[$(slow "$half")] probe over 10 ms: $(awk -v s="$start" -v e="$end" '$1 >= s && $1 <= e {printf "%s ", $2}' "$WORK/probe-$i.txt")"
done
