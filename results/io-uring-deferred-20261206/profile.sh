#!/usr/bin/env bash
# Profiles the leader of a local 3-replica cluster of BIN (1 shard, leader-lease) for 6 s
# under 50 one-request clients (redis-benchmark -c 50 -P 1 SETs), then prints where its
# samples went (classify.py) and its top symbols:
#   results/io-uring-deferred-20261206/profile.sh BIN OUT   (writes OUT.data, OUT.txt)
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/io-uring-deferred-20261206
. scripts/lib.sh
COREPAX_BIN=$1; resolve_bin
OUT=$2
TMP=$(mktemp -d)
trap 'stop_cluster; rm -rf "$TMP"' EXIT
SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
LP=${NODE_PIDS[$LEAD_NODE]}
redis-benchmark -p "$LEAD_PORT" -c 50 -P 1 -n 50000 -r 100000 -t set -q >/dev/null
redis-benchmark -p "$LEAD_PORT" -c 50 -P 1 -n 1500000 -r 100000 -t set -q >/dev/null &
RB=$!
sleep 2
perf record -e cpu-clock -g -p "$LP" -o "$OUT.data" -- sleep 6 >/dev/null 2>&1
kill "$RB" 2>/dev/null || true; wait "$RB" 2>/dev/null || true
{
  echo "# leader of $BIN, redis-benchmark -c 50 -P 1 SETs, perf record -e cpu-clock -g, 6 s"
  echo "## where the samples went (classify.py)"
  python3 "$HERE/classify.py" "$OUT.data"
  echo "## io_uring's completion work (children)"
  perf report -i "$OUT.data" --children --sort symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" |
    grep -E "reschedule_ipi|get_signal|task_work_run|tctx_task_work_run|io_run_local_work|irqentry_exit_to_user_mode|__do_sys_io_uring_enter" |
    awk '{printf "%8s %8s  %s\n", $1, $2, $4}'
  echo "## top 40 symbols (self)"
  perf report -i "$OUT.data" --no-children --sort symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" |
    head -40 | awk '{$NF=""; print}' | cut -c1-140
} > "$OUT.txt"
cat "$OUT.txt"
