#!/bin/bash
# One node cluster (REPLICAS, SHARDS), redis-benchmark RBARGS with N SETs after a
# 20,000-SET warm-up; prints the CSV line and the CPU (user + system, /proc) of every
# node process per SET. Ports below the ephemeral range (a peer port there collided once).
# usage: run.sh BIN NAME REPLICAS SHARDS "RBARGS" N
BIN=$1; NAME=$2; R=$3; S=$4; RB=$5; N=$6
D=$(mktemp -d ${TMPDIR:-/tmp}/sleep-fence.XXXX)
PORT=$((10000 + RANDOM % 18000))
$BIN cluster --replicas $R --shards $S --base-port $PORT --data $D --read-mode leader-lease > $D/log 2>&1 &
CP=$!
for i in $(seq 100); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
sleep 1
redis-benchmark -p $PORT -c 50 -P 1 -n 20000 -r 100000 -t set -q >/dev/null 2>&1
PIDS=$(pgrep -f "corepax node.*$D" | tr '\n' ' ')
cpu() { for p in $PIDS; do awk '{print $14+$15}' /proc/$p/stat; done | paste -sd+ | bc; }
c0=$(cpu)
OUT=$(redis-benchmark -p $PORT $RB -n $N -r 100000 -t set --csv 2>/dev/null | tail -1)
c1=$(cpu)
TICK=$(getconf CLK_TCK)
echo "$NAME $OUT cpu_us_per_op=$(echo "scale=2; ($c1-$c0)*1000000/$TICK/$N" | bc)"
kill $CP; wait $CP 2>/dev/null; sleep 0.5; pkill -f "corepax node.*$D"; rm -rf $D
