#!/usr/bin/env bash
# One client's SETs (redis-benchmark -c 1 -P 1 -n N -r 100000 -t set) against, in turn:
# examples/replfloor.rs with 2 followers (3 durable writes per request, leader + 1 follower awaited),
# with 1 follower, with none (one durable write, like Redis), redis-server with
# appendfsync always, and corepax (3 replicas, 1 shard, leader-lease, through the leader).
# ROUNDS rounds, interleaved; prints one CSV line per run; corepax's INFO shard0_latency
# after each of its runs.
# usage: compare.sh COREPAX_BIN   (ROUNDS=2 N=8000; builds the example)
set -euo pipefail
COREPAX_BIN=$(readlink -f "$1")
ROUNDS=${ROUNDS:-2}
N=${N:-8000}
cd "$(dirname "$0")/../.." # the project root
cargo build --release --quiet --example replfloor
RF=$(readlink -f target/release/examples/replfloor)
. scripts/lib.sh
resolve_bin
TMP=$(mktemp -d)
OUT_RAW=/dev/null
trap 'stop_cluster 2>/dev/null || true; pkill -f "$RF" || true; rm -rf "$TMP"' EXIT
rb() { timeout 120 redis-benchmark -p "$1" -c 1 -P 1 -n "$N" -r 100000 -t set --csv | tail -1; }
SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/data" "$TMP/cluster.log"
rp=$(free_port)
mkdir -p "$TMP/redis"
redis-server --port "$rp" --dir "$TMP/redis" --appendonly yes --appendfsync always --save '' \
    --daemonize yes --pidfile "$TMP/redis.pid" >/dev/null
for r in $(seq "$ROUNDS"); do
    for f in 2 1 0; do
        p=$(free_port)
        rm -rf "$TMP/rf" && mkdir -p "$TMP/rf"
        "$RF" "$p" "$f" "$TMP/rf" & pid=$!
        wait_ping "$p" 10
        echo "round $r replfloor-$f-followers: $(rb "$p")"
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
    echo "round $r redis-always: $(rb "$rp")"
    echo "round $r corepax: $(rb "$LEAD_PORT")"
    redis-cli -p "$LEAD_PORT" info | grep shard0_latency | tr -d '\r'
done
redis-cli -p "$rp" shutdown nosave >/dev/null 2>&1 || true
echo "machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
