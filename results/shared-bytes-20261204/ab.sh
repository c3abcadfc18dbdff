#!/usr/bin/env bash
# A/B of /tmp/A/corepax and /tmp/B/corepax (copy of the throwaway script used for results/shared-bytes-20261204): two clusters side by side (1 shard, leader-lease),
# redis-benchmark RBARGS -n N for TESTS, alternated ROUNDS times; CPU µs/op per node (leader, followers) 
set -euo pipefail
cd /work/main
. scripts/lib.sh
TMP=$(mktemp -d); OUT_RAW=/dev/null
declare -A PORT PIDS
for b in A B; do
  COREPAX_BIN=/tmp/$b/corepax; resolve_bin
  SHARDS=1 CLUSTER_ARGS="${CARGS:---read-mode leader-lease}" start_cluster "$TMP/d-$b" "$TMP/c-$b.log" >/dev/null 2>&1
  if [ "${VIA:-leader}" = follower ]; then PORT[$b]=$((BASE + (LEAD_NODE + 1) % 3)); else PORT[$b]=$LEAD_PORT; fi; PIDS[$b]="$LEAD_NODE ${NODE_PIDS[*]}"; eval "CP_$b=$CLUSTER_PID"
done
tick1() { awk '{print $14+$15}' /proc/$1/stat; }
for r in $(seq ${ROUNDS:-4}); do for b in A B; do for t in ${TESTS:-set}; do
  set -- ${PIDS[$b]}; lead_i=$1; shift; pids=("$@")
  declare -a a=(); for p in "${pids[@]}"; do a+=($(tick1 $p)); done
  line=$(redis-benchmark -p ${PORT[$b]} ${RBARGS:--c 50 -P 16} -n ${N:-300000} -r 100000 -t $t --csv | tail -1)
  out=""; i=0; for p in "${pids[@]}"; do z=$(tick1 $p); out="$out $(python3 -c "print('%.2f'%((${z}-${a[$i]})*10000/${N:-300000}))")"; i=$((i+1)); done
  echo "$b lead=$lead_i $t $(echo $line | cut -d, -f2,5,7) cpu_us/op(nodes 0 1 2)=$out"
done; done; done
kill -TERM -- -$CP_A -$CP_B 2>/dev/null || true
sleep 1; rm -rf $TMP
