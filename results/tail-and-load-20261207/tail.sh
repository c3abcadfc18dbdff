#!/usr/bin/env bash
# One client's SETs, request by request, over a longer window than anatomy.sh's 0.1 s, to
# see the slowest requests: ftrace records SECS seconds (default 1.5, ~4,500 requests) of
# system calls, io_uring submissions and completions, the scheduler and the block layer
# under `redis-benchmark -c 1 -P 1` against a fresh local 3-replica cluster (1 shard,
# leader-lease, fsync on), then against the floor program (`replfloor PORT 2 DIR`);
# tail.py compares the slowest 2 % with the middle fifth, splits requests by the inode
# writes the disk got during them, and times the followers' wake-ups. Needs root (ftrace).
#   results/tail-and-load-20261207/tail.sh [SECS] [COREPAX_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/tail-and-load-20261207
SECS=${1:-1.5}
COREPAX_BIN=${2:-target/release/corepax}
. scripts/lib.sh
require_tools redis-benchmark python3
resolve_bin
cargo build --release --quiet --example replfloor
FLOOR_BIN=$(readlink -f target/release/examples/replfloor)
TMP=$(mktemp -d)
FLOOR_PID=""
# shellcheck source=results/write-anatomy-20261207/trace-lib.sh
. results/write-anatomy-20261207/trace-lib.sh
trap 'echo 0 >$T/tracing_on; echo 4096 >$T/buffer_size_kb; stop_cluster; stop_pids "$FLOOR_PID"; rm -rf "$TMP"' EXIT

SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
sleep 1
leader=$(shard_tid "${NODE_PIDS[$LEAD_NODE]}")
followers=""
for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || followers+=" $(shard_tid "${NODE_PIDS[$i]}")"; done
trace "$LEAD_PORT" "$TMP/corepax.trace" "$SECS" 400000
stop_cluster
echo "== corepax ($BIN)"
# shellcheck disable=SC2086 # two thread ids
python3 $HERE/tail.py "$TMP/corepax.trace" redis-benchmark "$leader" $followers

port=$(free_port)
mkdir -p "$TMP/floor"
"$FLOOR_BIN" "$port" 2 "$TMP/floor" >/dev/null 2>&1 &
FLOOR_PID=$!
wait_ping "$port" 10 || { echo "replfloor did not start" >&2; exit 1; }
# The floor's leader is its main thread; its followers the two others.
floor_leader=$FLOOR_PID
mapfile -t fts < <(ls /proc/$FLOOR_PID/task | grep -vx "$FLOOR_PID")
trace "$port" "$TMP/floor.trace" "$SECS" 400000
stop_pids "$FLOOR_PID"
FLOOR_PID=""
echo "== the floor (replfloor PORT 2 DIR)"
python3 $HERE/tail.py "$TMP/floor.trace" redis-benchmark "$floor_leader" "${fts[@]}"
