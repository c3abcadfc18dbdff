#!/usr/bin/env bash
# Clusters side by side, one per variant "name=extra cluster flags" (1 shard, READ_MODE,
# the same binary COREPAX_BIN), each driven in turn by the same redis-benchmark command
# (RBARGS, -n N) through its leader, ROUNDS times; prints the CSV row and every node's CPU
# µs per request (leader first). "name=@BINARY flags" gives a variant its own binary.
# T=get runs GETs (default set), after one pass of pipelined SETs of the same keys.
# CLIENT_STAT=1 also prints the benchmark client's CPU µs and context switches per request
# (`perf stat` around redis-benchmark). VIA_FOLLOWER=1 drives a follower instead of the
# leader (CPU still printed leader first). READ_MODE sets the clusters' read mode
# (default leader-lease).
#   VARIANTS="on= off=--lazy-leader-sync=false" RBARGS="-c 1 -P 1" N=15000 ROUNDS=4 ab.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
resolve_bin
TMP=$(mktemp -d)
declare -A PORT PIDS CP
NAMES=()
IFS=';' read -r -a VS <<<"${VARIANTS:-on=;off=--lazy-leader-sync false}"
for v in "${VS[@]}"; do
  name=${v%%=*}; flags=${v#*=}
  NAMES+=("$name")
  # "name=@/path/to/corepax flags": that variant's own binary.
  if [[ $flags == @* ]]; then read -r bin flags <<<"${flags#@}"; else bin=$BIN; fi
  ( BIN=$bin; SHARDS=1 CLUSTER_ARGS="--read-mode ${READ_MODE:-leader-lease} $flags" start_cluster "$TMP/d-$name" "$TMP/c-$name.log" >/dev/null 2>&1
    port=$LEAD_PORT; [ -z "${VIA_FOLLOWER:-}" ] || port=$((BASE + (LEAD_NODE + 1) % 3))
    echo "$port $CLUSTER_PID $LEAD_NODE ${NODE_PIDS[*]}" > "$TMP/$name.info" )
  read -r port cpid lead p0 p1 p2 < "$TMP/$name.info"
  pids=("$p0" "$p1" "$p2")
  PORT[$name]=$port; CP[$name]=$cpid
  PIDS[$name]="${pids[$lead]} $(for i in 0 1 2; do [ "$i" = "$lead" ] || printf '%s ' "${pids[$i]}"; done)"
done
T=${T:-set}
if [ "$T" != set ]; then for name in "${NAMES[@]}"; do
  redis-benchmark -p "${PORT[$name]}" -c 50 -P 16 -n 300000 -r 100000 -t set -q >/dev/null
done; fi
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
N=${N:-15000}
for r in $(seq "${ROUNDS:-4}"); do for name in "${NAMES[@]}"; do
  read -r -a pids <<<"${PIDS[$name]}"
  a=(); for p in "${pids[@]}"; do a+=("$(ticks "$p")"); done
  stat=()
  [ -z "${CLIENT_STAT:-}" ] || stat=(perf stat -x, -e task-clock,context-switches -o "$TMP/client.stat")
  line=$("${stat[@]}" redis-benchmark -p "${PORT[$name]}" ${RBARGS:--c 1 -P 1} -n "$N" -r 100000 -t "$T" --csv | tail -1)
  cpu=""; i=0
  for p in "${pids[@]}"; do
    cpu="$cpu $(python3 -c "print('%.2f' % (($(ticks "$p") - ${a[$i]}) * 10000 / $N))")"; i=$((i + 1))
  done
  client=""
  if [ -n "${CLIENT_STAT:-}" ]; then
    client=$(awk -F, -v n="$N" '/task-clock/ {ms=$1} /context-switches/ {cs=$1}
      END {printf " client: %.2f us/op, %.1f switches per 1000 ops", ms * 1000 / n, cs * 1000 / n}' "$TMP/client.stat")
  fi
  echo "round $r $name $line cpu_us/op(leader followers):$cpu$client"
done; done
for name in "${NAMES[@]}"; do kill -TERM -- "-${CP[$name]}" 2>/dev/null || true; done
sleep 1; rm -rf "$TMP"
