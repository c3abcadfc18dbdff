#!/usr/bin/env bash
# One workload, three targets, one run: redis-server with appendfsync always, redis-server
# without persistence, and a local 3-replica corepax cluster; prints throughput and p99
# for each and the ratios corepax / redis. Until the node's `cluster` command exists the
# corepax part fails: the script says so and still prints the Redis part.
#
#   scripts/compare-redis.sh [WORKLOAD] [SECONDS] [-- extra corepax cluster flags]
set -uo pipefail
cd "$(dirname "$0")/.."
WORKLOAD=${1:-workloads/default.toml}
SECS=${2:-10}
shift $(( $# > 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
NODE_ARGS=("$@")
cargo build --release -q || exit 1
BIN=target/release/corepax
OUT=results/compare-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
echo "# compare-redis: $WORKLOAD, ${SECS}s each, git $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores"

run() { # label args...
    local label=$1; shift
    echo "\$ $BIN bench --workload $WORKLOAD --duration $SECS --json $OUT/$label.json $*"
    if "$BIN" bench --workload "$WORKLOAD" --duration "$SECS" --quiet --json "$OUT/$label.json" "$@" \
        >"$OUT/$label.out" 2>&1; then
        grep -E '^(op|all) |^NOTE' "$OUT/$label.out"
        # A fallback to Redis is not a corepax result.
        if grep -q "FELL BACK" "$OUT/$label.out"; then echo "($label fell back to redis-server: not counted)"; rm -f "$OUT/$label.json"; fi
    else
        echo "$label FAILED:"; tail -5 "$OUT/$label.out"; rm -f "$OUT/$label.json"
    fi
}
run redis-always --redis always
run redis-none --redis none
if [ ${#NODE_ARGS[@]} -gt 0 ]; then run corepax -- "${NODE_ARGS[@]}"; else run corepax; fi

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
r = {}
for k in ("redis-always", "redis-none", "corepax"):
    p = os.path.join(out, k + ".json")
    if os.path.exists(p):
        r[k] = json.load(open(p))["total"]
print()
print(f"{'target':<14} {'ops/s':>12} {'p50 µs':>10} {'p99 µs':>10} {'p99.9 µs':>10}")
for k, t in r.items():
    print(f"{k:<14} {t['throughput_per_s']:>12.0f} {t['p50_us']:>10.0f} {t['p99_us']:>10.0f} {t['p999_us']:>10.0f}")
if "corepax" not in r:
    print("\ncorepax: no result (the cluster did not start; see above). Redis figures only.")
else:
    for k in ("redis-always", "redis-none"):
        if k in r:
            c, b = r["corepax"], r[k]
            print(f"corepax / {k}: throughput {c['throughput_per_s']/b['throughput_per_s']:.2f}x, "
                  f"p99 {c['p99_us']/max(b['p99_us'],1):.2f}x")
print(f"\nresults in {out}/")
PY
