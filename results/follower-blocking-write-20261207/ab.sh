#!/usr/bin/env bash
# A follower's WAL write through io_uring (main's path) against a blocking pwrite on its
# executor thread (the floor program's way), one fresh local cluster per MODE (3 replicas,
# 1 shard, leader-lease, fsync on; scripts/lib.sh's start_named_cluster), driven through
# the leader by redis-benchmark: 8,000 one-client SETs, then 300,000 SETs from 50 clients
# at -P 1, each with every node's CPU per SET (bench_set_cpu: the leader first).
#   BIN=... results/follower-blocking-write-20261207/ab.sh MODE...
# MODE is COREPAX_EXP_BLOCKING's value for that cluster: "" (main's path) or "followers".
# BIN is a corepax built with blocking-followers.patch (on 1395a2d: `git apply` it in a
# worktree, `cargo build --release`). COREPAX_EXP_LONE=1, exported, limits the blocking
# write to a sync started on an idle log (io::Submit::AtOnce).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
require_tools redis-cli redis-benchmark python3 setsid pgrep
BIN=$(readlink -f "${BIN:?a corepax built with blocking-followers.patch}")
for mode in "$@"; do
    TMP=$(mktemp -d)
    trap 'stop_cluster; rm -rf "$TMP"' EXIT
    export COREPAX_EXP_BLOCKING=$mode
    start_named_cluster AB "$TMP" ""
    echo "== ${mode:-main}"
    bench_set_cpu AB 1 1 8000
    bench_set_cpu AB 50 1 300000
    CLUSTER_PID=$AB_PID stop_cluster
    rm -rf "$TMP"
done
