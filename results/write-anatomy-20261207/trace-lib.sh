# Sourced by anatomy.sh and other tracing scripts in results/ (root: ftrace): the events
# they record, one client's trace, a corepax node's shard thread, a traced cluster.
# shellcheck shell=bash
T=/sys/kernel/tracing

# trace_setup: what tracing needs: the tools, BIN (scripts/lib.sh's resolve_bin, from
# COREPAX_BIN), FLOOR_BIN (built), TMP, and FLOOR_PID for the exit trap.
trace_setup() {
    require_tools redis-benchmark python3
    resolve_bin
    cargo build --release --quiet --example replfloor
    FLOOR_BIN=$(readlink -f target/release/examples/replfloor)
    TMP=$(mktemp -d)
    FLOOR_PID=""
}
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

# start_traced_cluster: a fresh local 3-replica cluster of BIN (1 shard, leader-lease,
# fsync on) in a new directory under TMP; sets TRACED_DIR, TRACED_LEADER (its leader's
# shard thread) and TRACED_FOLLOWERS (its followers', space-separated).
start_traced_cluster() {
    local i
    TRACED_DIR=$(mktemp -d -p "$TMP")
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TRACED_DIR/d" "$TRACED_DIR/c.log" >/dev/null 2>&1
    sleep 1
    TRACED_LEADER=$(shard_tid "${NODE_PIDS[$LEAD_NODE]}")
    TRACED_FOLLOWERS=""
    for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || TRACED_FOLLOWERS+=" $(shard_tid "${NODE_PIDS[$i]}")"; done
}

# trace_both ANALYSER SECS BUFFER_KB HEADING: a fresh local 3-replica cluster of BIN
# (1 shard, leader-lease, fsync on), then the floor program (FLOOR_BIN PORT 2 DIR), each
# traced under one client (`trace`) and its trace cut by `python3 ANALYSER TRACE
# redis-benchmark LEADER FOLLOWER FOLLOWER`; HEADING starts each part's title. Uses TMP;
# the caller's exit trap stops the cluster and FLOOR_PID.
trace_both() {
    local analyser=$1 secs=$2 kb=$3 heading=$4 dir leader followers port floor_leader fts
    start_traced_cluster
    dir=$TRACED_DIR leader=$TRACED_LEADER followers=$TRACED_FOLLOWERS
    trace "$LEAD_PORT" "$dir/corepax.trace" "$secs" "$kb"
    stop_cluster
    echo "== ${heading}corepax ($BIN)"
    # shellcheck disable=SC2086 # two thread ids
    python3 "$analyser" "$dir/corepax.trace" redis-benchmark "$leader" $followers

    port=$(free_port)
    mkdir -p "$dir/floor"
    "$FLOOR_BIN" "$port" 2 "$dir/floor" >/dev/null 2>&1 &
    FLOOR_PID=$!
    wait_ping "$port" 10 || { echo "replfloor did not start" >&2; exit 1; }
    # The floor's leader is its main thread; its followers the two others.
    floor_leader=$FLOOR_PID
    mapfile -t fts < <(ls /proc/$FLOOR_PID/task | grep -vx "$FLOOR_PID")
    trace "$port" "$dir/floor.trace" "$secs" "$kb"
    stop_pids "$FLOOR_PID"
    FLOOR_PID=""
    echo "== ${heading}the floor (replfloor PORT 2 DIR)"
    python3 "$analyser" "$dir/floor.trace" redis-benchmark "$floor_leader" "${fts[@]}"
    rm -rf "$dir"
}
