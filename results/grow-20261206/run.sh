#!/usr/bin/env bash
# run.sh: the shards' stops while a cluster's map grows past 1.84M keys. For each variant
# "name=BINARY" of VARIANTS (alternated, ROUNDS rounds), a local 3-replica cluster (1 shard,
# leader-lease), then `redis-benchmark -c 50 -P 16 -n N -r 100000000 -t set` through the
# leader: N SETs of (nearly all) new keys, so each replica's table grows at ~230k, 459k,
# 918k and 1.84M keys. Prints the benchmark's CSV row and, per node (leader first), its
# keys and the executor stalls (ticks >= 20 ms late) during the load, from INFO.
#   VARIANTS="before=/tmp/A/corepax;after=target/release/corepax" ROUNDS=3 run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
N=${N:-2200000}
IFS=';' read -r -a VS <<<"${VARIANTS:-before=/tmp/A/corepax;after=target/release/corepax}"
field() { tr -d '\r' | tr ',' '\n' | sed -n "s/^\(shard0_stats:\)\{0,1\}$1=//p" | head -1; }
stats() { # port -> "keys stalls stall_ms"
  local info; info=$(redis-cli -p "$1" info)
  for f in keys executor_stalls executor_stall_ms; do
    v=$(field $f <<<"$info"); printf '%s ' "${v:-0}"
  done
}
for r in $(seq "${ROUNDS:-3}"); do for v in "${VS[@]}"; do
  name=${v%%=*}; COREPAX_BIN=${v#*=}; resolve_bin
  start_scratch_cluster --read-mode leader-lease
  ports=("$LEAD_PORT"); for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || ports+=($((BASE + i))); done
  declare -A before=()
  for p in "${ports[@]}"; do before[$p]=$(stats "$p"); done
  row=$(redis-benchmark -p "$LEAD_PORT" -c 50 -P 16 -n "$N" -r 100000000 -t set --csv | tail -1)
  sleep 1
  out=""
  for p in "${ports[@]}"; do
    read -r -a a <<<"${before[$p]}"; read -r -a b <<<"$(stats "$p")"
    out+=" | ${b[0]} keys, stalls $((b[1]-a[1])) ($((b[2]-a[2])) ms)"
  done
  echo "round $r $name $row$out"
  stop_cluster; rm -rf "$TMP"; trap - EXIT
done; done
