#!/usr/bin/env bash
# Profiles one follower of a local 3-replica cluster of BIN (1 shard, leader-lease) over
# N (default 300000) one-request clients (redis-benchmark -c 50 -P 1 SETs) on the leader, then
# prints where its samples went and its top symbols, self and with children:
#   results/follower-cpu-20261207/profile.sh BIN OUT   (writes OUT.data, OUT.txt)
# CALLGRAPH="--call-graph dwarf" for stacks through code without frame pointers.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
COREPAX_BIN=$1; resolve_bin
OUT=$2
TMP=$(mktemp -d)
trap 'stop_cluster; rm -rf "$TMP"' EXIT
SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
FOLLOWER=$(( (LEAD_NODE + 1) % 3 ))
FP=${NODE_PIDS[$FOLLOWER]}
redis-benchmark -p "$LEAD_PORT" -c 50 -P 1 -n 50000 -r 100000 -t set -q >/dev/null
N=${N:-300000}
T0=$(awk '{print $14 + $15}' "/proc/$FP/stat")
perf record -e cpu-clock ${CALLGRAPH:--g} -p "$FP" -o "$OUT.data" >/dev/null 2>&1 &
PERF=$!
sleep 0.5
redis-benchmark -p "$LEAD_PORT" -c 50 -P 1 -n "$N" -r 100000 -t set -q | tr '\r' '\n' | tail -1 > "$TMP/rb"
kill -INT "$PERF"; wait "$PERF" || true
T1=$(awk '{print $14 + $15}' "/proc/$FP/stat")
set +o pipefail
{
  echo "# follower (node $FOLLOWER) of $BIN, redis-benchmark -c 50 -P 1 SETs on the leader, perf record -e cpu-clock -g over the whole run"
  echo "redis-benchmark: $(cat "$TMP/rb"); follower CPU µs/SET (clock ticks over N=$N): $(python3 -c "print(round(($T1 - $T0) * 10000 / $N, 2))")"
  echo "## where the samples went (classify.py)"
  python3 results/io-uring-deferred-20261206/classify.py "$OUT.data"
  echo "## top 40 symbols (children)"
  perf report -i "$OUT.data" --children --sort symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" |
    head -40 | awk '{$NF=""; print}' | cut -c1-140
  echo "## top 40 symbols (self)"
  perf report -i "$OUT.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" |
    head -40 | awk '{$NF=""; print}' | cut -c1-140
} > "$OUT.txt"
cat "$OUT.txt"
