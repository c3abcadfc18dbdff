#!/bin/bash
# usage: growidle.sh BIN NAME: a 3-replica cluster gets SETs of new keys until a growth
# is under way with >= 150k keys left, then none: growth_keys_left every 0.5 s.
BIN=$1; NAME=$2
D=$(mktemp -d ${TMPDIR:-/tmp}/growidle.XXXX)
PORT=$((10000 + RANDOM % 18000))
$BIN cluster --replicas 3 --shards 1 --base-port $PORT --data $D > $D/log 2>&1 &
CP=$!
for i in $(seq 100); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.1; done
sleep 1
left() { redis-cli -p $PORT info | grep -o "growth_keys_left=[0-9]*" | cut -d= -f2; }
n=0
while :; do
  redis-benchmark -p $PORT -c 50 -P 16 -n 200000 -r 100000000 -t set -q > /dev/null 2>&1
  n=$((n+1)); l=$(left)
  [ "$l" -ge 150000 ] && break
  [ $n -ge 40 ] && break
done
t0=$(date +%s.%N); line="$NAME start=$l"
while :; do
  sleep 0.5; l=$(left); t=$(echo "$(date +%s.%N) - $t0" | bc)
  line="$line $(printf %.1f $t)s:$l"
  [ "$l" -eq 0 ] && break
  [ $(echo "$t > 40" | bc) -eq 1 ] && break
done
echo "$line"
kill $CP; wait $CP 2>/dev/null; sleep 0.5; pkill -f "corepax node.*$D"; rm -rf $D
