#!/usr/bin/env bash
# 50 one-request clients (redis-benchmark -c 50 -P 1 SETs, N of them, default 300000;
# C=1 for one client) against one server, and where the machine's time went meanwhile:
#   results/follower-cpu-20261207/rate.sh corepax BIN [NODE FLAGS...]
#   results/follower-cpu-20261207/rate.sh floor    (examples/replfloor, group)
#   results/follower-cpu-20261207/rate.sh redis    (appendfsync always)
# (results/fifty-clients-anatomy-20261206/rate.sh, plus each thread's context switches.)
# Prints redis-benchmark's CSV line; the disk's write and flush requests per SET, their
# average service time and the share of the run the disk had a request in flight
# (/proc/diskstats, the device of /tmp); the machine's busy
# share (/proc/stat); each thread's CPU per SET (user + system, /proc/PID/task/TID/stat,
# the threads that used the most) and context switches per SET (voluntary + involuntary,
# /proc/PID/task/TID/status); for corepax, the leader's INFO latency fields.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
KIND=$1
N=${N:-300000}
C=${C:-50}
TMP=$(mktemp -d)
SERVER_PID=""
trap 'stop_cluster; [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null; rm -rf "$TMP"' EXIT
DEV=$(basename "$(df --output=source /tmp | tail -1)")

disk() { awk -v d="$DEV" '$3==d {print $8, $10, $11, $19, $20, $13}' /proc/diskstats; }
machine() { awk '/^cpu / {print $2+$3, $4, $5, $6, $7+$8}' /proc/stat; }
threads() {
    local t
    for t in /proc/[0-9]*/task/[0-9]*; do
        { cat "$t/stat"; grep -h ctxt_switches "$t/status"; } 2>/dev/null | tr '\n' ' ' || true
        echo
    done | python3 -c '
import sys
for l in sys.stdin:
    if ")" not in l:
        continue
    head, tail = l.rsplit(")", 1)
    f = tail.split()
    cs = sum(int(f[i + 1]) for i, x in enumerate(f) if x.endswith("ctxt_switches:"))
    print(l.split()[0], head.split("(", 1)[1].replace(" ", "_"), int(f[11]) + int(f[12]), cs)'
}

case $KIND in
corepax)
    COREPAX_BIN=$2
    resolve_bin
    shift 2
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease $*" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
    PORT=$LEAD_PORT
    ;;
floor)
    cargo build --release --quiet --example replfloor
    PORT=$(free_port)
    mkdir -p "$TMP/floor"
    target/release/examples/replfloor "$PORT" 2 "$TMP/floor" group >/dev/null 2>&1 &
    SERVER_PID=$!
    wait_ping "$PORT" 10
    ;;
redis)
    PORT=$(free_port)
    mkdir -p "$TMP/redis"
    redis-server --port "$PORT" --dir "$TMP/redis" --appendonly yes --appendfsync always \
        --save "" >/dev/null 2>&1 &
    SERVER_PID=$!
    wait_ping "$PORT" 10
    ;;
*) echo "usage: rate.sh corepax BIN [FLAGS...] | floor | redis" >&2; exit 2 ;;
esac
redis-benchmark -p "$PORT" -c 50 -P 1 -n 50000 -r 100000 -t set -q >/dev/null 2>&1
threads >"$TMP/t0"; m0=$(machine); d0=$(disk); t0=$(date +%s%N)
redis-benchmark -p "$PORT" -c "$C" -P 1 -n "$N" -r 100000 -t set --csv 2>/dev/null | tail -1
t1=$(date +%s%N); d1=$(disk); m1=$(machine); threads >"$TMP/t1"
[ "$KIND" != corepax ] || redis-cli -p "$PORT" info all >"$TMP/info"
python3 - "$N" "$d0" "$d1" "$m0" "$m1" "$TMP/t0" "$TMP/t1" "$t0" "$t1" <<'PYEOF'
import sys
n = int(sys.argv[1])
wall = (int(sys.argv[9]) - int(sys.argv[8])) / 1e9
d = [b - a for a, b in zip(map(int, sys.argv[2].split()), map(int, sys.argv[3].split()))]
m = [b - a for a, b in zip(map(int, sys.argv[4].split()), map(int, sys.argv[5].split()))]
writes, sectors, write_ms, flushes, flush_ms, busy_ms = d
print(f"disk: {writes / n:.3f} writes and {flushes / n:.3f} flushes per SET, "
      f"{sectors * 512 / 1024 / max(writes, 1):.1f} KiB per write, "
      f"service {write_ms * 1e3 / max(writes, 1):.0f} / {flush_ms * 1e3 / max(flushes, 1):.0f} µs, "
      f"busy (a request in flight) {100 * busy_ms * 1e-3 / wall:.0f} % of the run")
user, system, idle, iowait, irq = m
total = sum(m)
print(f"machine: busy {100 * (user + system + irq) / total:.0f} % (user {100 * user / total:.0f}, "
      f"system {100 * system / total:.0f}, irq {100 * irq / total:.0f}), idle {100 * idle / total:.0f} %, "
      f"iowait {100 * iowait / total:.0f} %")
def load(path):
    return {tid: (name, int(t), int(cs)) for tid, name, t, cs in (l.split() for l in open(path))}
a, b = load(sys.argv[6]), load(sys.argv[7])
rows = sorted(((t - a.get(tid, (name, 0, 0))[1], cs - a.get(tid, (name, 0, 0))[2], tid, name)
               for tid, (name, t, cs) in b.items()), reverse=True)
print("threads, CPU µs per SET: " + ", ".join(
    f"{name} {10000 * t / n:.2f}" for t, cs, tid, name in rows[:8] if t > 0 and name != "redis-benchmark"))
print("threads, context switches per SET: " + ", ".join(
    f"{name} {cs / n:.3f}" for t, cs, tid, name in rows[:8] if t > 0 and name != "redis-benchmark"))
PYEOF
if [ "$KIND" = corepax ]; then
    grep -o "answered_local_avg_us=[0-9]*\|commands=[0-9]*\|slots_proposed=[0-9]*\|queue_wait_avg_us=[0-9]*\|propose_to_chosen_avg_us=[0-9]*\|sync_avg_us=[0-9]*\|slots_lazy=[0-9]*\|lazy_syncs_forced=[0-9]*\|[^_]syncs=[0-9]*" "$TMP/info" | tr '\n' ' '
    echo
fi
