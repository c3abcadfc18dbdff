#!/usr/bin/env bash
# profile.sh: a local 3-replica cluster (1 shard, leader-lease, --snapshot-interval-slots 2000)
# of COREPAX_BIN, 1M random-key SETs loaded (~630k keys), then one client's SETs while
# `perf record -e cpu-clock -g` samples the leader for 5 s: it snapshots back to back. The
# profile goes to OUT (default /tmp/pm/snap.data); `perf report --sort pid,sym` gives the
# top by thread (the executor and the blocking pool are both named corepax-shard-1).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
resolve_bin
start_scratch_cluster --read-mode leader-lease --snapshot-interval-slots 2000
redis-benchmark -p "$LEAD_PORT" -c 50 -P 16 -n 1000000 -r 1000000 -t set -q >/dev/null
lead=${NODE_PIDS[$LEAD_NODE]}
redis-benchmark -p "$LEAD_PORT" -c 1 -P 1 -n 20000 -r 1000000 -t set -q >/dev/null &
rb=$!
sleep 0.5
perf record -e cpu-clock -g -p "$lead" -o "${OUT:-/tmp/pm/snap.data}" -- sleep 5 2>/dev/null
wait "$rb"
redis-cli -p "$LEAD_PORT" info | grep -E "snapshot" | tr ',' '\n' | grep snapshot
