#!/usr/bin/env bash
# Syscalls per one-client SET on the leader and one follower: a local 3-replica cluster
# (1 shard, leader-lease) of COREPAX_BIN, `redis-benchmark -c 1 -P 1 -t set` against its
# leader, `strace -c -f` on the leader and a follower for 3 s; the counts go to OUT_DIR
# (default: this directory), named PREFIX-leader.txt and PREFIX-follower.txt, with the
# follower's vote sendto count as the number of writes traced.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
. scripts/lib.sh
resolve_bin
start_one_client_sets
L=${NODE_PIDS[$LEAD_NODE]}; F=${NODE_PIDS[$(( (LEAD_NODE + 1) % 3 ))]}
out=${OUT_DIR:-$HERE}/${PREFIX:-run}
timeout -s INT 3 strace -c -f -p "$L" -o "$out-leader.txt" 2>/dev/null &
ST=$!
timeout -s INT 3 strace -c -f -p "$F" -o "$out-follower.txt" 2>/dev/null || true
wait "$ST" || true
kill "$RB" 2>/dev/null || true
kill -TERM -- "-$CLUSTER_PID" 2>/dev/null || true
sleep 1; rm -rf "$TMP"
for who in leader follower; do
  awk -v who="$who" '$NF=="io_uring_enter"||$NF=="membarrier"||$NF=="sendto"||$NF=="recvfrom" {c[$NF]=$4}
    END {printf "%s: io_uring_enter %d, membarrier %d, sendto %d, recvfrom %d\n", who, c["io_uring_enter"], c["membarrier"], c["sendto"], c["recvfrom"]}' "$out-$who.txt"
done
