#!/usr/bin/env bash
# A local 3-replica cluster (1 shard, leader-lease, fsync on) with its processes where the
# scheduler puts them ("default": both cores allowed) and with the leader alone on core 0
# and both followers on core 1 ("apart"; the client may use both), alternated ROUNDS
# times (default 3): redis-benchmark SETs with one client (-c 1 -P 1 -n 20000), 50
# one-request clients (-c 50 -P 1 -n 200000) and 50 pipelining clients (-c 50 -P 16
# -n 1000000). Per run: SETs/s, p50 and p99 (ms). Needs 2 cores or more.
#   results/placement-20261207/apart.sh [ROUNDS]     (COREPAX_BIN)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
require_tools redis-benchmark redis-cli taskset
resolve_bin
cargo build --release --quiet --example wakeprobe
TMP=$(mktemp -d)
trap 'stop_cluster; rm -rf "$TMP"' EXIT
SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null

# place LEADER_CPUS FOLLOWER_CPUS: every thread of the leader's process, then the others'.
place() {
    local i t
    for i in 0 1 2; do
        for t in /proc/"${NODE_PIDS[$i]}"/task/*; do
            if [ "$i" = "$LEAD_NODE" ]; then
                taskset -pc "$1" "$(basename "$t")" >/dev/null
            else
                taskset -pc "$2" "$(basename "$t")" >/dev/null
            fi
        done
    done
}
run() {
    redis-benchmark -p "$LEAD_PORT" -c "$2" -P "$3" -n "$4" -r 100000 -t set --csv 2>/dev/null |
        tail -1 | tr -d '"' |
        awk -F, -v l="$1" -v c="$2" -v p="$3" '{printf "%-8s -c %-2s -P %-2s %10s SETs/s  p50 %s  p99 %s\n", l, c, p, $2, $5, $7}'
}
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $BIN; $(target/release/examples/wakeprobe)"
for r in $(seq "${1:-3}"); do
    echo "## round $r"
    for load in "1 1 20000" "50 1 200000" "50 16 1000000"; do
        # shellcheck disable=SC2086 # three numbers
        { place 0,1 0,1; run default $load; place 0 1; run apart $load; }
    done
done
