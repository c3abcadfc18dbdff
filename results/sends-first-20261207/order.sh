#!/usr/bin/env bash
# Which a leader hands to the kernel first for one client's SET: its own WAL write or its
# accepts' sends. One client (redis-benchmark -c 1 -P 1) against a fresh local 3-replica
# cluster of BIN (1 shard, leader-lease); ftrace records 0.05 s of system calls and
# io_uring submissions; order.py reads the leader's thread out of them.
#   results/sends-first-20261207/order.sh BIN [cluster flags, e.g. --protocol raft]
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/sends-first-20261207
COREPAX_BIN=$1; shift
. scripts/lib.sh
resolve_bin
TMP=$(mktemp -d)
RB=""
trap '[ -z "$RB" ] || kill "$RB" 2>/dev/null; stop_cluster; rm -rf "$TMP"' EXIT
SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease $*" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
sleep 1
redis-benchmark -p "$LEAD_PORT" -c 1 -P 1 -n 400000 -r 100000 -t set -q >/dev/null 2>&1 &
RB=$!
sleep 2
T=/sys/kernel/tracing
EVENTS="raw_syscalls/sys_enter raw_syscalls/sys_exit io_uring/io_uring_submit_req sched/sched_wakeup"
echo 0 > $T/tracing_on; echo > $T/trace; echo 65536 > $T/buffer_size_kb
for e in $EVENTS; do echo 1 > "$T/events/$e/enable"; done
echo 1 > $T/tracing_on; sleep 0.05; echo 0 > $T/tracing_on
for e in $EVENTS; do echo 0 > "$T/events/$e/enable"; done
python3 $HERE/order.py $T/trace
