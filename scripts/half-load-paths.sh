#!/usr/bin/env bash
# Where the main job's half-load latency goes, by the path requests take. On one local
# 3-replica cluster (the defaults `corepax bench` starts, fsync on): a short closed loop of
# workloads/default.toml measures the capacity (and preloads the keys), then its half-load
# run (open loop at half that rate, `pipeline` requests per arrival on one connection, as
# `corepax bench` runs it) three ways, interleaved ROUNDS times:
#   spread     connections round-robin over the three nodes (as the main job)
#   leader     every connection at the leader
#   follower   every connection at one follower (each request forwarded to the leader)
# For each run: the latency percentiles, the load generator's own lateness apart, and per
# node from INFO (before/after): its syncs and their average, requests answered and their
# average time (its own clients' or forwarded), and CPU per request (/proc).
#
# Usage: scripts/half-load-paths.sh       (defaults below; all can be overridden)
#   ROUNDS=2          every path measured this many times, interleaved
#   SECS=8            measured seconds of each half-load run (after 1 s of warm-up)
#   CAPACITY_SECS=8   measured seconds of the closed loop that sets the rate
#   RATE=             requests/s of the open loop (default: half the closed loop's)
#   COREPAX_BIN=target/release/corepax   CLUSTER_ARGS=   SHARDS=  (as scripts/floor.sh)
# Writes results/half-load-paths-<date>.md and results/half-load-paths-<date>-raw.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
SECS=${SECS:-8}
CAPACITY_SECS=${CAPACITY_SECS:-8}
RATE=${RATE:-}
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
require_tools redis-cli python3 setsid pgrep
resolve_bin
begin_run half-load-paths

start_cluster "$TMP/data" "$TMP/cluster.log"
ADDRS="127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))"
FOLLOWER_NODE=$(((LEAD_NODE + 1) % 3))
echo "leader: node $LEAD_NODE; follower measured: node $FOLLOWER_NODE" >&2

# The closed loop: capacity, and the keys the open loops read.
"$BIN" bench --target "$ADDRS" --duration "$CAPACITY_SECS" --warmup 1 --half-load 0 \
    --json "$TMP/capacity.json" --quiet >"$TMP/capacity.out" 2>&1
CAPACITY=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["total"]["throughput_per_s"]))' "$TMP/capacity.json")
[ -n "$RATE" ] || RATE=$((CAPACITY / 2))
PIPELINE=$(sed -n 's/^pipeline *= *//p' workloads/default.toml)
# workloads/default.toml as an open loop at RATE, `pipeline` requests per arrival.
sed -e "s/^mode = \"closed\".*/mode = \"open\"\nrate_per_s = $RATE\narrival = \"poisson\"\nburst = $PIPELINE/" \
    -e 's/^name = .*/name = "half-load"/' workloads/default.toml >"$TMP/half.toml"
{
    echo "# closed loop: $CAPACITY ops/s; open loop at $RATE/s"
    cat "$TMP/capacity.out"
} >>"$OUT_RAW"

info_all() { # $1 = file prefix
    local i
    for i in 0 1 2; do redis-cli -p $((BASE + i)) info >"$1.$i" 2>/dev/null || true; done
}

run_path() { # $1 = path name, $2 = target addresses
    local name=$1 target=$2 i
    local -a before=()
    info_all "$TMP/before"
    for i in 0 1 2; do before+=("$(cpu_ticks "${NODE_PIDS[$i]}")"); done
    "$BIN" bench --workload "$TMP/half.toml" --target "$target" --duration "$SECS" --warmup 1 \
        --no-preload --half-load 0 --json "$TMP/$name.json" --quiet >"$TMP/$name.out" 2>&1
    info_all "$TMP/after"
    local cpus="" ops
    ops=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"]["count"])' "$TMP/$name.json")
    for i in 0 1 2; do
        cpus+="$(cpu_us_per_op "${before[i]}" "$(cpu_ticks "${NODE_PIDS[$i]}")" "$ops") "
    done
    { echo "## $name ($target)"; cat "$TMP/$name.out"; } >>"$OUT_RAW"
    python3 - "$name" "$TMP" "$LEAD_NODE" "$cpus" <<'EOF' >>"$TMP/rows"
import json, sys
name, tmp, lead, cpus = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split()
r = json.load(open(f"{tmp}/{name}.json"))
t, ol = r["total"], r.get("open_loop") or {}
ms = lambda us: f"{us / 1000:.2f}"
lat = " / ".join(ms(t[k]) for k in ("p50_us", "p90_us", "p99_us", "p999_us"))
late = ol.get("send_lag_us") or []
late = " / ".join(ms(x) for x in late[:2]) if late else "-"
# Every shard's `shard<i>_latency` and `_stats` counters (a counter both lines give, such
# as `syncs`, once per shard), summed over the node's shards; an `…_avg_us` field as its
# total (average × count) under the name `…_total_us`.
AVGS = {"sync_avg_us": "syncs", "answered_local_avg_us": "answered_local",
        "answered_forwarded_avg_us": "answered_forwarded"}
def info(f):
    shards = {}
    for line in open(f):
        head, _, rest = line.strip().partition(":")
        shard, _, section = head.partition("_")
        if shard.startswith("shard") and section in ("latency", "stats"):
            fields = shards.setdefault(shard, {})
            fields.update(kv.partition("=")[::2] for kv in rest.split(","))
    d = {}
    for fields in shards.values():
        for k, v in fields.items():
            try:
                v = float(v)
            except ValueError:
                continue
            if k in AVGS:
                k, v = k.replace("_avg_us", "_total_us"), v * float(fields[AVGS[k]])
            d[k] = d.get(k, 0) + v
    return d
nodes = []
for i in range(3):
    b, a = info(f"{tmp}/before.{i}"), info(f"{tmp}/after.{i}")
    delta = lambda k: a.get(k, 0) - b.get(k, 0)
    syncs = delta("syncs")
    answered = delta("answered_local") + delta("answered_forwarded")
    took = delta("answered_local_total_us") + delta("answered_forwarded_total_us")
    sync_us = delta("sync_total_us") / syncs if syncs > 0 else 0
    role = "L" if i == lead else "F"
    nodes.append(f"{i}{role}: {int(syncs)} syncs of {sync_us:.0f} µs, "
                 f"{int(answered)} answered in {took / answered if answered else 0:.0f} µs, {cpus[i]} µs CPU")
print(f"| {name} | {t['throughput_per_s']:.0f} | {lat} | {late} | {'<br>'.join(nodes)} |")
EOF
}

for r in $(seq "$ROUNDS"); do
    echo "round $r" >&2
    run_path spread "$ADDRS"
    run_path leader "127.0.0.1:$LEAD_PORT"
    run_path follower "127.0.0.1:$((BASE + FOLLOWER_NODE))"
done

{
    echo "# The main job's half load, by path — $STAMP"
    echo
    echo "One local 3-replica cluster (\`$CLUSTER_CMD\`), leader node $LEAD_NODE. A closed loop of"
    echo "workloads/default.toml measured $CAPACITY ops/s; each row is its half-load run"
    echo "(open loop at $RATE requests/s, $PIPELINE per arrival on one of its connections, ${SECS} s"
    echo "measured) with the connections at every node (\`spread\`, as the main job), at the leader,"
    echo "or at follower node $FOLLOWER_NODE. Latency in ms from each request's due time (p50 / p90 /"
    echo "p99 / p99.9); the load generator's lateness in sending (due to send, p50 / p99) is in it."
    echo "Per node (L leader, F follower), from INFO over the run: WAL syncs and their average,"
    echo "requests it answered (its own clients', forwarded ones included) and their average time"
    echo "in the node, and its CPU per request of the run (user + system, /proc)."
    echo
    echo "| path | req/s | latency p50 / p90 / p99 / p99.9 | lateness p50 / p99 | nodes |"
    echo "| --- | ---: | --- | --- | --- |"
    cat "$TMP/rows"
    echo
    echo "## Machine"
    echo
    echo "- nproc: $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); kernel $(uname -r)"
    echo "- corepax $(git rev-parse --short HEAD 2>/dev/null || echo unknown) ($BIN)"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT_MD"
echo "wrote $OUT_MD and $OUT_RAW"
