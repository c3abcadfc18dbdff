#!/usr/bin/env bash
# Two local 3-replica clusters side by side (1 shard, leader-lease, fsync on): A runs
# COREPAX_BIN_BEFORE, B runs COREPAX_BIN. First (root: ftrace), per cluster, a follower's
# io_uring work per WAL write over 0.5 s under one client and under 50 (`io_uring_enter`
# calls, its times switched out, its submissions by opcode); then ROUNDS rounds
# (default 4), A and B alternated, of `redis-benchmark -c 1 -P 1 -n N1` and `-c 50 -P 1
# -n N50` SETs: SETs/s, p50, and each node's CPU (user + system, /proc) per SET, the
# leader first.
#   COREPAX_BIN_BEFORE=/tmp/A/corepax results/link-poll-20261207/ab.sh [ROUNDS]
# (Its clusters and runs are scripts/lib.sh's start_named_cluster and bench_set_cpu since
# 2026-12-07 evening: lines now also say `-P 1` and the total to 2 decimals; ab.txt was
# written before.)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
require_tools redis-benchmark redis-cli python3
ROUNDS=${1:-4}
N1=${N1:-20000}
N50=${N50:-300000}
T=/sys/kernel/tracing
TMP=$(mktemp -d)
A_PID="" B_PID=""
trap 'stop_pids "$A_PID" "$B_PID"; CLUSTER_PID=$A_PID stop_cluster; CLUSTER_PID=$B_PID stop_cluster; rm -rf "$TMP"' EXIT

# start NAME BIN: a cluster of BIN (start_named_cluster).
start() {
    BIN=$(readlink -f "$2")
    start_named_cluster "$1" "$TMP" ""
}
COREPAX_BIN=${COREPAX_BIN:-target/release/corepax}
start A "${COREPAX_BIN_BEFORE:?the binary to compare against}"
start B "$COREPAX_BIN"

# uring PORT PID CLIENTS: the shard thread of PID per WAL write it issued.
uring() {
    local t tids="" rb
    for t in /proc/"$2"/task/*; do
        case $(cat "$t/comm") in corepax-shard-*) tids+=" $(basename "$t")" ;; esac
    done
    redis-benchmark -p "$1" -c "$3" -P 1 -n 100000000 -r 100000 -t set -q >/dev/null 2>&1 &
    rb=$!
    sleep 2
    echo 0 >$T/tracing_on
    echo >$T/trace
    echo "$tids" >$T/set_event_pid
    echo 16384 >$T/buffer_size_kb
    echo 'id == 426' >$T/events/raw_syscalls/sys_enter/filter
    for e in raw_syscalls/sys_enter io_uring/io_uring_submit_req block/block_rq_issue sched/sched_switch; do echo 1 >"$T/events/$e/enable"; done
    echo 1 >$T/tracing_on
    sleep 0.5
    echo 0 >$T/tracing_on
    for e in raw_syscalls/sys_enter io_uring/io_uring_submit_req block/block_rq_issue sched/sched_switch; do echo 0 >"$T/events/$e/enable"; done
    echo 0 >$T/events/raw_syscalls/sys_enter/filter
    echo >$T/set_event_pid
    kill "$rb"
    wait "$rb" 2>/dev/null || true
    python3 - "$T/trace" <<'PY'
import collections, re, sys
lines = open(sys.argv[1]).read().splitlines()
writes = sum(1 for l in lines if "block_rq_issue" in l and " WS " in l) or 1
enters = sum(1 for l in lines if "NR 426" in l)
out = sum(1 for l in lines if "sched_switch" in l and "prev_comm=corepax-shard" in l)
ops = collections.Counter(m.group(1) for l in lines for m in [re.search(r"opcode (\w+)", l)] if m)
print(f"WAL writes {writes}; per write: io_uring_enter {enters / writes:.2f}, switched out "
      f"{out / writes:.2f}, " + ", ".join(f"{k} {v / writes:.2f}" for k, v in ops.most_common()))
PY
}

echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD); A $(readlink -f "$COREPAX_BIN_BEFORE"), B $(readlink -f "$COREPAX_BIN")"
if [ -w $T/tracing_on ]; then
    for c in 1 50; do
        for name in A B; do
            port=${name}_PORT nodes=${name}_NODES
            read -r -a pids <<<"${!nodes}"
            echo "$name follower, -c $c: $(uring "${!port}" "${pids[1]}" "$c")"
        done
    done
fi
for r in $(seq "$ROUNDS"); do
    echo "## round $r"
    for c in 1 50; do
        n=$N1
        [ "$c" = 1 ] || n=$N50
        bench_set_cpu A "$c" 1 "$n"
        bench_set_cpu B "$c" 1 "$n"
    done
done
