#!/usr/bin/env bash
# RSS of each node of a local 3-replica cluster (1 shard, fsync on, leader-lease) every 5 s
# while redis-benchmark sends SETs to the leader (-r 100000: 100k distinct keys).
# usage: rss.sh BIN   (RB="-c 50 -P 1" redis-benchmark's load, N=14 readings, DUR=70 s of load)
set -euo pipefail
BIN=$(readlink -f "$1")
cd "$(dirname "$0")/../.." # the project root
. scripts/lib.sh
READY_TIMEOUT_S=${READY_TIMEOUT_S:-30}
TMP=$(mktemp -d)
SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/data" "$TMP/cluster.log"
echo "leader: node $LEAD_NODE"
# shellcheck disable=SC2086
timeout "${DUR:-70}" redis-benchmark -p "$LEAD_PORT" ${RB:--c 50 -P 1} -n 30000000 -r 100000 -t set -q >/dev/null 2>&1 &
for i in $(seq 1 "${N:-14}"); do
  sleep 5
  printf 't=%ss VmRSS KiB:' "$((i * 5))"
  for p in "${NODE_PIDS[@]}"; do printf ' %s' "$(awk '/VmRSS/ {print $2}' "/proc/$p/status")"; done
  echo
done
stop_cluster
rm -rf "$TMP"
