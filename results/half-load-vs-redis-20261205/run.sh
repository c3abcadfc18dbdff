#!/usr/bin/env bash
# The main job's half-load latency next to Redis's under the same load generator and disk:
# ROUNDS times, `corepax bench` (the embedded 3-replica cluster: closed loop, then open
# loop at half the throughput it measured), then the same against one redis-server with
# appendfsync always (`--target`: its own closed loop, then half of *its* throughput),
# then Redis again at corepax's half-load rate (`--rate R --half-load 0`). Prints each
# run's summary lines; JSON under OUT (default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
resolve_bin
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-$(mktemp -d)}
TMP=$(mktemp -d)
REDIS_PID=""
trap 'stop_pids "$REDIS_PID"; rm -rf "$TMP"' EXIT
summary() { grep -E "^all |^NOTE|^server CPU per op|^open loop: target" || true; }
for r in $(seq "$ROUNDS"); do
    echo "== round $r: corepax (main job)"
    "$BIN" bench --json "$OUT/corepax-$r.json" 2>&1 | summary
    rate=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(int(d['total']['throughput_per_s']/2))" "$OUT/corepax-$r.json" 2>/dev/null || echo "")
    rm -rf "$TMP/redis"
    start_redis_always "$TMP/redis"
    port=$REDIS_PORT
    echo "== round $r: redis-server appendfsync always (its own closed loop and half load)"
    "$BIN" bench --target "127.0.0.1:$port" --json "$OUT/redis-$r.json" 2>&1 | summary
    if [ -n "$rate" ]; then
        echo "== round $r: redis-server at corepax's half-load rate ($rate/s)"
        "$BIN" bench --target "127.0.0.1:$port" --rate "$rate" --duration 8 --half-load 0 \
            --json "$OUT/redis-at-corepax-rate-$r.json" 2>&1 | summary
    fi
    stop_pids "$REDIS_PID"
    REDIS_PID=""
done
echo "JSON: $OUT"
