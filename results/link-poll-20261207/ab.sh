#!/usr/bin/env bash
# Two local 3-replica clusters side by side (1 shard, leader-lease, fsync on): A runs
# COREPAX_BIN_BEFORE, B runs COREPAX_BIN. First (root: ftrace), per cluster, a follower's
# io_uring work per WAL write over 0.5 s under one client and under 50 (`io_uring_enter`
# calls, its times switched out, its submissions by opcode); then ROUNDS rounds
# (default 4), A and B alternated, of `redis-benchmark -c 1 -P 1 -n N1` and `-c 50 -P 1
# -n N50` SETs: SETs/s, p50, and each node's CPU (user + system, /proc) per SET, the
# leader first.
#   COREPAX_BIN_BEFORE=/tmp/A/corepax results/link-poll-20261207/ab.sh [ROUNDS]
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

# start NAME BIN: a cluster; sets NAME_PID, NAME_PORT (its leader's) and NAME_NODES
# (its node pids, the leader first).
start() {
    local name=$1 i nodes
    BIN=$(readlink -f "$2")
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/$name" "$TMP/$name.log" >/dev/null
    nodes="${NODE_PIDS[$LEAD_NODE]}"
    for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || nodes+=" ${NODE_PIDS[$i]}"; done
    printf -v "${name}_PID" %s "$CLUSTER_PID"
    printf -v "${name}_PORT" %s "$LEAD_PORT"
    printf -v "${name}_NODES" %s "$nodes"
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

# run NAME CLIENTS N: one redis-benchmark run against NAME's leader.
run() {
    local name=$1 port nodes p line cpus="" total=0 i=0
    port=${name}_PORT nodes=${name}_NODES
    local -a pids before=()
    read -r -a pids <<<"${!nodes}"
    for p in "${pids[@]}"; do before+=("$(cpu_ticks "$p")"); done
    line=$(redis-benchmark -p "${!port}" -c "$2" -P 1 -n "$3" -r 100000 -t set -q 2>&1 |
        tr '\r' '\n' | grep "per second" | tail -1)
    for p in "${pids[@]}"; do
        cpus+=" $(cpu_us_per_op "${before[$i]}" "$(cpu_ticks "$p")" "$3")"
        i=$((i + 1))
    done
    total=$(echo "$cpus" | awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.1f", s}')
    printf '%s -c %-2s %10s SETs/s  p50 %s ms  CPU µs/SET (leader, followers)%s  total %s\n' \
        "$name" "$2" "$(echo "$line" | awk '{print $2}')" \
        "$(echo "$line" | sed -n 's/.*p50=\([0-9.]*\).*/\1/p')" "$cpus" "$total"
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
        run A "$c" "$n"
        run B "$c" "$n"
    done
done
