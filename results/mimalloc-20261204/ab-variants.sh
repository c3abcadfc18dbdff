#!/usr/bin/env bash
# Variants "name=binary[:ENV=V]" side by side (1 shard, CARGS), redis-benchmark RBARGS -n N for TESTS,
# alternated ROUNDS times; CPU µs/op per node (nodes 0 1 2; lead=leader index)
set -euo pipefail
cd /work/main
. scripts/lib.sh
TMP=$(mktemp -d)
declare -A PORT PIDS CP
NAMES=()
for v in ${VARIANTS:-A=/tmp/A/corepax B=/tmp/B/corepax}; do
  name=${v%%=*}; rest=${v#*=}; bin=${rest%%:*}; envs=""; [[ $rest == *:* ]] && envs=${rest#*:}
  NAMES+=($name)
  COREPAX_BIN=$bin; resolve_bin
  ( [ -n "$envs" ] && export ${envs//,/ }; SHARDS=1 CLUSTER_ARGS="${CARGS:---read-mode leader-lease}" start_cluster "$TMP/d-$name" "$TMP/c-$name.log" >/dev/null 2>&1; echo "$BASE $LEAD_NODE $LEAD_PORT $CLUSTER_PID ${NODE_PIDS[*]}" > $TMP/$name.info )
  read base lead leadport cpid p0 p1 p2 < $TMP/$name.info
  if [ "${VIA:-leader}" = follower ]; then PORT[$name]=$((base + (lead + 1) % 3)); else PORT[$name]=$leadport; fi
  PIDS[$name]="$lead $p0 $p1 $p2"; CP[$name]=$cpid
done
tick1() { awk '{print $14+$15}' /proc/$1/stat; }
for r in $(seq ${ROUNDS:-4}); do for b in "${NAMES[@]}"; do for t in ${TESTS:-set}; do
  set -- ${PIDS[$b]}; lead_i=$1; shift; pids=("$@")
  declare -a a=(); for p in "${pids[@]}"; do a+=($(tick1 $p)); done
  line=$(redis-benchmark -p ${PORT[$b]} ${RBARGS:--c 50 -P 16} -n ${N:-300000} -r 100000 -t $t --csv | tail -1)
  out=""; i=0; for p in "${pids[@]}"; do z=$(tick1 $p); out="$out $(python3 -c "print('%.2f'%((${z}-${a[$i]})*10000/${N:-300000}))")"; i=$((i+1)); done
  echo "$b lead=$lead_i $t $(echo $line | cut -d, -f2,3,5,7) cpu_us/op(nodes 0 1 2)=$out"
done; done; done
for b in "${NAMES[@]}"; do kill -TERM -- -${CP[$b]} 2>/dev/null || true; done
sleep 1; rm -rf $TMP
