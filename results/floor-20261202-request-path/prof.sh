#!/usr/bin/env bash
# Profiles one replica of a local 3-replica cluster (1 shard, fsync on, leader-lease) under
# redis-benchmark -c 50 -P 16 -r 100000, as recorded in this folder (RB="-c 1 -P 1" for one client).
# usage: prof.sh BIN LABEL set|get [extra cluster args]
#   READ_MODE (leader-lease) sets the read mode; FOLLOWER=1 profiles a follower instead of
#   the leader; FREQ (2000), CG (-g) and SECS (10) set perf's sampling rate, call-graph
#   mode and window. Writes $OUT/LABEL.data (OUT=/tmp).
set -euo pipefail
BIN=$(readlink -f "$1"); LABEL=$2; T=$3; shift 3
OUT=${OUT:-/tmp}
cd "$(dirname "$0")/../.." # the project root
. scripts/lib.sh
READY_TIMEOUT_S=${READY_TIMEOUT_S:-30}
TMP=$(mktemp -d)
SHARDS=1 CLUSTER_ARGS="--read-mode ${READ_MODE:-leader-lease} $*" start_cluster "$TMP/data" "$TMP/cluster.log"
L=${NODE_PIDS[$LEAD_NODE]}
if [ -n "${FOLLOWER:-}" ]; then for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || L=${NODE_PIDS[$i]}; done; fi
echo "profiling pid $L (leader port $LEAD_PORT)"
[ "$T" = get ] && redis-benchmark -p "$LEAD_PORT" -c 50 -P 16 -n 200000 -r 100000 -t set -q >/dev/null
# shellcheck disable=SC2086
timeout 200 redis-benchmark -p "$LEAD_PORT" ${RB:--c 50 -P 16} -n 3000000 -r 100000 -t "$T" -q >"$OUT/$LABEL-rb.txt" 2>&1 &
RB=$!
sleep 2
# shellcheck disable=SC2086
perf record -e cpu-clock -F "${FREQ:-2000}" ${CG:--g} -p "$L" -o "$OUT/$LABEL.data" -- sleep "${SECS:-10}" 2>/dev/null
kill $RB 2>/dev/null || true
stop_cluster
rm -rf "$TMP"
perf report -i "$OUT/$LABEL.data" --no-children -g none --sort symbol --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -40
