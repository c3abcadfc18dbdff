#!/usr/bin/env bash
# One client's SETs, request by request, over a longer window than anatomy.sh's 0.1 s, to
# see the slowest requests: ftrace records SECS seconds (default 1.5, ~4,500 requests) of
# system calls, io_uring submissions and completions, the scheduler and the block layer
# under `redis-benchmark -c 1 -P 1` against a fresh local 3-replica cluster (1 shard,
# leader-lease, fsync on), then against the floor program (`replfloor PORT 2 DIR`);
# tail.py compares the slowest 2 % with the middle fifth, splits requests by the inode
# writes the disk got during them, and times the followers' wake-ups. Needs root (ftrace).
#   results/tail-and-load-20261207/tail.sh [SECS] [COREPAX_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/tail-and-load-20261207
SECS=${1:-1.5}
COREPAX_BIN=${2:-target/release/corepax}
. scripts/lib.sh
# shellcheck source=results/write-anatomy-20261207/trace-lib.sh
. results/write-anatomy-20261207/trace-lib.sh
trace_setup
trap 'echo 0 >$T/tracing_on; echo 4096 >$T/buffer_size_kb; stop_cluster; stop_pids "$FLOOR_PID"; rm -rf "$TMP"' EXIT

trace_both $HERE/tail.py "$SECS" 400000 ""
