#!/usr/bin/env bash
# One client's SETs, request by request, across the processes of a fresh local 3-replica
# cluster (1 shard, leader-lease, fsync on) and of the floor program
# (examples/replfloor.rs, 2 followers), alternated ROUNDS times: ftrace records 0.1 s of
# system calls, io_uring submissions and completions, the scheduler and the block layer
# under `redis-benchmark -c 1 -P 1`; anatomy.py cuts it at the client's sends. Needs root
# (ftrace); builds the floor program (and corepax, when COREPAX_BIN is missing).
#   results/write-anatomy-20261207/anatomy.sh [ROUNDS] [COREPAX_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/write-anatomy-20261207
ROUNDS=${1:-3}
COREPAX_BIN=${2:-target/release/corepax}
. scripts/lib.sh
# shellcheck source=results/write-anatomy-20261207/trace-lib.sh
. results/write-anatomy-20261207/trace-lib.sh
trace_setup
trap 'stop_cluster; stop_pids "$FLOOR_PID"; rm -rf "$TMP"' EXIT

for r in $(seq "$ROUNDS"); do
    trace_both $HERE/anatomy.py 0.1 131072 "round $r, "
done
