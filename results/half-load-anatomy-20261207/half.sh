#!/usr/bin/env bash
# The main job's half-load phase on its own (half.toml: default.toml's traffic, open loop at
# RATE, 175k/s by default, bursts of 16 per connection), each variant on a fresh local
# 3-replica cluster (1 shard, as the main job's on 2 cores). Per variant one line: the
# latency (from the due time), commands per slot (leader's INFO, preload included), the
# servers' CPU per op, the load generator's lateness and CPU, and the disk's requests
# (/proc/diskstats of DISK, the device holding the clusters' data unless set, 4 s in the
# middle of the run).
#   results/half-load-anatomy-20261207/half.sh [NAME[:CLUSTER FLAGS,...] ...]
# A variant is a name and, after a colon, `corepax cluster` flags separated by commas
# (`bd300:--batch-delay-us,300`). Variables per run: RATE, DISK, COREPAX_BIN;
# SLICE_US (EEVDF slice of every node thread, via sched_setattr), PIN (LEADER_CPUS:FOLLOWER_CPUS
# for the nodes' threads), LG_PREFIX (a command the load generator runs under, e.g. `nice -n -10`),
# INFO_DIR (a directory that keeps each node's INFO at the end of each variant).
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=results/half-load-anatomy-20261207
. scripts/lib.sh
require_tools redis-cli python3
resolve_bin
RATE=${RATE:-175000}
TMP=$(mktemp -d)
trap 'stop_cluster; rm -rf "$TMP"' EXIT
# As results/fifty-clients-anatomy-20261206/rate.sh finds it: the device of the data.
DISK=${DISK:-$(basename "$(df --output=source "$TMP" | tail -1)")}

diskstats() { awk -v d="$DISK" '$3 == d' /proc/diskstats; }

# disk_rates BEFORE AFTER SECS: requests per second and service times between two lines.
disk_rates() {
    python3 - "$3" "$1" "$2" <<'PY'
import sys
t = float(sys.argv[1])
a, b = ([int(x) for x in s.split()[3:]] for s in sys.argv[2:4])
d = [y - x for x, y in zip(a, b)]
# /proc/diskstats after the name: 4 writes, 7 ms writing, 9 ms busy, 10 weighted ms,
# 15 flushes, 16 ms flushing.
print(f"disk: writes/s {d[4]/t:.0f} ({d[7]/max(d[4],1)*1000:.0f} µs each), "
      f"flushes/s {d[15]/t:.0f} ({d[16]/max(d[15],1)*1000:.0f} µs each), busy {d[9]/t/10:.0f} %, "
      f"queue {d[10]/t/1000:.2f}")
PY
}

# set_slice US PID...: the EEVDF custom slice (sched_attr.sched_runtime) of every thread.
set_slice() {
    python3 - "$@" <<'PY'
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
us = int(sys.argv[1])
for pid in sys.argv[2:]:
    for tid in os.listdir(f"/proc/{pid}/task"):
        attr = struct.pack("IIQiIQQQII", 56, 0, 0, 0, 0, us * 1000, 0, 0, 0, 0)
        if libc.syscall(314, int(tid), ctypes.create_string_buffer(attr, 56), 0) != 0:
            sys.exit(f"sched_setattr {tid}: errno {ctypes.get_errno()}")
PY
}

run_variant() {
    local name=${1%%:*} flags="" i lg before after ports cps
    [ "$1" != "$name" ] && flags=${1#*:}
    SHARDS=1 CLUSTER_ARGS="${flags//,/ }" start_cluster "$TMP/$name" "$TMP/$name.log" >/dev/null 2>&1
    [ -n "${SLICE_US:-}" ] && set_slice "$SLICE_US" "${NODE_PIDS[@]}"
    if [ -n "${PIN:-}" ]; then
        for i in 0 1 2; do
            if [ "$i" = "$LEAD_NODE" ]; then
                taskset -a -pc "${PIN%%:*}" "${NODE_PIDS[$i]}" >/dev/null
            else
                taskset -a -pc "${PIN##*:}" "${NODE_PIDS[$i]}" >/dev/null
            fi
        done
    fi
    ports=127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))
    # shellcheck disable=SC2086 # LG_PREFIX is a command and its arguments
    ${LG_PREFIX:-} "$BIN" bench --target "$ports" --workload $HERE/half.toml --rate "$RATE" \
        --json "$TMP/$name.json" >"$TMP/$name.out" 2>&1 &
    lg=$!
    sleep 5
    before=$(diskstats)
    sleep 4
    after=$(diskstats)
    wait "$lg"
    cps=$(for i in 0 1 2; do redis-cli -p $((BASE + i)) info | tr -d '\r' | grep -E '^shard0_stats:'; done |
        python3 -c 'import re, sys
t = sys.stdin.read()
c = max(int(x) for x in re.findall(r"commands_proposed=(\d+)", t))
s = max(int(x) for x in re.findall(r"slots_proposed=(\d+)", t))
print(f"{c / max(s, 1):.0f}")')
    [ -n "${INFO_DIR:-}" ] && for i in 0 1 2; do redis-cli -p $((BASE + i)) info >"$INFO_DIR/$name-node$i.info"; done
    stop_cluster
    echo "== $name (${flags//,/ }${SLICE_US:+ slice ${SLICE_US} µs}${PIN:+ pinned $PIN}${LG_PREFIX:+ load generator under $LG_PREFIX})"
    grep -E '^all ' "$TMP/$name.out" | awk '{print "latency p50 " $4 ", p90 " $5 ", p99 " $6 ", p99.9 " $7}'
    echo "commands per slot $cps; $(grep -m1 'server CPU per op' "$TMP/$name.out")"
    grep -m1 "lateness" "$TMP/$name.out" | sed 's/^ *//'
    grep -m1 "load generator CPU per op" "$TMP/$name.out"
    disk_rates "$before" "$after" 4
}

for v in "${@:-default}"; do run_variant "$v"; done
