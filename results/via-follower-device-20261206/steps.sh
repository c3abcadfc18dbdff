#!/usr/bin/env bash
# One client through the leader, traced per thread: for each WAL write that reaches the
# disk, the steps of the thread that wrote it since it was woken (steps.py OUT).
#   results/via-follower-device-20261206/steps.sh corepax BIN OUT | floor - OUT
set -euo pipefail
cd "$(dirname "$0")/../.."
KIND=$1; B=$2; OUT=$3
T=/sys/kernel/tracing
TMP=$(mktemp -d); FP=""
. scripts/lib.sh
cleanup() { echo 0 > $T/tracing_on; echo > $T/set_event; [ -z "$FP" ] || kill $FP 2>/dev/null || true; stop_cluster; rm -rf "$TMP"; }
trap cleanup EXIT
if [ "$KIND" = corepax ]; then
  COREPAX_BIN=$B; resolve_bin
  SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
  sleep 1; port=$LEAD_PORT
  for i in 0 1 2; do
    role=follower; [ "$i" = "$LEAD_NODE" ] && role=leader
    for t in /proc/${NODE_PIDS[$i]}/task/*; do echo "$(basename "$t") $role"; done
  done >$OUT.roles
else
  port=$(free_port); mkdir -p $TMP/f; cargo build --release --quiet --example replfloor; target/release/examples/replfloor $port 2 $TMP/f & FP=$!; wait_ping $port 10
  echo "$FP leader" >$OUT.roles
fi
echo 0 > $T/tracing_on; echo mono > $T/trace_clock; echo 65536 > $T/buffer_size_kb; echo > $T/trace
echo 'sched:sched_switch sched:sched_wakeup syscalls:sys_enter_recvfrom syscalls:sys_exit_recvfrom syscalls:sys_enter_sendto syscalls:sys_enter_io_uring_enter syscalls:sys_exit_io_uring_enter io_uring:io_uring_submit_req block:block_rq_issue syscalls:sys_enter_pwrite64 syscalls:sys_exit_read syscalls:sys_enter_write' > $T/set_event
python3 results/via-follower-device-20261206/probe.py $port 30000 $OUT.lat > $OUT.sum &
pp=$!
sleep 1.2; echo 1 > $T/tracing_on; sleep 1.0; echo 0 > $T/tracing_on
wait $pp
cat $T/trace > $OUT.txt; cat $OUT.sum
