#!/usr/bin/env bash
# The main job (`corepax bench`, its embedded 3-replica cluster, executors unpinned on
# this 2-core machine), alternated ROUNDS times (default 4): A with `-- --follower-sched-batch
# false`, B as it runs by default (followers at SCHED_BATCH). Runs in a scratch folder;
# prints per run the closed loop's rate, p99 and servers' CPU per op, and the half-load
# phase's rate, p50/p99/p99.9, servers' CPU per op (each node) and the machine's busy share.
#   results/follower-batch-20261207/mainjob.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-4}
BIN=$(readlink -f "${COREPAX_BIN:-target/release/corepax}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

summary() {
    python3 - "$1" "$2" <<'PY'
import json, sys
name, f = sys.argv[1], sys.argv[2]
d = json.load(open(f)); h = json.load(open(f.replace(".json", "-half-load.json")))
t, ht = d["total"], h["total"]
c = sum(s["us_per_op"] for s in d["server_cpu"])
hc = [round(s["us_per_op"], 2) for s in h["server_cpu"]]
print(f"{name} closed loop {t['throughput_per_s'] / 1e3:.1f}k ops/s p99 {t['p99_us'] / 1e3:.2f} ms "
      f"CPU/op {c:.2f} | half load {ht['throughput_per_s'] / 1e3:.1f}k p50 {ht['p50_us'] / 1e3:.2f} "
      f"p99 {ht['p99_us'] / 1e3:.2f} p99.9 {ht['p999_us'] / 1e3:.2f} ms CPU/op {sum(hc):.2f} {hc} "
      f"busy {h['machine']['busy_share']:.2f}")
PY
}

echo "# $(date -u +%FT%TZ) $BIN"
for r in $(seq "$ROUNDS"); do
    echo "## round $r"
    for v in A B; do
        args=()
        [ "$v" = A ] && args=(-- --follower-sched-batch false)
        "$BIN" bench --quiet "${args[@]}" >"run-$v-$r.log" 2>&1
        summary "$v" "$(ls -t results/*.json | grep -v half-load | head -1)"
    done
done
