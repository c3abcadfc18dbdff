#!/bin/bash
# A/B of the main job: before (d7e70c2) and after, alternating, two rounds each.
set -u
out=/tmp/ab; mkdir -p $out
for round in 1 2; do
  for side in before after; do
    d=$(mktemp -d /tmp/ab-run-XXXX)
    (cd $d && /work/wt-$side/target/release/corepax bench --json $out/$side-$round.json > $out/$side-$round.txt 2>&1)
    echo "$side $round rc=$?"
    rm -rf $d
  done
done
