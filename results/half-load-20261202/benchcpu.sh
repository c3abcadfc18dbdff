#!/bin/bash
# usage: benchcpu.sh BIN OUT  -- runs `BIN bench`, prints loadgen ticks in the open-loop phase
BIN=$1; OUT=$2
($BIN bench > $OUT 2>&1 &)
sleep 1; P=$(pgrep -f "$BIN bench" | head -1)
sleep 24; a=$(awk '{print $14+$15}' /proc/$P/stat); ta=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
sleep 5; b=$(awk '{print $14+$15}' /proc/$P/stat); tb=$(awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat)
while pgrep -f "$BIN bench" >/dev/null; do sleep 1; done
echo "loadgen cores in open loop: $(echo "scale=2; ($b-$a)/500" | bc)  machine busy cores: $(echo "scale=2; ($tb-$ta)/500" | bc)"
grep -E "^all|server CPU|open loop:" $OUT
