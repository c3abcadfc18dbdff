#!/usr/bin/env bash
# run.sh: one client's SET latency while the nodes keep writing snapshots of a large state.
# For each variant "name=BINARY" of VARIANTS (alternated, ROUNDS rounds), a local 3-replica
# cluster (1 shard, leader-lease, --snapshot-interval-slots SLOTS), KEYS random keys loaded
# with pipelined SETs, then `redis-benchmark RBARGS -n N -r KEYS -t set` through the
# leader (RBARGS "-c 1 -P 1" by default: each SET is a slot, so a snapshot is due every
# SLOTS SETs and the nodes snapshot back to back). Prints the benchmark's CSV row and, per node (leader first), the snapshots
# written during it, their freeze and write time, and the executor stalls (ticks >= 20 ms
# late) from INFO, and the longest a freeze stopped the shard (INFO snapshot_pause_max_us,
# where the build has it), the longest WAL sync since the node started (sync_max_ms) and
# the WAL syncs of 50 ms or more during the run.
#   VARIANTS="before=/tmp/A/corepax;after=target/release/corepax" ROUNDS=3 run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
KEYS=${KEYS:-1000000}; N=${N:-20000}; SLOTS=${SLOTS:-2000}
IFS=';' read -r -a VS <<<"${VARIANTS:-before=/tmp/A/corepax;after=target/release/corepax}"
field() { tr -d '\r' | tr ',' '\n' | sed -n "s/^\(shard0_stats:\)\{0,1\}$1=//p" | head -1; }
stats() { # port -> "snapshots freeze_us write_ms stalls stall_ms"
  local info; info=$(redis-cli -p "$1" info)
  for f in snapshots_written snapshot_freeze_us snapshot_write_ms executor_stalls executor_stall_ms snapshot_pause_max_us sync_max_ms syncs_slow; do
    v=$(field $f <<<"$info"); printf '%s ' "${v:-0}"
  done
}
for r in $(seq "${ROUNDS:-3}"); do for v in "${VS[@]}"; do
  name=${v%%=*}; COREPAX_BIN=${v#*=}; resolve_bin
  start_scratch_cluster --read-mode leader-lease --snapshot-interval-slots "$SLOTS"
  redis-benchmark -p "$LEAD_PORT" -c 50 -P 16 -n "$KEYS" -r "$KEYS" -t set -q >/dev/null
  ports=("$LEAD_PORT"); for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || ports+=($((BASE + i))); done
  declare -A before=()
  for p in "${ports[@]}"; do before[$p]=$(stats "$p"); done
  read -r -a rb <<<"${RBARGS:--c 1 -P 1}"
  row=$(redis-benchmark -p "$LEAD_PORT" "${rb[@]}" -n "$N" -r "$KEYS" -t set --csv | tail -1)
  out=""
  for p in "${ports[@]}"; do
    read -r -a a <<<"${before[$p]}"; read -r -a b <<<"$(stats "$p")"
    out+=" | $((b[0]-a[0])) snaps, freeze $(( (b[1]-a[1]) / 1000 )) ms, write $((b[2]-a[2])) ms, stalls $((b[3]-a[3])) ($((b[4]-a[4])) ms), longest pause ${b[5]} µs, longest sync ${b[6]} ms, slow syncs $((b[7]-a[7]))"
  done
  echo "round $r $name $row$out"
  stop_cluster; rm -rf "$TMP"; trap - EXIT
done; done
