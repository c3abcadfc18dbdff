#!/usr/bin/env bash
# Shows that corepax's load generator is not the bottleneck: the same mix, connections
# and pipelining against one redis-server (no persistence), measured by redis-benchmark
# and by `corepax bench` (both with LOADGEN_CORES threads), with the ratio. Target: corepax >= 90% of redis-benchmark.
#
#   scripts/loadgen-vs-redis-benchmark.sh [CONNECTIONS] [PIPELINE] [SECONDS] [LOADGEN_CORES] [ROUNDS]
#
# The two tools alternate ROUNDS times per op and the median of each is compared, so
# that noise from other processes on the machine hits both alike. LOADGEN_FLAGS adds
# flags to `corepax bench` (e.g. LOADGEN_FLAGS=--pinned to pin its executors; unpinned is the default).
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-50}
PIPE=${2:-16}
SECS=${3:-10}
CORES=${4:-1}
ROUNDS=${5:-3}
KEYS=100000
VALUE=100
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || {
    echo "needs redis-server and redis-benchmark (apt-get install redis-server redis-tools)" >&2; exit 1; }
cargo build --release -q
BIN=target/release/corepax
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
TMP=$(mktemp -d)
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" --daemonize no >"$TMP/redis.log" 2>&1 &
RPID=$!
trap 'kill $RPID 2>/dev/null; rm -rf "$TMP"' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

workload() { # name get set
cat > "$TMP/$1.toml" <<W
name = "$1"
record_count = $KEYS
preload = false
connections = $CONNS
pipeline = $PIPE
duration_s = $SECS
warmup_s = 1
[keys]
distribution = "uniform"
[value]
size_bytes = $VALUE
[mix]
get = $2
set = $3
[load]
mode = "closed"
W
}
workload lg-set 0 1
workload lg-get 1 0
echo "# redis-server $(redis-server --version | awk '{print $3}'), $(nproc) cores, -c $CONNS -P $PIPE, $KEYS keys, $VALUE B values"
echo "# loadgen: $BIN bench --target 127.0.0.1:$PORT --workload <set|get> --cores $CORES"
median() { python3 -c "import sys,statistics;print(round(statistics.median(float(x) for x in sys.argv[1:])))" "$@"; }
declare -A RB LG
for t in set get; do
    RBS=(); LGS=()
    for r in $(seq "$ROUNDS"); do
        # Sized from the last measured rate so each run lasts about SECS seconds.
        N=$(( SECS * ${LAST_RATE:-300000} ))
        CMD="redis-benchmark -p $PORT -t $t -c $CONNS -P $PIPE -n $N -r $KEYS -d $VALUE --threads $CORES --csv"
        [ "$r" = 1 ] && echo "\$ $CMD"
        v=$($CMD | tail -1 | awk -F, '{gsub(/"/,"",$2); print $2}')
        RBS+=("$v"); LAST_RATE=${v%.*}
        $BIN bench --target "127.0.0.1:$PORT" --workload "$TMP/lg-$t.toml" --cores "$CORES" --quiet ${LOADGEN_FLAGS:-} \
            --json "$TMP/lg-$t.json" >"$TMP/lg-$t.out" 2>&1
        w=$(python3 -c "import json;print(round(json.load(open('$TMP/lg-$t.json'))['total']['throughput_per_s']))")
        LGS+=("$w")
        echo "round $r $t: redis-benchmark $v ops/s, corepax bench $w ops/s"
    done
    RB[$t]=$(median "${RBS[@]}"); LG[$t]=$(median "${LGS[@]}")
done
echo
printf "%-4s %16s %16s %8s   (medians of %s rounds)\n" op redis-benchmark "corepax bench" ratio "$ROUNDS"
for t in set get; do
    printf "%-4s %16s %16s %7.1f%%\n" "$t" "${RB[$t]}" "${LG[$t]}" "$(python3 -c "print(100*${LG[$t]}/${RB[$t]})")"
done
