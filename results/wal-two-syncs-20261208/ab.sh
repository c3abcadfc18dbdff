#!/usr/bin/env bash
# Two corepax binaries side by side, ROUNDS rounds interleaved, a fresh local cluster for
# each (3 replicas, 1 shard, leader-lease, fsync on; scripts/lib.sh's start_named_cluster),
# driven through the leader by redis-benchmark: 300,000 SETs from 50 clients at -P 1, then
# each node's WAL counters from INFO (propose_to_chosen_avg_us is the leader's; syncs,
# sync_avg_us and, where the binary has it, syncs_overlapped), then 1,000,000 SETs at
# -P 16; each run with every node's CPU per SET (bench_set_cpu: the leader first).
#   ROUNDS=4 results/wal-two-syncs-20261208/ab.sh BEFORE_BIN AFTER_BIN
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
require_tools redis-cli redis-benchmark python3 setsid pgrep
bins=()
for b in "$@"; do bins+=("$(readlink -f "$b")"); done
for r in $(seq 1 "${ROUNDS:-4}"); do
    for BIN in "${bins[@]}"; do
        TMP=$(mktemp -d)
        trap 'stop_cluster; rm -rf "$TMP"' EXIT
        start_named_cluster AB "$TMP" "" 2>/dev/null
        echo "== round $r $BIN"
        bench_set_cpu AB 50 1 300000
        for i in 0 1 2; do
            redis-cli -p $((BASE + i)) info | tr -d '\r' | grep '^shard0_latency' |
                grep -oE "propose_to_chosen_avg_us=[0-9]+|syncs=[0-9]+|sync_avg_us=[0-9]+|syncs_overlapped=[0-9]+" |
                tr '\n' ' '
            echo
        done
        bench_set_cpu AB 50 16 1000000
        CLUSTER_PID=$AB_PID stop_cluster
        rm -rf "$TMP"
    done
done
