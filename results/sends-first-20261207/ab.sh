#!/usr/bin/env bash
# redis-benchmark SETs against fresh local 3-replica clusters (1 shard, leader-lease, fsync
# on), corepax binaries alternated ROUNDS times, and redis-server (appendonly, appendfsync
# always) after each round:
#   results/sends-first-20261207/ab.sh ROUNDS "RB ARGS" "name:BINARY:extra cluster flags[:ENV=VALUE]" ...
# e.g. ab.sh 4 "-c 1 -P 1 -n 8000" "A:/tmp/A/corepax:" "B:/tmp/B/corepax:"
# VIA=1: the client talks to a follower (its writes forwarded to the leader).
# Prints redis-benchmark's CSV line per run: rps, avg, min, p50, p95, p99, max (ms).
set -uo pipefail
cd "$(dirname "$0")/../.."
R=$1; RB_ARGS=$2; shift 2
. scripts/lib.sh
for r in $(seq 1 "$R"); do
  for spec in "$@" redis; do
    if [ "$spec" = redis ]; then
      d=$(mktemp -d); port=$(free_port)
      redis-server --port "$port" --save '' --appendonly yes --appendfsync always --dir "$d" >/dev/null 2>&1 &
      p=$!; sleep 0.5
      # shellcheck disable=SC2086
      echo "redis r$r $(redis-benchmark -p "$port" $RB_ARGS -r 100000 -t set --csv 2>/dev/null | tail -1)"
      kill $p; wait $p 2>/dev/null; rm -rf "$d"
    else (
      IFS=: read -r name bin extra envs <<<"$spec"
      # shellcheck disable=SC2086
      [ -z "$envs" ] || export $envs
      COREPAX_BIN=$bin; resolve_bin; TMP=$(mktemp -d); trap 'stop_cluster; rm -rf "$TMP"' EXIT
      SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease $extra" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
      sleep 1
      PORT=$LEAD_PORT; [ -z "${VIA:-}" ] || PORT=$((BASE + (LEAD_NODE + 1) % 3))
      # shellcheck disable=SC2086
      echo "$name r$r $(redis-benchmark -p "$PORT" $RB_ARGS -r 100000 -t set --csv 2>/dev/null | tail -1)"
    ) fi
  done
done
