#!/usr/bin/env bash
# Throwaway experiment kept for the record (results/one-client-disk-20261204): one-client SET with the
# leader not syncing (node 0 started with --no-fsync, made leader by restarting until it leads) against all
# syncing, alternated 3 times. NOT a safe configuration: it only bounds what taking the leader's own flush
# off the disk could buy. Needs a cluster laid out by `corepax cluster --base-port 27779 --data /tmp/c5/data`.
D=/tmp/c5/data; BIN=/work/main/target/release/corepax
start() { # $1 = extra flag for node 0
  pkill -f "c5/data/node-" ; sleep 0.5
  for i in 0 1 2; do rm -rf $D/node-$i; done
  setsid $BIN node --config $D/node-0.toml $1 > /tmp/lnf-0.log 2>&1 &
  setsid $BIN node --config $D/node-1.toml > /tmp/lnf-1.log 2>&1 &
  setsid $BIN node --config $D/node-2.toml > /tmp/lnf-2.log 2>&1 &
  sleep 3
}
leader0() { redis-cli -p 27779 info 2>/dev/null | grep -q "^shard0:leading=1"; }
for r in 1 2 3; do
  for mode in sync nofsync; do
    for try in 1 2 3 4 5 6 7 8; do
      if [ $mode = nofsync ]; then start --no-fsync; else start ""; fi
      leader0 && break
    done
    leader0 || { echo "$mode: node 0 never led"; continue; }
    redis-benchmark -p 27779 -c 1 -P 1 -n 1000 -r 100000 -t set -q > /dev/null 2>&1
    echo "$mode $(redis-benchmark -p 27779 -c 1 -P 1 -n 5000 -r 100000 -t set --csv | tail -1)"
  done
done
pkill -f "c5/data/node-"
