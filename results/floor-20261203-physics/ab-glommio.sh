#!/usr/bin/env bash
# A/B of two builds (/tmp/head/corepax: glommio 0.9.0; /tmp/patched/corepax: vendor/glommio), two
# clusters side by side: redis-benchmark RBARGS (-c 1 -P 1) -n N (5000) for each of TESTS (set get),
# alternated 4 times; CPU per op of all 3 nodes (/proc/PID/stat)
set -euo pipefail
cd /work/main
. scripts/lib.sh
TMP=$(mktemp -d); OUT_RAW=/dev/null
declare -A PORT PIDS
for b in head patched; do
  COREPAX_BIN=/tmp/$b/corepax; resolve_bin
  SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d-$b" "$TMP/c-$b.log" >/dev/null 2>&1
  PORT[$b]=$LEAD_PORT; PIDS[$b]="${NODE_PIDS[*]}"; eval "CP_$b=$CLUSTER_PID"
done
ticks() { local t=0; for p in $1; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
for r in 1 2 3 4; do for b in head patched; do for t in ${TESTS:-set get}; do
  a=$(ticks "${PIDS[$b]}")
  line=$(redis-benchmark -p ${PORT[$b]} ${RBARGS:--c 1 -P 1} -n ${N:-5000} -r 100000 -t $t --csv | tail -1)
  z=$(ticks "${PIDS[$b]}")
  echo "$b $t $(echo $line | cut -d, -f2,5,7) cpu_us/op=$(( (z-a)*10000/${N:-5000} ))"
done; done; done
kill -TERM -- -$CP_head -$CP_patched 2>/dev/null || true
sleep 1; rm -rf $TMP
