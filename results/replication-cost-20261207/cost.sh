#!/usr/bin/env bash
# What replication costs on this machine at `-c 50 -P 1`: 50 one-request clients' SETs
# (redis-benchmark) against a corepax node alone (`corepax cluster --replicas 1`), a local
# 3-replica corepax cluster (through its leader), the floor of three replicas serving every
# client at once (`replfloor PORT 2 DIR group`, examples/replfloor.rs) and redis-server
# with `appendfsync always`; ROUNDS rounds (default 3), the four interleaved. Per run one
# line: SETs/s, p50 ms, and each server process's CPU (user + system) per SET in µs
# (corepax 3 replicas: leader, then each follower).
#   results/replication-cost-20261207/cost.sh        (COREPAX_BIN, ROUNDS, N)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
require_tools redis-server redis-benchmark redis-cli python3
resolve_bin
cargo build --release --quiet --example replfloor
FLOOR_BIN=$(readlink -f target/release/examples/replfloor)
ROUNDS=${ROUNDS:-3}
N=${N:-100000}
TMP=$(mktemp -d)
ONE_PID="" FLOOR_PID=""
cleanup() {
    stop_cluster
    stop_pids "$ONE_PID" "$FLOOR_PID" "$REDIS_PID"
    rm -rf "$TMP"
}
REDIS_PID=""
trap cleanup EXIT

# The node alone: `corepax cluster --replicas 1` in its own session (stop_pids signals it).
ONE_PORT=$(free_port)
setsid "$BIN" cluster --replicas 1 --base-port "$ONE_PORT" --shards 1 --read-mode leader-lease \
    --data "$TMP/one" >"$TMP/one.log" 2>&1 &
ONE_PID=$!
until [ "$(redis-cli -p "$ONE_PORT" set corepax:probe 1 2>/dev/null)" = OK ]; do
    kill -0 "$ONE_PID" 2>/dev/null || { cat "$TMP/one.log" >&2; exit 1; }
    sleep 0.1
done
ONE_NODE=$(pgrep -P "$ONE_PID" -f "corepax node")

SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/three" "$TMP/three.log" >/dev/null 2>&1
FOLLOWERS=()
for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || FOLLOWERS+=("${NODE_PIDS[$i]}"); done

FLOOR_PORT=$(free_port)
mkdir -p "$TMP/floor"
"$FLOOR_BIN" "$FLOOR_PORT" 2 "$TMP/floor" group >"$TMP/floor.log" 2>&1 &
FLOOR_PID=$!
wait_ping "$FLOOR_PORT" 10

start_redis_always "$TMP/redis"

# run LABEL PORT PID...: one redis-benchmark run, the CPU per SET of each PID.
run() {
    local label=$1 port=$2 p line
    shift 2
    local -a before=()
    for p in "$@"; do before+=("$(cpu_ticks "$p")"); done
    line=$(redis-benchmark -p "$port" -c 50 -P 1 -n "$N" -r 100000 -t set -q 2>&1 |
        tr '\r' '\n' | grep "per second" | tail -1)
    local cpus="" i=0
    for p in "$@"; do
        cpus+=" $(cpu_us_per_op "${before[$i]}" "$(cpu_ticks "$p")" "$N")"
        i=$((i + 1))
    done
    # "SET: 66050.20 requests per second, p50=0.703 msec"
    printf '%-20s %10s SETs/s  p50 %s ms  CPU µs/SET%s\n' "$label" \
        "$(echo "$line" | awk '{print $2}')" \
        "$(echo "$line" | sed -n 's/.*p50=\([0-9.]*\).*/\1/p')" "$cpus"
}

echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) $BIN; redis-benchmark -c 50 -P 1 -n $N -r 100000 -t set"
for r in $(seq 1 "$ROUNDS"); do
    echo "## round $r"
    run corepax-1-replica "$ONE_PORT" "$ONE_NODE"
    run corepax-3-replicas "$LEAD_PORT" "${NODE_PIDS[$LEAD_NODE]}" "${FOLLOWERS[@]}"
    run floor-3-replicas "$FLOOR_PORT" "$FLOOR_PID"
    run redis-always "$REDIS_PORT" "$REDIS_PID"
done
