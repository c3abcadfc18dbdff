#!/usr/bin/env bash
# One client's SETs, request by request, across the processes of a fresh local 3-replica
# cluster (1 shard, leader-lease, fsync on) and of the floor program
# (examples/replfloor.rs, 2 followers), alternated ROUNDS times: ftrace records 0.1 s of
# system calls, io_uring submissions and completions, the scheduler and the block layer
# under `redis-benchmark -c 1 -P 1`; anatomy.py cuts it at the client's sends. Needs root
# (ftrace); builds the floor program (and corepax, when COREPAX_BIN is missing).
#   results/write-anatomy-20261207/anatomy.sh [ROUNDS] [COREPAX_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/write-anatomy-20261207
ROUNDS=${1:-3}
COREPAX_BIN=${2:-target/release/corepax}
. scripts/lib.sh
require_tools redis-benchmark python3
resolve_bin
cargo build --release --quiet --example replfloor
FLOOR_BIN=$(readlink -f target/release/examples/replfloor)
TMP=$(mktemp -d)
FLOOR_PID=""
trap 'stop_cluster; stop_pids "$FLOOR_PID"; rm -rf "$TMP"' EXIT
# shellcheck source=results/write-anatomy-20261207/trace-lib.sh
. $HERE/trace-lib.sh

for r in $(seq "$ROUNDS"); do
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d$r" "$TMP/c.log" >/dev/null 2>&1
    sleep 1
    leader=$(shard_tid "${NODE_PIDS[$LEAD_NODE]}")
    followers=""
    for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || followers+=" $(shard_tid "${NODE_PIDS[$i]}")"; done
    trace "$LEAD_PORT" "$TMP/corepax.trace" 0.1 131072
    stop_cluster
    echo "== round $r, corepax ($BIN)"
    # shellcheck disable=SC2086 # two thread ids
    python3 $HERE/anatomy.py "$TMP/corepax.trace" redis-benchmark "$leader" $followers

    port=$(free_port)
    mkdir -p "$TMP/floor$r"
    "$FLOOR_BIN" "$port" 2 "$TMP/floor$r" >/dev/null 2>&1 &
    FLOOR_PID=$!
    wait_ping "$port" 10 || { echo "replfloor did not start" >&2; exit 1; }
    # The floor's leader is its main thread; its followers the two others.
    mapfile -t fts < <(ls /proc/$FLOOR_PID/task | grep -vx "$FLOOR_PID")
    floor_leader=$FLOOR_PID
    trace "$port" "$TMP/floor.trace" 0.1 131072
    stop_pids "$FLOOR_PID"
    FLOOR_PID=""
    echo "== round $r, the floor (replfloor PORT 2 DIR)"
    python3 $HERE/anatomy.py "$TMP/floor.trace" redis-benchmark "$floor_leader" "${fts[@]}"
done
