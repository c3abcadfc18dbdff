#!/usr/bin/env bash
# 50 one-request clients' SETs (`redis-benchmark -c 50 -P 1 -t set`) against a fresh local
# 3-replica corepax cluster (1 shard, leader-lease, fsync on; through the leader), the
# floor program serving every client at once (`replfloor PORT 2 DIR group`) and
# redis-server (appendonly, appendfsync always), ROUNDS times. For each server thread
# that ran, per request: voluntary and involuntary context switches (/proc/PID/task/TID/
# status) and CPU µs (user + system); the client's own CPU µs per request; and the
# machine's (/proc/stat: user, nice, system, irq, softirq) and its kernel workers'
# (kworker, ksoftirqd, iou-wrk threads) CPU µs per request.
#   results/tail-and-load-20261207/threads.sh [ROUNDS] [COREPAX_BIN]
# CLIENT_PREFIX runs the client under a command, e.g. CLIENT_PREFIX="chrt --idle 0".
# N (default 200000) requests per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
COREPAX_BIN=${2:-target/release/corepax}
N=${N:-200000}
. scripts/lib.sh
require_tools redis-server redis-benchmark redis-cli python3
resolve_bin
cargo build --release --quiet --example replfloor
FLOOR_BIN=$(readlink -f target/release/examples/replfloor)
TMP=$(mktemp -d)
FLOOR_PID=""
REDIS_PID=""
trap 'stop_cluster; stop_pids "$FLOOR_PID" "$REDIS_PID"; rm -rf "$TMP"' EXIT

# snap PIDS...: one line per thread: name-tid voluntary involuntary cpu-ticks.
snap() {
    local p t
    for p in "$@"; do
        for t in /proc/"$p"/task/*; do
            echo "$(cat "$t/comm")-$(basename "$t") $(awk '/^voluntary_ctxt/ {v = $2} /^nonvoluntary_ctxt/ {n = $2} END {print v, n}' "$t/status") $(awk '{print $14 + $15}' "$t/stat")"
        done
    done | sort
}

# machine: the machine's busy ticks so far; workers: its kernel workers' ticks so far.
machine() {
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat
}
workers() {
    local p t=0
    for p in $(pgrep 'kworker|ksoftirqd|iou-wrk' || true); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# measure LABEL PORT PIDS...
measure() {
    local label=$1 port=$2 rps m0 m1 w0 w1 hz
    shift 2
    hz=$(getconf CLK_TCK)
    redis-benchmark -p "$port" -c 50 -P 1 -n 20000 -r 100000 -t set -q >/dev/null
    snap "$@" >"$TMP/a"
    m0=$(machine)
    w0=$(workers)
    # shellcheck disable=SC2086 # an optional command and its arguments
    ${CLIENT_PREFIX:-} /usr/bin/time -f "%U %S" -o "$TMP/client" \
        redis-benchmark -p "$port" -c 50 -P 1 -n "$N" -r 100000 -t set --csv >"$TMP/csv"
    m1=$(machine)
    w1=$(workers)
    snap "$@" >"$TMP/b"
    rps=$(tail -1 "$TMP/csv" | cut -d, -f2 | tr -d '"')
    echo "$label: $rps SETs/s; client CPU $(awk -v n="$N" '{printf "%.2f", ($1 + $2) * 1e6 / n}' "$TMP/client") µs/request"
    awk -v n="$N" -v hz="$hz" -v m="$((m1 - m0))" -v w="$((w1 - w0))" \
        'BEGIN {printf "  machine busy %.2f µs, kernel workers %.2f µs  (per request)\n", m / hz * 1e6 / n, w / hz * 1e6 / n}'
    join "$TMP/a" "$TMP/b" | awk -v n="$N" -v hz="$(getconf CLK_TCK)" '{
        dv = $5 - $2; dn = $6 - $3; dc = $7 - $4
        if (dv + dn > 100)
            printf "  %-28s voluntary %.3f involuntary %.3f CPU %.2f µs  (per request)\n", $1, dv / n, dn / n, dc / hz * 1e6 / n
    }'
}

for r in $(seq "$ROUNDS"); do
    echo "== round $r"
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d$r" "$TMP/c.log" >/dev/null 2>&1
    measure "corepax (leader: node $LEAD_NODE, pid ${NODE_PIDS[$LEAD_NODE]})" "$LEAD_PORT" "${NODE_PIDS[@]}"
    stop_cluster
    port=$(free_port)
    mkdir -p "$TMP/floor$r"
    "$FLOOR_BIN" "$port" 2 "$TMP/floor$r" group >/dev/null 2>&1 &
    FLOOR_PID=$!
    wait_ping "$port" 10 || { echo "replfloor did not start" >&2; exit 1; }
    measure "floor (replfloor group; leader is the main thread)" "$port" "$FLOOR_PID"
    stop_pids "$FLOOR_PID"
    FLOOR_PID=""
    start_redis_always "$TMP/redis$r"
    measure "redis-server appendfsync always" "$REDIS_PORT" "$REDIS_PID"
    stop_pids "$REDIS_PID"
    REDIS_PID=""
done
