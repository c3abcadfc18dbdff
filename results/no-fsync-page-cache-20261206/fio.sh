#!/usr/bin/env bash
# The disk under three replicas' WAL writes, without corepax: three fio jobs, each one 4 KiB
# write at a time at 8,000 writes/s (about a one-client run's rate per replica), to files of
# their own in DIR (default: a temp dir on the disk the WAL uses), 6 s each way:
# O_DIRECT (what `--no-fsync` wrote before), O_DIRECT + O_DSYNC (what the WAL writes with
# fsync on) and through the page cache (what `--no-fsync` writes now).
#   results/no-fsync-page-cache-20261206/fio.sh [DIR]
set -euo pipefail
DIR=${1:-$(mktemp -d -p "${TMPDIR:-/var/tmp}")}
for mode in "direct:--direct=1" "direct+dsync:--direct=1 --sync=dsync" "page-cache:--direct=0"; do
  name=${mode%%:*}; flags=${mode#*:}
  # shellcheck disable=SC2086
  fio --name=w --directory="$DIR" --size=64M --bs=4k --rw=write $flags --ioengine=io_uring \
      --iodepth=1 --numjobs=3 --rate_iops=8000 --runtime=6 --time_based --group_reporting \
      --output-format=json 2>/dev/null | python3 -c "
import json, sys
w = json.load(sys.stdin)['jobs'][0]['write']; c = w['clat_ns']['percentile']
print('%-13s %6d writes/s  p50 %6.1f  p90 %6.1f  p99 %6.1f  p99.9 %6.1f us' % ('$name', w['iops'],
      c['50.000000'] / 1e3, c['90.000000'] / 1e3, c['99.000000'] / 1e3, c['99.900000'] / 1e3))"
  rm -f "$DIR"/w.*
done
