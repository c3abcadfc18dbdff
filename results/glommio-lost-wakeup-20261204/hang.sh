#!/usr/bin/env bash
# Runs a short main job RUNS (6) times with a 60 s limit each and prints each exit status
# (124: it hung and was killed). BINX picks the binary (default target/release/corepax).
cd "$(dirname "$0")/../.." || exit 1
for i in $(seq "${RUNS:-6}"); do
  timeout 60 "${BINX:-./target/release/corepax}" bench --duration 3 --warmup 1 --json "/tmp/hang-$i.json" > "/tmp/hang-$i.log" 2>&1
  rc=$?
  echo "run $i rc=$rc"
  if [ $rc = 124 ]; then pkill -f "corepax cluster"; fi
done
