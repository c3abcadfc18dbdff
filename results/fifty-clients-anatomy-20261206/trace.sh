#!/usr/bin/env bash
# 0.4 s of ftrace (scheduler, block device, io_uring, workqueues, sends and receives) in
# the middle of 50 one-request clients' SETs on a local 3-replica cluster of BIN (1 shard,
# leader-lease); the ring buffer is read after the capture. Needs root (tracefs).
#   results/fifty-clients-anatomy-20261206/trace.sh BIN OUT   (writes OUT.txt, OUT.roles)
# then: python3 results/fifty-clients-anatomy-20261206/analyze.py OUT
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
COREPAX_BIN=$1
OUT=$2
resolve_bin
T=/sys/kernel/tracing
TMP=$(mktemp -d)
RB=""
trap 'echo 0 >$T/tracing_on; echo >$T/set_event; [ -z "$RB" ] || kill "$RB" 2>/dev/null; stop_cluster; rm -rf "$TMP"' EXIT
SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
for i in 0 1 2; do
    role=follower$i
    [ "$i" != "$LEAD_NODE" ] || role=leader$i
    for t in /proc/"${NODE_PIDS[$i]}"/task/*; do echo "$(basename "$t") $role $(cat "$t/comm")"; done
done >"$OUT.roles"
redis-benchmark -p "$LEAD_PORT" -c 50 -P 1 -n 50000 -r 100000 -t set -q >/dev/null 2>&1
redis-benchmark -p "$LEAD_PORT" -c 50 -P 1 -n 1000000 -r 100000 -t set -q >/dev/null 2>&1 &
RB=$!
echo 0 >$T/tracing_on
echo mono >$T/trace_clock
echo 131072 >$T/buffer_size_kb
echo >$T/trace
echo "io_uring:io_uring_submit_req io_uring:io_uring_complete block:block_rq_issue
block:block_rq_complete workqueue:workqueue_execute_start workqueue:workqueue_execute_end
sched:sched_switch sched:sched_wakeup syscalls:sys_enter_sendto syscalls:sys_exit_recvfrom" >$T/set_event
sleep 1.5
echo 1 >$T/tracing_on
sleep 0.4
echo 0 >$T/tracing_on
cat $T/trace >"$OUT.txt"
