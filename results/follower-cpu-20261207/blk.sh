#!/usr/bin/env bash
# The disk requests each server's syncs issue: ftrace's block_rq_issue for 0.3 s in the
# middle of 50 one-request clients' SETs (redis-benchmark -c 50 -P 1), into
# /tmp/blk-KIND.txt; prints the count. Summarised in block-requests.txt.
#   results/follower-cpu-20261207/blk.sh corepax BIN | floor | redis
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --example replfloor
. scripts/lib.sh
KIND=$1
TMP=$(mktemp -d)
SERVER_PID=""
trap 'stop_cluster; [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null; rm -rf "$TMP"' EXIT
case $KIND in
corepax) COREPAX_BIN=$2; resolve_bin; SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1; PORT=$LEAD_PORT;;
floor) PORT=$(free_port); mkdir -p "$TMP/floor"; target/release/examples/replfloor "$PORT" 2 "$TMP/floor" group >/dev/null 2>&1 & SERVER_PID=$!; wait_ping "$PORT" 10;;
redis) PORT=$(free_port); mkdir -p "$TMP/redis"; redis-server --port "$PORT" --dir "$TMP/redis" --appendonly yes --appendfsync always --save "" >/dev/null 2>&1 & SERVER_PID=$!; wait_ping "$PORT" 10;;
esac
redis-benchmark -p "$PORT" -c 50 -P 1 -n 400000 -r 100000 -t set -q >/dev/null 2>&1 &
RB=$!
sleep 2
T=/sys/kernel/tracing
echo 0 > $T/tracing_on; echo > $T/trace
echo 1 > $T/events/block/block_rq_issue/enable
echo 1 > $T/tracing_on; sleep 0.3; echo 0 > $T/tracing_on
echo 0 > $T/events/block/block_rq_issue/enable
kill $RB 2>/dev/null || true
grep block_rq_issue $T/trace > /tmp/blk-$KIND.txt || true
wc -l < /tmp/blk-$KIND.txt
