#!/usr/bin/env bash
# Two local 3-replica clusters of one binary side by side (1 shard, leader-lease, fsync
# on): A with `--no-pin` (the kernel places every executor, `corepax cluster`'s default
# on a machine with fewer cores than executors), B `--place-by-role` (the leader on a
# core of its own, followers sharing the rest; ab.txt was recorded while this was the
# default, with B started without flags). ROUNDS rounds (default 4),
# A and B alternated, of `redis-benchmark -c 1 -P 1 -n N1`, `-c 50 -P 1 -n N50` and
# `-c 50 -P 16 -n N16` SETs: SETs/s, p50, and each node's CPU (user + system, /proc)
# per SET, the leader first. Each cluster's executors' cores and policy, from INFO, first.
#   results/role-placement-20261207/ab.sh [ROUNDS]
# Other pairs (../follower-batch-20261207/ runs it so): A_ARGS and B_ARGS (each
# cluster's flags, defaults `--no-pin --follower-sched-batch false`, every executor at
# SCHED_OTHER as when this was recorded, and `--place-by-role`), B_FOLLOWERS (a command
# run with each of B's follower pids after its start, e.g. `chrt -b -a -p 0`), LABEL (the
# pair's name in the output's first line).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
require_tools redis-benchmark redis-cli python3
ROUNDS=${1:-4}
N1=${N1:-20000}
N50=${N50:-300000}
N16=${N16:-1500000}
TMP=$(mktemp -d)
A_PID="" B_PID=""
trap 'CLUSTER_PID=$A_PID stop_cluster; CLUSTER_PID=$B_PID stop_cluster; rm -rf "$TMP"' EXIT
BIN=$(readlink -f "${COREPAX_BIN:-target/release/corepax}")

# start NAME ARGS: a cluster (start_named_cluster), and its executors' cores and policy.
start() {
    local i
    start_named_cluster "$1" "$TMP" "$2"
    for i in 0 1 2; do
        echo "$1 node $i: $(redis-cli -p $((BASE + i)) info | grep '^shard0:' | tr ',' '\n' |
            grep -E '^(shard0:leading|cores|sched)=' | tr '\n' ' ')"
    done
}
start A "${A_ARGS---no-pin --follower-sched-batch false}"
start B "${B_ARGS---place-by-role}"
if [ -n "${B_FOLLOWERS:-}" ]; then
    read -r -a followers <<<"$B_NODES"
    for p in "${followers[@]:1}"; do
        # shellcheck disable=SC2086 # a command and its arguments
        $B_FOLLOWERS "$p" >/dev/null
    done
fi

echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD); $BIN; ${LABEL:-A --no-pin, B by role}"
for r in $(seq "$ROUNDS"); do
    echo "## round $r"
    for spec in "1 1 $N1" "50 1 $N50" "50 16 $N16"; do
        read -r c p n <<<"$spec"
        bench_set_cpu A "$c" "$p" "$n"
        bench_set_cpu B "$c" "$p" "$n"
    done
done
