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
# shellcheck source=results/write-anatomy-20261207/trace-lib.sh
. results/write-anatomy-20261207/trace-lib.sh
trace_setup
trap 'stop_cluster; rm -rf "$TMP"; echo "$ORIG" >"$P"' EXIT
start_traced_cluster
for t in /proc/"${NODE_PIDS[$LEAD_NODE]}"/task/*; do renice -n "$1" -p "$(basename "$t")" >/dev/null; done
trace "$LEAD_PORT" "$TRACED_DIR/corepax.trace" 0.1 131072
# shellcheck disable=SC2086 # two thread ids
python3 results/write-anatomy-20261207/anatomy.py "$TRACED_DIR/corepax.trace" redis-benchmark "$TRACED_LEADER" $TRACED_FOLLOWERS
