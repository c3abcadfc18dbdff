#!/usr/bin/env bash
# alloccount.sh: mimalloc frees (`mi_free` calls, counted by a uprobe with `perf stat`) per
# request in each node of a local 3-replica cluster (COREPAX_BIN, 1 shard, READ_MODE,
# default leader-lease) over N pipelined commands (T, default get; `-c 50 -P 16`, through
# the leader, VIA=1 through a follower), after 100,000 SETs and 2 s. The uprobe must exist
# for that binary: `perf probe -x BIN --add mi_free` (EV names it, default
# probe_corepax:mi_free; a second binary's: `perf probe -x BIN2 --add 'dfree=mi_free'`,
# EV=probe_corepax:dfree). Needs root.
#   COREPAX_BIN=/tmp/B/corepax T=get N=1000000 results/lease-get-reply-copy-20261206/alloccount.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
resolve_bin
start_scratch_cluster --read-mode "${READ_MODE:-leader-lease}"
N=${N:-200000}
port=$LEAD_PORT; [ -z "${VIA:-}" ] || port=$((BASE + (LEAD_NODE + 1) % 3))
redis-benchmark -p "$port" -c 50 -P 16 -n 100000 -r 100000 -t set -q >/dev/null
sleep 2
stats=()
for i in 0 1 2; do perf stat -e "${EV:-probe_corepax:mi_free}" -p "${NODE_PIDS[$i]}" -o "$TMP/s$i.txt" & stats+=($!); done
sleep 0.5
redis-benchmark -p "$port" -c 50 -P 16 -n "$N" -r 100000 -t "${T:-get}" -q >/dev/null
sleep 0.2; kill -INT "${stats[@]}"; wait "${stats[@]}" 2>/dev/null || true
for i in 0 1 2; do c=$(awk '/probe_/ {gsub(",", "", $1); print $1}' "$TMP/s$i.txt"); role=follower; [ "$i" = "$LEAD_NODE" ] && role=leader; [ $((BASE + i)) = "$port" ] && role="$role, the clients'"; echo "node $i ($role): $(python3 -c "print(round($c / $N, 3))") per request"; done
