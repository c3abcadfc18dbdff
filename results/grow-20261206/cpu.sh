#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
COREPAX_BIN=$1; resolve_bin
start_scratch_cluster --read-mode leader-lease
declare -a t0
for i in 0 1 2; do t0[$i]=$(awk '{print $14+$15}' /proc/${NODE_PIDS[$i]}/stat); done
row=$(redis-benchmark -p "$LEAD_PORT" -c 50 -P 16 -n 2200000 -r 100000000 -t set --csv | tail -1)
out="$2 $row leader=$LEAD_NODE cpu_ms:"
for i in 0 1 2; do t=$(awk '{print $14+$15}' /proc/${NODE_PIDS[$i]}/stat); out+=" $(( (t - t0[$i]) * 10 ))"; done
echo "$out"
stop_cluster; rm -rf "$TMP"; trap - EXIT
