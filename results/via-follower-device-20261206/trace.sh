#!/usr/bin/env bash
# One client's SETs, one at a time, each timed, while ftrace records the scheduler, the
# block device, sends and receives (no tracer process runs meanwhile: ftrace's ring
# buffer is read after the run). Needs root (tracefs).
#   results/via-follower-device-20261206/trace.sh corepax BIN lead|via OUT   (via: client at a follower)
#   results/via-follower-device-20261206/trace.sh floor - lead|via OUT       (examples/replfloor)
# Writes OUT.lat (request start in CLOCK_MONOTONIC ns, latency ns), OUT.txt (the trace),
# OUT.sum (percentiles), OUT.roles (each server thread id and its role); then:
# analyse.py OUT... EVENTS (the tracefs events) and SECS (the capture, default 1.5 s) may
# be set: steps.sh does.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/via-follower-device-20261206
KIND=$1 BIN_ARG=$2 VIA_PATH=$3 OUT=$4
T=/sys/kernel/tracing
TMP=$(mktemp -d)
FLOOR_PID=""
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
cleanup() {
    echo 0 >$T/tracing_on
    echo >$T/set_event
    [ -z "$FLOOR_PID" ] || kill "$FLOOR_PID" 2>/dev/null || true
    stop_cluster
    rm -rf "$TMP"
}
trap cleanup EXIT
if [ "$KIND" = corepax ]; then
    COREPAX_BIN=$BIN_ARG
    resolve_bin
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
    sleep 1
    port=$LEAD_PORT
    [ "$VIA_PATH" != via ] || port=$((BASE + (LEAD_NODE + 1) % 3))
    for i in 0 1 2; do
        role=follower
        [ "$i" != "$LEAD_NODE" ] || role=leader
        for t in /proc/"${NODE_PIDS[$i]}"/task/*; do echo "$(basename "$t") $role"; done
    done >"$OUT.roles"
else
    cargo build --release --quiet --example replfloor
    port=$(free_port)
    mkdir -p "$TMP/floor"
    mode=()
    [ "$VIA_PATH" != via ] || mode=(via)
    target/release/examples/replfloor "$port" 2 "$TMP/floor" "${mode[@]}" &
    FLOOR_PID=$!
    wait_ping "$port" 10
    echo "$FLOOR_PID leader" >"$OUT.roles"
fi
echo 0 >$T/tracing_on
echo mono >$T/trace_clock
echo 65536 >$T/buffer_size_kb
echo >$T/trace
echo "${EVENTS:-sched:sched_switch sched:sched_wakeup block:block_rq_issue block:block_rq_complete syscalls:sys_enter_sendto syscalls:sys_enter_recvfrom}" >$T/set_event
python3 $HERE/probe.py "$port" 30000 "$OUT.lat" >"$OUT.sum" &
probe=$!
sleep 1.2
echo 1 >$T/tracing_on
sleep "${SECS:-1.5}"
echo 0 >$T/tracing_on
wait $probe
cat $T/trace >"$OUT.txt"
cat "$OUT.sum"
