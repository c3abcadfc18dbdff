#!/usr/bin/env bash
# One client's SETs on a fresh local 3-replica cluster (1 shard, leader-lease), an ftrace
# of 0.1 s (../write-anatomy-20261207/trace-lib.sh's events), ROUNDS times; accept-sends.py
# then times the leader's two accept sends of each request and compares the requests in
# which it was switched out between them with the rest. Needs root (ftrace).
#   results/half-load-anatomy-20261207/accept-sends.sh [ROUNDS] [COREPAX_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/half-load-anatomy-20261207
ROUNDS=${1:-2}
COREPAX_BIN=${2:-target/release/corepax}
. scripts/lib.sh
# shellcheck source=results/write-anatomy-20261207/trace-lib.sh
. results/write-anatomy-20261207/trace-lib.sh
require_tools redis-benchmark python3
resolve_bin
TMP=$(mktemp -d)
trap 'echo 0 >$T/tracing_on; echo 4096 >$T/buffer_size_kb; stop_cluster; rm -rf "$TMP"' EXIT
for r in $(seq "$ROUNDS"); do
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d$r" "$TMP/c$r.log" >/dev/null 2>&1
    sleep 1
    leader=$(shard_tid "${NODE_PIDS[$LEAD_NODE]}")
    trace "$LEAD_PORT" "$TMP/t$r" 0.1 131072
    stop_cluster
    echo "== round $r"
    python3 $HERE/accept-sends.py "$TMP/t$r" "$leader"
    [ -n "${KEEP:-}" ] && cp "$TMP/t$r" "$KEEP.$r" && echo "$leader" > "$KEEP.$r.tid"
done
