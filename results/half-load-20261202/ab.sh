#!/bin/bash
# ab.sh BIN PORT -- cluster of BIN; bursty open loop 70k, open 5k, P1 closed 50 conns, one client at the leader, P16 closed; CPU per op
B=$1; P=$2; D=/tmp/ab$P; rm -rf $D
($B cluster --replicas 3 --base-port $P --data $D > $D.log 2>&1 &); sleep 3
T=127.0.0.1:$P,127.0.0.1:$((P+1)),127.0.0.1:$((P+2))
$B bench --target $T --duration 2 --warmup 1 --half-load 0 >/dev/null 2>&1
L=$(redis-cli -p $P info | grep -o "leader=[0-9]*" | head -1 | cut -d= -f2); LP=$((P+L))
echo "== $B (leader $LP)"
st(){ redis-cli -p $LP info | tr ',\r' '\n ' | grep -E "^(slots_proposed|commands_proposed|syncs)=" | head -3 | tr '\n' ' '; }
r(){ echo -n "$1: "; shift; a=$(st); $B bench --duration 5 --warmup 1 --no-preload --half-load 0 "$@" 2>&1 | grep -E "^all|server CPU" | sed 's/server CPU per op (µs, user+sys)://; s/127.0.0.1://g' | tr -s ' ' | tr '\n' ' '; echo; echo "   before: $a after: $(st)"; }
r "open70k burst16" --target $T --rate 70000 --pipeline 16 --workload /tmp/burst.toml
r "open5k" --target $T --rate 5000
r "closed P1 c50" --target $T --pipeline 1
r "closed P1 c1 leader" --target 127.0.0.1:$LP --pipeline 1 --connections 1
r "closed P16 c50" --target $T
pkill -f "cluster --replicas 3 --base-port $P"
