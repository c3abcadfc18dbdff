#!/bin/bash
# usage: proto.sh ROUNDS BIN WORKLOAD_ARGS...  interleaved multipaxos / raft, `bench --half-load 0`
R=$1; B=$2; shift 2
for r in $(seq 1 $R); do
  for p in multipaxos raft; do
    out=$($B bench --half-load 0 "$@" --json /tmp/bb/proto-$p-$r.json -- --protocol $p 2>&1)
    echo "$(date +%H:%M:%S) $p r$r: $(echo "$out" | grep -E "^all|^(get|set|read|update) |server CPU" | tr '\n' ' ')"
    pkill -f "corepax-.* node" ; sleep 2
  done
done
