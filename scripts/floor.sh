#!/usr/bin/env bash
# The node's floor and its CPU per operation, against Redis, in one run (issue: "the node at
# the machine's floor"). For each corepax binary (COREPAX_BIN, and COREPAX_BIN_BEFORE if set,
# for a before/after table) a local 3-replica cluster, 1 shard per node, fsync on,
# `--read-mode leader-lease`, and redis-server with appendonly + appendfsync always, each get:
#   one client:  redis-benchmark -c 1 -P 1 -n N1 -r 100000 -t set   (through the leader, then
#                through a follower, which forwards each write to the leader: label `…-via-follower`)
#   pipelined:   redis-benchmark -c 50 -P 16 -n N2 -r 100000 -t set, then -t get
#   50 clients, one request each in flight: -c 50 -P 1 -n N3 -r 100000 -t set
#   one client reading (the keys the pipelined SETs wrote): -c 1 -P 1 -n N1 -t get
#   the one-client SETs again with corepax's own load generator (`corepax bench`, the same
#   binary for every target, SECS1 s with no warm-up of its own, so that the CPU per
#   request counts the same requests; the cluster is warm by then), whose histogram resolves
#   microseconds where redis-benchmark's steps are 8 µs at these latencies: test
#   `SET -c 1 -P 1 (µs)` (it reports p90, not p95: `—` there)
# and each server process's CPU (user + system, /proc/PID/stat) over each pipelined run,
# divided by the requests of the run: µs per operation, for the leader and each follower.
# Beside them, the same one-client SETs against the floor of a replicated durable write on
# this machine (examples/replfloor.rs with 2 followers: three 4 KiB O_DSYNC writes to this
# disk per request, a quorum of two awaited, blocking calls and nothing else): label
# `floor-3-replicas`, and a table of corepax's and Redis's one-client SET against it; and the
# floor of a write sent to a follower (`replfloor … via`: a forwarder relays the client to the
# leader): label `floor-3-replicas-via`, against which corepax through a follower is set too;
# and the floor of many clients' writes (`replfloor … group`: every client served at once,
# one slot for all the commands of a round of reads, as Redis's one fsync per event-loop
# round) under the 50-client unpipelined SETs: label `floor-3-replicas-group`.
#
# Usage: scripts/floor.sh   (defaults below; all can be overridden)
#   SECS1=4              measured seconds of each `corepax bench` one-client run
#   N1=8000  N2=600000  N3=100000   requests of the one-client, the pipelined and the
#                        50-client unpipelined runs
#   ROUNDS=2             every target measured this many times, interleaved
#   COREPAX_BIN=target/release/corepax   COREPAX_BIN_BEFORE=   (a second binary to compare)
#   AFTER_CLUSTER_ARGS=  BEFORE_CLUSTER_ARGS=   more `corepax cluster` flags for either
#                        (e.g. the same binary twice, after with `--place-by-role`)
# Writes results/floor-<date>.md (tables, commands, machine) and results/floor-<date>-raw.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-8000}
N2=${N2:-600000}
N3=${N3:-100000}
SECS1=${SECS1:-4}
ROUNDS=${ROUNDS:-2}
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
require_tools redis-server redis-benchmark redis-cli python3 setsid timeout pgrep
resolve_bin
AFTER_BIN=$BIN
cargo build --release --quiet --example replfloor --example wakeprobe
FLOOR_BIN=$(readlink -f target/release/examples/replfloor)
WAKEPROBE_BIN=$(readlink -f target/release/examples/wakeprobe)
BEFORE_BIN=""
[ -z "${COREPAX_BIN_BEFORE:-}" ] || BEFORE_BIN=$(readlink -f "$COREPAX_BIN_BEFORE")

begin_run floor

# ticks "PIDS": each process's CPU ticks so far, in the order of PIDS.
ticks() {
    local p
    for p in $1; do printf '%s ' "$(cpu_ticks "$p")"; done
}

# cpu_columns "PIDS" "TICKS" N: each process's CPU µs per request since TICKS (what
# `ticks` said), over N requests, space-separated.
cpu_columns() {
    local -a pids before
    local i out=""
    read -r -a pids <<<"$1"
    read -r -a before <<<"$2"
    for i in "${!pids[@]}"; do
        out+="$(cpu_us_per_op "${before[$i]}" "$(cpu_ticks "${pids[$i]}")" "$3") "
    done
    printf '%s' "${out% }"
}

# add_row ROW: appends a row (label|test|rps|avg|p50|p95|p99|cpu µs/op per pid) to the
# table and to this round's.
add_row() {
    echo "$1" >>"$TMP/rows"
    echo "$ROUND|$1" >>"$TMP/rounds"
}

# bench LABEL PORT "PIDS" ARGS...: one redis-benchmark run, its row added (add_row).
bench() {
    local label=$1 port=$2 pids=$3 n line test rps avg p50 p95 p99 before
    shift 3
    before=$(ticks "$pids")
    line=$(timeout 300 redis-benchmark -p "$port" "$@" --csv 2>>"$OUT_RAW" | tail -1)
    echo "$label $* -> $line" >>"$OUT_RAW"
    n=$(printf '%s\n' "$@" | awk 'prev == "-n" {print} {prev = $0}')
    IFS=, read -r test rps avg _ p50 p95 p99 _ <<<"$(tr -d '"' <<<"$line")"
    add_row "$label|$test -c $(sed -n 's/.*-c \([0-9]*\).*/\1/p' <<<"$*") -P $(sed -n 's/.*-P \([0-9]*\).*/\1/p' <<<"$*")|$rps|$avg|$p50|$p95|$p99|$(cpu_columns "$pids" "$before" "$n")"
}

# bench_us LABEL PORT "PIDS": one client's SETs (3-byte values over 100,000 keys, as
# redis-benchmark's) with `corepax bench` (AFTER_BIN: the same client for every target);
# appends a row like bench's, test `SET -c 1 -P 1 (µs)`, its latencies from the load
# generator's histogram (microseconds, shown in ms), p95 `—` (it reports p90).
bench_us() {
    local label=$1 port=$2 pids=$3 n row before
    before=$(ticks "$pids")
    "$AFTER_BIN" bench --target "127.0.0.1:$port" --workload "$TMP/one-set.toml" \
        --half-load 0 --duration "$SECS1" --json "$TMP/us.json" >>"$OUT_RAW" 2>&1
    n=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ops"]["set"]["count"])' "$TMP/us.json")
    row=$(python3 - "$TMP/us.json" "$label" "$(cpu_columns "$pids" "$before" "$n")" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["ops"]["set"]
ms = lambda us: f"{us / 1000:.3f}"
print(f"{sys.argv[2]}|SET -c 1 -P 1 (µs)|{s['throughput_per_s']:.2f}|{ms(s['mean_us'])}|"
      f"{ms(s['p50_us'])}|—|{ms(s['p99_us'])}|{sys.argv[3]}")
PY
    )
    echo "$label corepax bench one-client SET -> $row" >>"$OUT_RAW"
    add_row "$row"
}

# The issue's targets, each row's ratio to Redis's row of the same round and test
# ("after" rows; a BEFORE binary's rows are in the table above): a table a reader takes
# in at a glance. Reads $TMP/rounds (round|label|test|rps|avg|p50|p95|p99|cpu…).
targets() {
    python3 - "$TMP/rounds" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    r, label, test, rps, avg, p50, p95, p99, cpu = line.rstrip("\n").split("|")
    rows[(int(r), label, test)] = dict(rps=float(rps), p50=float(p50), p99=float(p99),
                                       cpu=[float(c) for c in cpu.split()])
rounds = sorted({k[0] for k in rows})
# (what, label, test, field, goal, "<=" or ">=")
targets = [
    ("one-client SET p50", "after", "SET -c 1 -P 1", "p50", 1.5, "<="),
    ("one-client SET p99", "after", "SET -c 1 -P 1", "p99", 2.0, "<="),
    ("one-client SET p50 (µs)", "after", "SET -c 1 -P 1 (µs)", "p50", 1.5, "<="),
    ("one-client SET p99 (µs)", "after", "SET -c 1 -P 1 (µs)", "p99", 2.0, "<="),
    ("through a follower, SET p50", "after-via-follower", "SET -c 1 -P 1", "p50", 2.0, "<="),
    ("through a follower, SET p99", "after-via-follower", "SET -c 1 -P 1", "p99", 2.0, "<="),
    ("through a follower, SET p50 (µs)", "after-via-follower", "SET -c 1 -P 1 (µs)", "p50", 2.0, "<="),
    ("through a follower, SET p99 (µs)", "after-via-follower", "SET -c 1 -P 1 (µs)", "p99", 2.0, "<="),
    ("one-client GET p50 (lease)", "after", "GET -c 1 -P 1", "p50", 1.2, "<="),
    ("leader CPU per SET, -P 16", "after", "SET -c 50 -P 16", "cpu0", 1.5, "<="),
    ("each follower's CPU per SET", "after", "SET -c 50 -P 16", "cpuf", 0.5, "<="),
    ("leader CPU per lease GET", "after", "GET -c 50 -P 16", "cpu0", 1.0, "<="),
    ("SET throughput, -P 16", "after", "SET -c 50 -P 16", "rps", 1.0, ">="),
    ("SET throughput, -P 1", "after", "SET -c 50 -P 1", "rps", 1.0, ">="),
    ("GET throughput, -P 16", "after", "GET -c 50 -P 16", "rps", 1.0, ">="),
]
def value(row, field):
    if field == "cpu0":
        return row["cpu"][0]
    if field == "cpuf":
        return max(row["cpu"][1:]) if len(row["cpu"]) > 1 else None
    return row[field]
print("| target (ratio to Redis in the same round) | goal | " + " | ".join(f"round {r}" for r in rounds) + " | met in |")
print("| --- | --- | " + " | ".join("---:" for _ in rounds) + " | --- |")
for what, label, test, field, goal, op in targets:
    cells, met = [], 0
    for r in rounds:
        ours, redis = rows.get((r, label, test)), rows.get((r, "redis-always", test))
        if ours is None or redis is None:
            cells.append("—")
            continue
        a = value(ours, field)
        b = value(redis, "cpu0" if field.startswith("cpu") else field)
        if a is None or not b:
            cells.append("—")
            continue
        ratio = a / b
        met += (ratio <= goal) if op == "<=" else (ratio >= goal)
        cells.append(f"{ratio:.2f}×")
    sign = "≤" if op == "<=" else "≥"
    print(f"| {what} | {sign} {goal}× | " + " | ".join(cells) + f" | {met} of {len(rounds)} |")
if any(k[1] == "floor-3-replicas" for k in rows):
    print()
    print("One client's SET against the floor of three replicas' durable writes on this machine")
    print("(`floor-3-replicas`, examples/replfloor.rs), same round; `(µs)`: measured with")
    print("`corepax bench`:")
    print()
    print("| ratio to the floor | " + " | ".join(f"round {r}" for r in rounds) + " |")
    print("| --- | " + " | ".join("---:" for _ in rounds) + " |")
    for test, unit in [("SET -c 1 -P 1", ""), ("SET -c 1 -P 1 (µs)", " (µs)")]:
        for label, name, against in [
                ("after", "corepax", "floor-3-replicas"),
                ("after-via-follower", "corepax via a follower", "floor-3-replicas"),
                ("after-via-follower", "corepax via a follower, against the forwarded floor",
                 "floor-3-replicas-via"),
                ("redis-always", "Redis (one durable write)", "floor-3-replicas")]:
            for field in ("p50", "p99"):
                cells = []
                for r in rounds:
                    ours, floor = rows.get((r, label, test)), rows.get((r, against, test))
                    cells.append(f"{ours[field] / floor[field]:.2f}×" if ours and floor and floor[field] else "—")
                print(f"| {name} {field}{unit} | " + " | ".join(cells) + " |")
if any(k[1] == "floor-3-replicas-group" for k in rows):
    print()
    print("50 one-request clients' SETs/s against the floor of three replicas serving every")
    print("client at once (`floor-3-replicas-group`: `replfloor … group`), same round:")
    print()
    print("| ratio to the group floor | " + " | ".join(f"round {r}" for r in rounds) + " |")
    print("| --- | " + " | ".join("---:" for _ in rounds) + " |")
    for label, name in [("before", "corepax before"), ("after", "corepax"),
                        ("redis-always", "Redis (one durable write)")]:
        cells = []
        for r in rounds:
            ours = rows.get((r, label, "SET -c 50 -P 1"))
            floor = rows.get((r, "floor-3-replicas-group", "SET -c 50 -P 1"))
            cells.append(f"{ours['rps'] / floor['rps']:.2f}×" if ours and floor else "—")
        if any(c != "—" for c in cells):
            print(f"| {name} | " + " | ".join(cells) + " |")
PY
}

run_corepax() {
    local label=$1 bin=$2 i followers extra=${AFTER_CLUSTER_ARGS:-}
    [ "$label" = after ] || extra=${BEFORE_CLUSTER_ARGS:-}
    BIN=$bin
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease${extra:+ $extra}" start_cluster "$TMP/data-$label-$RANDOM" "$TMP/cluster.log"
    followers=""
    for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || followers+=" ${NODE_PIDS[$i]}"; done
    local pids="${NODE_PIDS[$LEAD_NODE]}$followers"
    local follower_port
    for i in 0 1 2; do
        [ "$i" = "$LEAD_NODE" ] || { follower_port=$((BASE + i)); break; }
    done
    bench "$label" "$LEAD_PORT" "$pids" -c 1 -P 1 -n "$N1" -r 100000 -t set
    bench "$label-via-follower" "$follower_port" "$pids" -c 1 -P 1 -n "$N1" -r 100000 -t set
    bench_us "$label" "$LEAD_PORT" "$pids"
    bench_us "$label-via-follower" "$follower_port" "$pids"
    bench "$label" "$LEAD_PORT" "$pids" -c 50 -P 16 -n "$N2" -r 100000 -t set
    bench "$label" "$LEAD_PORT" "$pids" -c 50 -P 16 -n "$N2" -r 100000 -t get
    bench "$label" "$LEAD_PORT" "$pids" -c 50 -P 1 -n "$N3" -r 100000 -t set
    bench "$label" "$LEAD_PORT" "$pids" -c 1 -P 1 -n "$N1" -r 100000 -t get
    stop_cluster
    CLUSTER_PID=""
}

# The floor: one-client SETs against replfloor with 2 followers (see the top), then with
# the client at a forwarder (`via`), as a client at a follower is; then 50 one-request
# clients against it serving every client at once (`group`, as Redis does).
run_floor() {
    local port mode label
    for mode in "" via group; do
        label=floor-3-replicas${mode:+-$mode}
        port=$(free_port)
        mkdir -p "$TMP/floor"
        # shellcheck disable=SC2086 # no mode: no argument
        "$FLOOR_BIN" "$port" 2 "$TMP/floor" $mode >>"$OUT_RAW" 2>&1 &
        REDIS_PID=$! # stopped by the exit trap if the run ends here
        wait_ping "$port" 10 || { echo "replfloor did not start" >&2; exit 1; }
        if [ "$mode" = group ]; then
            bench "$label" "$port" "$REDIS_PID" -c 50 -P 1 -n "$N3" -r 100000 -t set
        else
            bench "$label" "$port" "$REDIS_PID" -c 1 -P 1 -n "$N1" -r 100000 -t set
            bench_us "$label" "$port" "$REDIS_PID"
        fi
        stop_pids "$REDIS_PID"
        REDIS_PID=""
        rm -rf "$TMP/floor"
    done
}

run_redis() {
    local port
    start_redis_always "$TMP/redis" "$OUT_RAW"
    port=$REDIS_PORT
    bench "redis-always" "$port" "$REDIS_PID" -c 1 -P 1 -n "$N1" -r 100000 -t set
    bench_us "redis-always" "$port" "$REDIS_PID"
    bench "redis-always" "$port" "$REDIS_PID" -c 50 -P 16 -n "$N2" -r 100000 -t set
    bench "redis-always" "$port" "$REDIS_PID" -c 50 -P 16 -n "$N2" -r 100000 -t get
    bench "redis-always" "$port" "$REDIS_PID" -c 50 -P 1 -n "$N3" -r 100000 -t set
    bench "redis-always" "$port" "$REDIS_PID" -c 1 -P 1 -n "$N1" -r 100000 -t get
    stop_pids "$REDIS_PID"
    REDIS_PID=""
    rm -rf "$TMP/redis"
}

: >"$TMP/rows"
: >"$TMP/rounds"
cat >"$TMP/one-set.toml" <<TOML
name = "one-set"
description = "closed loop, 1 connection x 1 request, SETs of 3 B values over 100,000 keys"
record_count = 100000
preload = false
connections = 1
pipeline = 1
duration_s = $SECS1
warmup_s = 0
[keys]
distribution = "uniform"
[value]
distribution = "fixed"
size_bytes = 3
[mix]
get = 0.0
set = 1.0
[load]
mode = "closed"
TOML
for ROUND in $(seq "$ROUNDS"); do
    echo "round $ROUND" >&2
    [ -z "$BEFORE_BIN" ] || run_corepax before "$BEFORE_BIN"
    run_corepax after "$AFTER_BIN"
    run_redis
    run_floor
done

{
    echo "# corepax floor and CPU per operation against Redis — $STAMP"
    echo
    echo "3 replicas on this machine, 1 shard each, fsync on, \`--read-mode leader-lease\`,"
    echo "requests through the leader (\`…-via-follower\`: one client at a follower); redis-server with \`appendonly yes\`, \`appendfsync always\`."
    echo "Latencies in ms (redis-benchmark); CPU in µs of user + system time per request, per"
    echo "server process (corepax: leader, then each follower). $ROUNDS rounds, interleaved."
    echo
    echo "| target | test | req/s | avg | p50 | p95 | p99 | CPU µs/op (leader followers) |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"
    sort -t'|' -k2,2 -k1,1 -s "$TMP/rows" | awk -F'|' '{
        row = "|"; for (i = 1; i <= NF; i++) row = row " " $i " |"; print row }'
    echo
    echo "## Against the targets"
    echo
    echo "Each \"after\" row divided by Redis's row of the same round and test (for"
    echo "followers, the busier follower), and the rounds in which it meets the goal."
    echo
    targets
    echo
    echo "## Setup"
    echo
    echo "- after: \`$AFTER_BIN\` (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
    [ -z "$BEFORE_BIN" ] || echo "- before: \`$BEFORE_BIN\`"
    echo "- cluster: \`corepax cluster --replicas 3 --shards 1 --read-mode leader-lease\` (free ports)${AFTER_CLUSTER_ARGS:+; after with \`$AFTER_CLUSTER_ARGS\`}${BEFORE_CLUSTER_ARGS:+; before with \`$BEFORE_CLUSTER_ARGS\`}"
    echo "- $(redis-server --version)"
    echo "- floor: \`replfloor PORT 2 DIR\` (examples/replfloor.rs: a leader and 2 followers, threads of one process); \`floor-3-replicas-via\`: \`replfloor PORT 2 DIR via\` (the client's bytes relayed to the leader and back by a forwarder thread); \`floor-3-replicas-group\`: \`replfloor PORT 2 DIR group\` (every client served at once, one slot per round of reads), driven as the 50-client runs"
    echo "- commands: \`redis-benchmark -c 1 -P 1 -n $N1 -r 100000 -t set\` (then \`-t get\` after the pipelined runs), \`-c 50 -P 16 -n $N2 -r 100000 -t set|get\`, \`-c 50 -P 1 -n $N3 -r 100000 -t set\`"
    echo "- \`(µs)\` rows: \`$AFTER_BIN bench --target 127.0.0.1:PORT --workload one-set.toml --half-load 0 --duration $SECS1\` (1 connection, 1 request at a time, SETs of 3 B values over 100,000 keys, no warm-up)"
    echo
    echo "## Machine"
    echo
    echo "- nproc: $(nproc); CPU: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); kernel $(uname -r)"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $("$WAKEPROBE_BIN") (examples/wakeprobe.rs; every hop of a write is such a wake-up)"
} >"$OUT_MD"
cat "$OUT_MD"
echo "wrote $OUT_MD and $OUT_RAW" >&2
