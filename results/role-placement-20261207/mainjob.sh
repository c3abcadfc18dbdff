#!/usr/bin/env bash
# The main job (`corepax bench`, its embedded 3-replica cluster) three ways, alternated
# ROUNDS times (default 3): A as it is (the kernel places every executor), B
# `-- --place-by-role`, C as A with the followers' threads confined to core 1 by
# `taskset` once a leader is elected (the leader left free). Runs in a scratch folder;
# prints per run the closed loop's rate, p99 and servers' CPU per op, and the half-load
# phase's rate, p50/p99/p99.9, servers' CPU per op (each node) and the machine's busy share.
#   results/role-placement-20261207/mainjob.sh [ROUNDS]
# Every run here had all executors at SCHED_OTHER (before follower_sched_batch); with a
# later binary, A and C say so (ARGS_A, ARGS_C). Other comparisons (../follower-batch-
# 20261207/ runs it so): VARIANTS (default `A B C`), ARGS_A/ARGS_B/ARGS_C (each run's
# `corepax bench` arguments), CONFINE (C's command for each follower pid, default
# `taskset -a -p -c 1`).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
VARIANTS=${VARIANTS:-A B C}
ARGS_A=${ARGS_A--- --follower-sched-batch false}
ARGS_B=${ARGS_B--- --place-by-role}
ARGS_C=${ARGS_C--- --follower-sched-batch false}
CONFINE=${CONFINE:-taskset -a -p -c 1}
BIN=$(readlink -f "${COREPAX_BIN:-target/release/corepax}")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# Runs CONFINE on every node but the leader of shard 0, once one leads (20 s at most).
confine_followers() {
    local deadline=$((SECONDS + 20)) p q cfg port
    while [ $SECONDS -lt $deadline ]; do
        sleep 0.2
        for p in $(pgrep -f "$BIN node --config" || true); do
            cfg=$(tr '\0' ' ' </proc/"$p"/cmdline | awk '{print $4}')
            port=$(sed -n 's/^client_addr = "127.0.0.1:\([0-9]*\)"/\1/p' "$cfg")
            if redis-cli -p "$port" info 2>/dev/null | grep -q '^shard0:leading=1'; then
                for q in $(pgrep -f "$BIN node --config"); do
                    # shellcheck disable=SC2086 # a command and its arguments
                    [ "$q" = "$p" ] || $CONFINE "$q" >/dev/null
                done
                return
            fi
        done
    done
}

summary() {
    python3 - "$1" "$2" <<'PY'
import json, sys
name, f = sys.argv[1], sys.argv[2]
d = json.load(open(f)); h = json.load(open(f.replace(".json", "-half-load.json")))
t, ht = d["total"], h["total"]
c = sum(s["us_per_op"] for s in d["server_cpu"])
hc = [round(s["us_per_op"], 2) for s in h["server_cpu"]]
print(f"{name} closed loop {t['throughput_per_s'] / 1e3:.1f}k ops/s p99 {t['p99_us'] / 1e3:.2f} ms "
      f"CPU/op {c:.2f} | half load {ht['throughput_per_s'] / 1e3:.1f}k p50 {ht['p50_us'] / 1e3:.2f} "
      f"p99 {ht['p99_us'] / 1e3:.2f} p99.9 {ht['p999_us'] / 1e3:.2f} ms CPU/op {sum(hc):.2f} {hc} "
      f"busy {h['machine']['busy_share']:.2f}")
PY
}

echo "# $(date -u +%FT%TZ) $BIN"
for r in $(seq "$ROUNDS"); do
    echo "## round $r"
    for v in $VARIANTS; do
        args_of=ARGS_$v
        read -r -a args <<<"${!args_of}"
        pid=""
        if [ "$v" = C ]; then
            confine_followers &
            pid=$!
        fi
        "$BIN" bench --quiet "${args[@]}" >"run-$v-$r.log" 2>&1
        [ -z "$pid" ] || wait "$pid"
        summary "$v" "$(ls -t results/*.json | grep -v half-load | head -1)"
    done
done
