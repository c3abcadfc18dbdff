# Sourced by anatomy.sh and ../tail-and-load-20261207/tail.sh (root: ftrace): the events
# both record, one client's trace, and a corepax node's shard thread.
# shellcheck shell=bash
T=/sys/kernel/tracing
EVENTS="raw_syscalls/sys_enter raw_syscalls/sys_exit io_uring/io_uring_submit_req
io_uring/io_uring_complete sched/sched_wakeup sched/sched_switch block/block_rq_issue
block/block_rq_complete"

# trace PORT OUT SECS BUFFER_KB: SECS seconds of events while one client SETs against
# PORT, after WARM_S (default 4) seconds of it; BUFFER_KB of trace buffer per CPU.
trace() {
    local rb e
    redis-benchmark -p "$1" -c 1 -P 1 -n 400000 -r 100000 -t set -q >/dev/null 2>&1 &
    rb=$!
    sleep "${WARM_S:-4}"
    echo 0 >$T/tracing_on
    echo >$T/trace
    echo "$4" >$T/buffer_size_kb
    for e in $EVENTS; do echo 1 >"$T/events/$e/enable"; done
    echo 1 >$T/tracing_on
    sleep "$3"
    echo 0 >$T/tracing_on
    for e in $EVENTS; do echo 0 >"$T/events/$e/enable"; done
    cp $T/trace "$2"
    kill "$rb" 2>/dev/null || true
    wait "$rb" 2>/dev/null || true
}

# The executor thread of a corepax node (its shard thread).
shard_tid() {
    local t
    for t in /proc/"$1"/task/*; do
        case $(cat "$t/comm") in corepax-shard-*) basename "$t"; return ;; esac
    done
}
