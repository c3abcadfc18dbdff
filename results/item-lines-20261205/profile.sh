#!/usr/bin/env bash
# profile.sh TAG REDIS-BENCHMARK-ARGS...: a local 3-replica cluster (1 shard, leader-lease)
# of COREPAX_BIN, a warm-up of pipelined SETs, then the given redis-benchmark run through
# the leader while `perf record -e cpu-clock -g` samples the leader and one follower for
# 4 s. Writes OUT/TAG-{lead,fol}.data, their top symbols in OUT/TAG-{lead,fol}-top.txt
# and redis-benchmark's output in OUT/TAG-rb.txt (OUT defaults to /tmp/prof). VIA=1 drives
# the follower that is sampled instead of the leader.
#   COREPAX_BIN=target/release/corepax profile.sh after -c 50 -P 16 -n 2500000 -r 100000 -t set
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
resolve_bin
TAG=$1; shift
OUT=${OUT:-/tmp/prof}; mkdir -p "$OUT"
start_scratch_cluster --read-mode leader-lease
lead=${NODE_PIDS[$LEAD_NODE]}; fol=${NODE_PIDS[$(((LEAD_NODE + 1) % 3))]}
redis-benchmark -p "$LEAD_PORT" -c 50 -P 16 -n 200000 -r 100000 -t set -q >/dev/null
port=$LEAD_PORT; [ -z "${VIA:-}" ] || port=$((BASE + (LEAD_NODE + 1) % 3))
redis-benchmark -p "$port" "$@" -q >"$OUT/$TAG-rb.txt" &
rb=$!
sleep 1
perf record -e cpu-clock -g -p "$lead" -o "$OUT/$TAG-lead.data" -- sleep 4 2>/dev/null &
perf record -e cpu-clock -g -p "$fol" -o "$OUT/$TAG-fol.data" -- sleep 4 2>/dev/null &
wait %2 %3 2>/dev/null || true
wait "$rb" || true
for w in lead fol; do
  perf report -i "$OUT/$TAG-$w.data" --no-children --sort sym --stdio 2>/dev/null |
    grep -E '^ +[0-9]+\.[0-9]+%' | head -25 >"$OUT/$TAG-$w-top.txt" || true # head closes the pipe
done
tail -c 80 "$OUT/$TAG-rb.txt"
