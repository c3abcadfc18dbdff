#!/usr/bin/env bash
# One round of ../write-anatomy-20261207/anatomy.sh's corepax half on a fresh cluster whose leader's
# threads run at nice NICE (root: ftrace, renice), with the guest's halt polling at 200 µs
# (put back on exit).
#   results/vm-idle-wake-20261207/anatomy-nice.sh NICE
set -euo pipefail
cd "$(dirname "$0")/../.."
P=/sys/module/haltpoll/parameters/guest_halt_poll_ns
ORIG=$(cat "$P")
trap 'echo "$ORIG" >"$P"' EXIT
echo 200000 >"$P"
. scripts/lib.sh
. results/write-anatomy-20261207/trace-lib.sh
trace_setup
trap 'stop_cluster; rm -rf "$TMP"; echo "$ORIG" >"$P"' EXIT
dir=$(mktemp -d -p "$TMP")
SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$dir/d" "$dir/c.log" >/dev/null 2>&1
sleep 1
leader=$(shard_tid "${NODE_PIDS[$LEAD_NODE]}")
followers=""
for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || followers+=" $(shard_tid "${NODE_PIDS[$i]}")"; done
for t in /proc/"${NODE_PIDS[$LEAD_NODE]}"/task/*; do renice -n "$1" -p "$(basename "$t")" >/dev/null; done
trace "$LEAD_PORT" "$dir/corepax.trace" 0.1 131072
# shellcheck disable=SC2086 # two thread ids
python3 results/write-anatomy-20261207/anatomy.py "$dir/corepax.trace" redis-benchmark "$leader" $followers
