#!/usr/bin/env bash
# Context switches and CPU of each server process over one redis-benchmark run of SETs:
# a local 3-replica cluster of COREPAX_BIN (1 shard, leader-lease, through its leader), or with
# REDIS=1 a redis-server with appendfsync always. Switches are summed over the process's
# threads (/proc/PID/task/*/status); "nv" are involuntary (the thread was preempted).
#   COREPAX_BIN=target/release/corepax C=50 P=1 N=100000 RBWRAP="chrt -b 0" ctx.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
READY_TIMEOUT_S=30
TMP=$(mktemp -d)
REDIS_PID=""
trap 'stop_cluster; stop_pids "$REDIS_PID"; rm -rf "$TMP"' EXIT
switches() {
    cat /proc/"$1"/task/*/status |
        awk '/^voluntary_ctxt/{v+=$2} /^nonvoluntary_ctxt/{n+=$2} END{printf "v=%d nv=%d", v, n}'
}
N=${N:-100000}
if [ -n "${REDIS:-}" ]; then
    start_redis_always "$TMP/redis"
    LEAD_PORT=$REDIS_PORT
    PIDS=("$REDIS_PID")
else
    resolve_bin
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
    PIDS=("${NODE_PIDS[@]}")
    echo "leader: pid ${NODE_PIDS[$LEAD_NODE]}"
fi
redis-benchmark -p "$LEAD_PORT" -c 50 -P "${P:-1}" -n 20000 -r 100000 -t set -q >/dev/null
declare -A before cpu
for p in "${PIDS[@]}"; do before[$p]=$(switches "$p"); cpu[$p]=$(cpu_ticks "$p"); done
# shellcheck disable=SC2086
${RBWRAP:-} redis-benchmark -p "$LEAD_PORT" -c "${C:-50}" -P "${P:-1}" -n "$N" -r 100000 -t set --csv | tail -1
for p in "${PIDS[@]}"; do
    echo "pid $p: before ${before[$p]} after $(switches "$p"); CPU us/op $(cpu_us_per_op "${cpu[$p]}" "$(cpu_ticks "$p")" "$N")"
done
