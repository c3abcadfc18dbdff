#!/usr/bin/env bash
# clkcount.sh: clock readings (libc clock_gettime calls, counted by a uprobe with
# `perf stat`) per request in each node of a local 3-replica cluster (COREPAX_BIN, 1 shard,
# READ_MODE, default log) over N pipelined commands (T, default set; `-c 50 -P 16`)
# through a follower, after a warm-up of 100,000. Needs root (uprobes). The probe traps on
# every call, so the run's throughput says nothing.
#   COREPAX_BIN=/tmp/A/corepax results/clock-readings-20261205/clkcount.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
resolve_bin
LIBC=$(ldd "$BIN" | awk '/libc.so/ {print $3}')
perf probe -l 2>/dev/null | grep -q probe_libc:clock_gettime ||
  perf probe -x "$LIBC" --add clock_gettime >/dev/null 2>&1
start_scratch_cluster --read-mode "${READ_MODE:-log}"
N=${N:-300000}
port=$((BASE + (LEAD_NODE + 1) % 3))
redis-benchmark -p "$port" -c 50 -P 16 -n 100000 -r 100000 -t "${T:-set}" -q >/dev/null
stats=()
for i in 0 1 2; do
  perf stat -e probe_libc:clock_gettime -p "${NODE_PIDS[$i]}" -o "$TMP/s$i.txt" &
  stats+=($!)
done
sleep 0.5
redis-benchmark -p "$port" -c 50 -P 16 -n "$N" -r 100000 -t "${T:-set}" -q >/dev/null
sleep 0.2
kill -INT "${stats[@]}"
wait "${stats[@]}" 2>/dev/null || true
for i in 0 1 2; do
  c=$(awk '/probe_libc/ {gsub(",", "", $1); print $1}' "$TMP/s$i.txt")
  role=follower
  [ "$i" = "$LEAD_NODE" ] && role=leader
  [ $((BASE + i)) = "$port" ] && role="$role, the clients'"
  echo "node $i ($role): $c readings, $(python3 -c "print(round($c / $N, 3))") per request"
done
