#!/usr/bin/env bash
# The main job (corepax bench, defaults), alternated A/B ROUNDS times; prints each run's all rows and server CPU.
cd /work/main
mkdir -p /tmp/main-ab-out
for r in $(seq ${ROUNDS:-3}); do for b in A B; do
  echo "== $b round $r"
  /tmp/$b/corepax bench --json /tmp/main-ab-out/run.json > /tmp/main-ab-out/run.log 2>&1
  grep -E "^all|server CPU per op" /tmp/main-ab-out/run.log
done; done
