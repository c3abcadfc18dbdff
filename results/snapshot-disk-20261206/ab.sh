#!/bin/bash
# ab.sh: the main job (`corepax bench`, default workload) alternated between builds, ROUNDS
# rounds: VARIANTS="A B" runs /tmp/A/corepax and /tmp/B/corepax (binaries named corepax).
# Per run: the half-load NOTE (p50 p99 p99.9), the INFO counters over the half-load run
# (snapshots written, executor stalls, WAL syncs >= 50 ms), and the closed loop's `all` row.
# Results go to /tmp/mj, not results/.
mkdir -p /tmp/mj
for r in $(seq "${ROUNDS:-3}"); do
  for v in ${VARIANTS:-A B}; do
    /tmp/$v/corepax bench --json "/tmp/mj/$v-$r.json" >"/tmp/mj/$v-$r.txt" 2>&1
    note=$(grep '^NOTE' "/tmp/mj/$v-$r.txt" | sed 's/.*open loop, [^)]*)//' | cut -d';' -f1)
    counters=$(python3 -c "
import json
c = json.load(open('/tmp/mj/$v-$r-half-load.json'))['target_info']['shard_counters']
print('snaps', c['snapshots_written'], 'stalls', c['executor_stalls'], 'slow', c['syncs_slow'])")
    closed=$(grep '^all' "/tmp/mj/$v-$r.txt" | head -1 | awk '{$1 = ""; print}')
    echo "$v $r: $note; $counters | closed:$closed"
  done
done
