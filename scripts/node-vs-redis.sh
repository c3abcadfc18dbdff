#!/usr/bin/env bash
# corepax node against Redis, side by side in one run on this machine (DESIGN.md §5):
# redis-benchmark `-t set` then `-t get`, `-c 50 -P 16|1 -n N` and one client (`-c 1 -P 1
# -n ONE_CLIENT_N`), against
#   (a) a local 3-replica corepax cluster (fsync on, default protocol settings),
#   (b) redis-server with appendonly yes + appendfsync always (the durable peer),
#   (c) redis-server without persistence (the speed ceiling).
# For each setting the three targets run back to back, so load from other processes on this
# shared machine hits all three alike and the ratios stay meaningful. Each run also gives
# each target's CPU per request (user + system from /proc, µs): for corepax, the node
# benchmarked and the three replicas together.
#
# Usage: scripts/node-vs-redis.sh            (defaults below; all can be overridden)
#   N=200000            requests per redis-benchmark run (-n)
#   RANGE=100000        keyspace of the random-key variant (-r); RANGE=0 skips that variant
#   CLIENTS=50          connections (-c)
#   PIPELINES="16 1"    pipeline depths (-P) to run
#   ONE_CLIENT_N=10000  requests of the one-client runs (-c 1 -P 1); 0 skips them
#   BENCH_TIMEOUT_S=300 bound on one redis-benchmark run
#   COREPAX_BIN=target/release/corepax  (built with `cargo build --release` if missing)
#   SHARDS=             shards per node (default: the cluster's, cores / 3, at least 1);
#                       e.g. SHARDS=2 puts the inter-shard mesh in the path
#   KEEP_TMP=1          keep the temp dir (node data, logs) for inspection
# Writes results/node-vs-redis-<date>.md (table, commands, machine) and
# results/node-vs-redis-<date>-raw.txt (every redis-benchmark CSV line, cluster log tail).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
RANGE=${RANGE:-100000}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-"16 1"}
ONE_CLIENT_N=${ONE_CLIENT_N:-10000}
BENCH_TIMEOUT_S=${BENCH_TIMEOUT_S:-300}
READY_TIMEOUT_S=60
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
require_tools redis-server redis-benchmark redis-cli python3 setsid timeout pgrep
resolve_bin

STAMP=$(date -u +%Y%m%d-%H%M%S)
mkdir -p results
OUT_MD="results/node-vs-redis-$STAMP.md"
OUT_RAW="results/node-vs-redis-$STAMP-raw.txt"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/corepax-vs-redis.XXXXXX")
REDIS_PIDS=()

cleanup() {
    local rc=$?
    stop_cluster
    stop_pids "${REDIS_PIDS[@]}"
    remove_tmp
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_cluster "$TMP/corepax" "$TMP/cluster.log"

# Benchmark through the node that leads the most shards: requests for shards it leads are
# not forwarded. Record which shards it leads, the others pay a forwarding hop.
COREPAX_PORT=$LEAD_PORT
COREPAX_SETTINGS=$(redis-cli -p "$COREPAX_PORT" info | tr -d '\r' |
    grep -E '^(shards|replicas|fsync|read_mode|batch_max|pipeline_depth):' | paste -sd' ')

RA_PORT=$(free_port)
mkdir -p "$TMP/redis-always" "$TMP/redis-none"
RA_CMD="redis-server --port $RA_PORT --bind 127.0.0.1 --dir $TMP/redis-always --appendonly yes --appendfsync always --save ''"
redis-server --port "$RA_PORT" --bind 127.0.0.1 --dir "$TMP/redis-always" \
    --appendonly yes --appendfsync always --save '' >"$TMP/redis-always.log" 2>&1 &
REDIS_PIDS+=($!)
RN_PORT=$(free_port)
RN_CMD="redis-server --port $RN_PORT --bind 127.0.0.1 --dir $TMP/redis-none --appendonly no --save ''"
redis-server --port "$RN_PORT" --bind 127.0.0.1 --dir "$TMP/redis-none" \
    --appendonly no --save '' >"$TMP/redis-none.log" 2>&1 &
REDIS_PIDS+=($!)
wait_ping "$RA_PORT" 20 || { cat "$TMP/redis-always.log" >&2; exit 1; }
wait_ping "$RN_PORT" 20 || { cat "$TMP/redis-none.log" >&2; exit 1; }

UPTIME_BEFORE=$(uptime)
declare -A RPS P50 CPU
COMMANDS=()
VARIANTS=("single")
[ "$RANGE" -gt 0 ] && VARIANTS+=("random")
# Settings as clients:pipeline:requests.
SETTINGS=()
for P in $PIPELINES; do SETTINGS+=("$CLIENTS:$P:$N"); done
[ "$ONE_CLIENT_N" -gt 0 ] && SETTINGS+=("1:1:$ONE_CLIENT_N")
LEAD_PID=${NODE_PIDS[$LEAD_NODE]}
: >"$OUT_RAW"
for setting in "${SETTINGS[@]}"; do
    IFS=: read -r C P NREQ <<<"$setting"
    for variant in "${VARIANTS[@]}"; do
        rflag=""
        [ "$variant" = random ] && rflag="-r $RANGE"
        for target in corepax redis-always redis-none; do
            # CPU is read for the node benchmarked and for every process of the target
            # (the same one for Redis).
            case $target in
                corepax) port=$COREPAX_PORT node_pid=$LEAD_PID ;;
                redis-always) port=$RA_PORT node_pid=${REDIS_PIDS[0]} ;;
                redis-none) port=$RN_PORT node_pid=${REDIS_PIDS[1]} ;;
            esac
            all_pids=("$node_pid")
            [ "$target" != corepax ] || all_pids=("${NODE_PIDS[@]}")
            for op in SET GET; do
                cmd="redis-benchmark -h 127.0.0.1 -p $port -t ${op,,} -c $C -P $P -n $NREQ $rflag --csv"
                COMMANDS+=("$target: $cmd")
                echo "[$(date -u +%T)] $target: $cmd" >&2
                node_before=$(cpu_ticks "$node_pid")
                all_before=$(cpu_ticks "${all_pids[@]}")
                rc=0
                read -r -a argv <<<"$cmd"
                csv=$(timeout "$BENCH_TIMEOUT_S" "${argv[@]}" 2>&1) || rc=$?
                cpu=$(cpu_us_per_op "$node_before" "$(cpu_ticks "$node_pid")" "$NREQ")
                if [ "$target" = corepax ]; then
                    cpu+=" / $(cpu_us_per_op "$all_before" "$(cpu_ticks "${all_pids[@]}")" "$NREQ")"
                fi
                if [ "$rc" = 124 ]; then
                    echo "  timed out after ${BENCH_TIMEOUT_S}s" >&2
                elif [ "$rc" != 0 ]; then
                    echo "  redis-benchmark failed, exit status $rc: $(printf '%s' "$csv" | tail -n 3 | tr '\n' ' ')" >&2
                fi
                {
                    echo "## $target c=$C P=$P keys=$variant: $cmd (CPU µs/op: $cpu)"
                    echo "$csv"
                    [ "$rc" = 0 ] || echo "(exit status $rc)"
                } >>"$OUT_RAW"
                line=$(printf '%s\n' "$csv" | grep "^\"$op\"" || true)
                key="$target|$C|$P|$variant|$op"
                if [ -n "$line" ]; then
                    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",...
                    RPS[$key]=$(printf '%s' "$line" | cut -d, -f2 | tr -d '"')
                    P50[$key]=$(printf '%s' "$line" | cut -d, -f5 | tr -d '"')
                    CPU[$key]=$cpu
                else
                    RPS[$key]=""
                    P50[$key]=""
                    CPU[$key]=""
                fi
                echo "  $op ${RPS[$key]:-FAILED} ops/s p50 ${P50[$key]:--} ms, CPU ${CPU[$key]:--} µs/op" >&2
            done
        done
    done
done
UPTIME_AFTER=$(uptime)

# Is the cluster still whole after the run? (A node exit stops the cluster.)
CLUSTER_ALIVE=$(cluster_alive)
COREPAX_INFO=""
LEADERS_AFTER=""
for i in 0 1 2; do
    LEADERS_AFTER+="node $i: shards_led=$(redis-cli -p $((BASE + i)) info 2>/dev/null | tr -d '\r' | sed -n 's/^shards_led://p'); "
    COREPAX_INFO+="node $i: "$'\n'
    COREPAX_INFO+=$(redis-cli -p $((BASE + i)) info 2>/dev/null | tr -d '\r' | grep -E '^shard' || true)
    COREPAX_INFO+=$'\n'
done
# Totals over every node and shard of the counters that explain slow runs.
stat_sum() {
    printf '%s\n' "$COREPAX_INFO" | grep -oE "[,:]$1=[0-9]+" | cut -d= -f2 | awk '{s += $1} END {print s + 0}'
}
COREPAX_COUNTERS="forwarded=$(stat_sum forwarded) errors=$(stat_sum errors) accepts_retransmitted=$(stat_sum accepts_retransmitted) elections_started=$(stat_sum elections_started) requests_busy=$(stat_sum requests_busy)"
{
    echo "## corepax INFO of every node after the run"
    echo "$COREPAX_INFO"
    echo "## cluster log (last 40 lines)"
    tail -n 40 "$TMP/cluster.log"
} >>"$OUT_RAW"

ratio() {
    python3 -c 'import sys
a, b = sys.argv[1], sys.argv[2]
print(f"{float(a)/float(b):.2f}" if a and b and float(b) > 0 else "-")' "$1" "$2"
}
fmt_int() {
    if [ -n "$1" ]; then printf "%'.0f" "$1"; else echo "failed"; fi
}

{
    echo "# corepax node vs Redis — $STAMP"
    echo
    echo "redis-benchmark, one run per operation: $CLIENTS connections with $N requests, and one"
    echo "client with $ONE_CLIENT_N; ops/s, p50 latency (ms) and CPU per request (µs of user +"
    echo "system time; corepax: the node benchmarked / the three replicas together)."
    echo "\`single\` = redis-benchmark's default of one fixed key per test;"
    echo "\`random\` = \`-r $RANGE\` random keys (spreads load over corepax's shards)."
    echo "Each row's three targets ran back to back."
    echo
    echo "| -c | -P | keys | op | corepax ops/s | p50 ms | CPU µs | redis always ops/s | p50 ms | CPU µs | redis none ops/s | p50 ms | CPU µs | corepax / redis-always | corepax / redis-none |"
    echo "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for setting in "${SETTINGS[@]}"; do
        IFS=: read -r C P _ <<<"$setting"
        for variant in "${VARIANTS[@]}"; do
            for op in SET GET; do
                k="$C|$P|$variant|$op"
                c="${RPS[corepax|$k]}"
                a="${RPS[redis-always|$k]}"
                n="${RPS[redis-none|$k]}"
                echo "| $C | $P | $variant | $op | $(fmt_int "$c") | ${P50[corepax|$k]:--} | ${CPU[corepax|$k]:--} | $(fmt_int "$a") | ${P50[redis-always|$k]:--} | ${CPU[redis-always|$k]:--} | $(fmt_int "$n") | ${P50[redis-none|$k]:--} | ${CPU[redis-none|$k]:--} | $(ratio "$c" "$a") | $(ratio "$c" "$n") |"
            done
        done
    done
    echo
    echo "## Targets"
    echo
    echo "- corepax: \`$CLUSTER_CMD\` (temp dir), default protocol settings, fsync on."
    echo "  Settings reported by INFO: \`$COREPAX_SETTINGS\`."
    echo "  Benchmarked through port $COREPAX_PORT, the node leading the most shards:"
    printf '%s' "$LEADER_LINES" | sed 's/^/  - /'
    echo "  Start: \`ready:\` after $(((READY_NS - START_NS) / 1000000)) ms, every shard led and a SET accepted after $(((LEADERS_NS - START_NS) / 1000000)) ms."
    echo "  Leaders after the run: $LEADERS_AFTER(a leader change during the run sends the"
    echo "  node's requests through a forwarding hop, and any \`elections_started\` beyond one per"
    echo "  shard below means leadership moved)."
    echo "  Cluster alive after the run: $CLUSTER_ALIVE. Counters summed over nodes and shards"
    echo "  after the run (INFO): \`$COREPAX_COUNTERS\`."
    echo "- redis always: \`$RA_CMD\`"
    echo "- redis none: \`$RN_CMD\`"
    echo "- $(redis-server --version)"
    echo "- corepax commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    echo "## Commands"
    echo
    echo '```'
    printf '%s\n' "${COMMANDS[@]}"
    echo '```'
    echo
    echo "## Machine"
    echo
    echo "- nproc: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "- kernel: $(uname -r)"
    echo "- data dirs: $(df -T "$TMP" | awk 'NR==2 {print $1, $2}') (all three targets on the same filesystem)"
    echo "- uptime before: \`$UPTIME_BEFORE\`"
    echo "- uptime after: \`$UPTIME_AFTER\`"
    echo "- The machine is shared with other agents compiling Rust: the load average above is"
    echo "  theirs as much as ours, so absolute numbers move between runs; the ratios, measured"
    echo "  back to back, are the figure to trust."
    echo
    echo "Raw redis-benchmark output: \`$(basename "$OUT_RAW")\`."
} >"$OUT_MD"

cat "$OUT_MD"
echo >&2
echo "wrote $OUT_MD and $OUT_RAW" >&2
