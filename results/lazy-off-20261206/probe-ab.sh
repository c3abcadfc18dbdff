#!/usr/bin/env bash
# One client's SETs, one at a time, each timed (probe.py), against a fresh local 3-replica
# cluster per run (1 shard, leader-lease), variants alternated ROUNDS times:
#   results/lazy-off-20261206/probe-ab.sh ROUNDS N "name:BINARY:extra cluster flags" ...
# Prints each run's percentiles (µs) and how many requests took over 250 µs.
# VIA_FOLLOWER=1: the client talks to a follower (its writes forwarded to the leader).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/lazy-off-20261206
R=$1; N=$2; shift 2
OUTDIR=$(mktemp -d)
for r in $(seq 1 "$R"); do
  for spec in "$@"; do
    IFS=: read -r name bin extra <<<"$spec"
    line=$(
      COREPAX_BIN=$bin
      . scripts/lib.sh
      resolve_bin
      TMP=$(mktemp -d)
      trap 'stop_cluster; rm -rf "$TMP"' EXIT
      SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease $extra" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
      sleep 1
      port=$LEAD_PORT
      [ -z "${VIA_FOLLOWER:-}" ] || port=$((BASE + (LEAD_NODE + 1) % 3))
      python3 $HERE/probe.py "$port" "$N" "$OUTDIR/$name-$r.txt"
    )
    slow=$(awk '$2 > 250000 {n++} END {print n + 0}' "$OUTDIR/$name-$r.txt")
    echo "$name r$r: $line slow>250us=$slow"
  done
done
rm -rf "$OUTDIR"
