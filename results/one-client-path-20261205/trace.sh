#!/usr/bin/env bash
# Where one client's SET spends its time, from syscall timestamps: a local 3-replica
# cluster (1 shard, leader-lease) of COREPAX_BIN under `redis-benchmark -c 1 -P 1 -t set`,
# `perf record` of the sendto / recvfrom / io_uring_enter / membarrier tracepoints of
# every process for 1 s, then segments.py on the result (medians per segment).
# Frames are told apart by length (SET of a 16-byte key, 3-byte value: 45 bytes; accept:
# 48-64; vote: 18-24; `+OK`: 5); another encoding needs segments.py's constants changed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
. scripts/lib.sh
resolve_bin
start_one_client_sets
EV=syscalls:sys_enter_recvfrom,syscalls:sys_exit_recvfrom,syscalls:sys_enter_sendto
EV=$EV,syscalls:sys_enter_io_uring_enter,syscalls:sys_exit_io_uring_enter,syscalls:sys_enter_membarrier
perf record -q -e "$EV" -a -o "$TMP/sys.data" -- sleep 1 >/dev/null 2>&1
L=${NODE_PIDS[$LEAD_NODE]}
FS=$(for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || printf '%s,' "${NODE_PIDS[$i]}"; done)
kill "$RB" 2>/dev/null || true
kill -TERM -- "-$CLUSTER_PID" 2>/dev/null || true
perf script -i "$TMP/sys.data" -F pid,tid,cpu,time,event,trace 2>/dev/null > "$TMP/sys.txt"
python3 "$HERE/segments.py" "$TMP/sys.txt" "$L" "${FS%,}" "$RB"
[ -z "${KEEP:-}" ] || cp "$TMP/sys.txt" "$KEEP"
sleep 1; rm -rf "$TMP"
