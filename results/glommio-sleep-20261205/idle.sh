#!/usr/bin/env bash
# Idle CPU of each node, as % of one core, for local 3-replica clusters side by side
# (1 shard, leader-lease), one per binary: BINS="name=/path ...", SECONDS_IDLE (30),
# ROUNDS (2). A few SETs first so every node has a leader and a lease to renew.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
. scripts/lib.sh
TMP=$(mktemp -d)
declare -A PIDS CP
NAMES=()
for v in ${BINS:?}; do
  name=${v%%=*}; NAMES+=("$name")
  ( BIN=$(readlink -f "${v#*=}"); SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d-$name" "$TMP/c-$name.log" >/dev/null 2>&1
    redis-benchmark -p "$LEAD_PORT" -c 1 -n 1000 -t set -q >/dev/null
    echo "$CLUSTER_PID ${NODE_PIDS[*]}" > "$TMP/$name.info" )
  read -r cpid p0 p1 p2 < "$TMP/$name.info"
  PIDS[$name]="$p0 $p1 $p2"; CP[$name]=$cpid
done
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
S=${SECONDS_IDLE:-30}
for r in $(seq "${ROUNDS:-2}"); do
  declare -A before=()
  for name in "${NAMES[@]}"; do for p in ${PIDS[$name]}; do before[$p]=$(ticks "$p"); done; done
  sleep "$S"
  for name in "${NAMES[@]}"; do
    line="round $r $name idle % of a core:"
    for p in ${PIDS[$name]}; do line="$line $(python3 -c "print('%.2f' % (($(ticks "$p") - ${before[$p]}) / $S))")"; done
    echo "$line"
  done
done
for name in "${NAMES[@]}"; do kill -TERM -- "-${CP[$name]}" 2>/dev/null || true; done
sleep 1; rm -rf "$TMP"
