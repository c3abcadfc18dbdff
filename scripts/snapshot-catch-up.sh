#!/usr/bin/env bash
# Catch-up by snapshot at scale: a replica that was down while KEYS keys were written (and
# the others compacted their logs) restarts and must catch up from a snapshot of the whole
# state, which at 1M keys of 100 bytes is larger than one peer frame (64 MiB): it only
# works if the snapshot crosses in chunks. Starts 3 `corepax node` processes (1 shard each)
# on free loopback ports, kill -9s a follower, loads KEYS keys through the leader, restarts
# the follower and times until its DBSIZE (a local read of applied state) reaches KEYS;
# reports the snapshot counters from INFO, the leader's executor stalls while it serves
# the catch-up, and both nodes' RSS.
#
# Usage: scripts/snapshot-catch-up.sh   (defaults below; all can be overridden)
#   KEYS=1000000         distinct keys (key:%07d)
#   PRELOAD_KEYS=0       keys loaded before the follower goes down (it restarts holding
#                        them, so installing the snapshot replaces a map that large); the
#                        KEYS keys come after them
#   VALUE_BYTES=100      bytes per value
#   LOADERS=4            pipelined loader connections
#   LOAD_TIMEOUT_S=900   bound on the load
#   CATCHUP_TIMEOUT_S=300  bound on the catch-up
#   NODE_FLAGS="--snapshot-interval-slots 10000 --log-retain-slots 1000"  extra node flags
#                        (frequent snapshots, a short log: the follower cannot catch up
#                        from the log)
#   COREPAX_BIN=target/release/corepax  (built with `cargo build --release` if missing)
#   KEEP_TMP=1           keep the temp dir (node data, logs) for inspection
# Writes results/snapshot-catch-up-<date>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000000}
PRELOAD_KEYS=${PRELOAD_KEYS:-0}
VALUE_BYTES=${VALUE_BYTES:-100}
LOADERS=${LOADERS:-4}
LOAD_TIMEOUT_S=${LOAD_TIMEOUT_S:-900}
CATCHUP_TIMEOUT_S=${CATCHUP_TIMEOUT_S:-300}
NODE_FLAGS=${NODE_FLAGS:-"--snapshot-interval-slots 10000 --log-retain-slots 1000"}
READY_TIMEOUT_S=60
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
require_tools redis-cli python3 timeout
resolve_bin

STAMP=$(date -u +%Y%m%d-%H%M%S)
mkdir -p results
OUT_MD="results/snapshot-catch-up-$STAMP.md"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/corepax-catch-up.XXXXXX")
PIDS=("" "" "")

cleanup() {
    local rc=$?
    stop_pids "${PIDS[@]}"
    remove_tmp
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SHARDS=1
BASE=$(free_cluster_base 3 "$SHARDS")
PEERS="127.0.0.1:$((BASE + 1000)),127.0.0.1:$((BASE + 1064)),127.0.0.1:$((BASE + 1128))"
node_cmd() {
    echo "$BIN node --id $1 --client-addr 127.0.0.1:$((BASE + $1)) --peers $PEERS --data $TMP/node-$1 --shards $SHARDS --no-pin $NODE_FLAGS"
}
start_node() {
    local -a argv
    read -r -a argv <<<"$(node_cmd "$1")"
    "${argv[@]}" >>"$TMP/node-$1.log" 2>&1 &
    PIDS[$1]=$!
    wait_ping $((BASE + $1)) "$READY_TIMEOUT_S" || {
        echo "node $1 did not answer PING; log:" >&2
        cat "$TMP/node-$1.log" >&2
        exit 1
    }
}
info_field() { # port field
    redis-cli -p "$1" info 2>/dev/null | tr -d '\r' | grep -oE "$2=[0-9]+" | head -1 | cut -d= -f2
}
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

for i in 0 1 2; do start_node "$i"; done
deadline=$((SECONDS + READY_TIMEOUT_S))
until leaders_ready; do
    [ $SECONDS -lt $deadline ] || { echo "no leader" >&2; exit 1; }
    sleep 0.1
done
LEADER=""
for i in 0 1 2; do
    [ "$(redis-cli -p $((BASE + i)) info | tr -d '\r' | sed -n 's/^shards_led://p')" = 1 ] && LEADER=$i
done
LAGGING=$(((LEADER + 1) % 3))
write_loader "$TMP/loader.py"
if [ "$PRELOAD_KEYS" -gt 0 ]; then
    echo "[$(date -u +%T)] preloading $PRELOAD_KEYS keys through node $LEADER" >&2
    load_keys $((BASE + LEADER)) "$TMP/preload.log" "0:$PRELOAD_KEYS"
    deadline=$((SECONDS + CATCHUP_TIMEOUT_S))
    until [ "$(redis-cli -p $((BASE + LAGGING)) dbsize 2>/dev/null)" = "$PRELOAD_KEYS" ]; do
        [ $SECONDS -lt $deadline ] || { echo "node $LAGGING did not apply the preload" >&2; exit 1; }
        sleep 0.2
    done
fi
echo "[$(date -u +%T)] leader node $LEADER; kill -9 node $LAGGING" >&2
kill -KILL "${PIDS[$LAGGING]}"
wait "${PIDS[$LAGGING]}" 2>/dev/null || true
PIDS[LAGGING]=""

UPTIME_BEFORE=$(uptime)
echo "[$(date -u +%T)] loading $KEYS keys through node $LEADER" >&2
LOAD_START=$(date +%s%N)
load_keys $((BASE + LEADER)) "$TMP/load.log" "$PRELOAD_KEYS:$((PRELOAD_KEYS + KEYS))"
LOAD_MS=$((($(date +%s%N) - LOAD_START) / 1000000))
LEADER_DBSIZE=$(redis-cli -p $((BASE + LEADER)) dbsize)
LEADER_COMMIT=$(info_field $((BASE + LEADER)) commit_index)
echo "[$(date -u +%T)] loaded in $LOAD_MS ms, DBSIZE $LEADER_DBSIZE; restarting node $LAGGING" >&2

# The leader's executor stalls (ticks >= 20 ms late) while it serves the catch-up.
STALLS_BEFORE=$(info_field $((BASE + LEADER)) executor_stalls)
STALL_MS_BEFORE=$(info_field $((BASE + LEADER)) executor_stall_ms)
CATCHUP_START=$(date +%s%N)
start_node "$LAGGING"
deadline=$((SECONDS + CATCHUP_TIMEOUT_S))
CAUGHT_UP=no
while [ $SECONDS -lt $deadline ]; do
    if [ "$(redis-cli -p $((BASE + LAGGING)) dbsize 2>/dev/null)" = "$LEADER_DBSIZE" ]; then
        CAUGHT_UP=yes
        break
    fi
    sleep 0.2
done
CATCHUP_MS=$((($(date +%s%N) - CATCHUP_START) / 1000000))
echo "[$(date -u +%T)] caught up: $CAUGHT_UP after $CATCHUP_MS ms" >&2
UPTIME_AFTER=$(uptime)
LEADER_STALLS=$(($(info_field $((BASE + LEADER)) executor_stalls) - STALLS_BEFORE))
LEADER_STALL_MS=$(($(info_field $((BASE + LEADER)) executor_stall_ms) - STALL_MS_BEFORE))
LAG_INFO=$(redis-cli -p $((BASE + LAGGING)) info 2>/dev/null | tr -d '\r' | grep -E '^shard' || true)
LEAD_INFO=$(redis-cli -p $((BASE + LEADER)) info 2>/dev/null | tr -d '\r' | grep -E '^shard' || true)

{
    echo "# Catch-up by snapshot with $KEYS keys — $STAMP"
    echo
    echo "$KEYS keys \`key:%07d\` with $VALUE_BYTES-byte values ($((KEYS * (11 + VALUE_BYTES))) bytes of keys and"
    echo "values) loaded while node $LAGGING was down (after $PRELOAD_KEYS keys it holds); then node"
    echo "$LAGGING restarts and its peers' logs are compacted, so it can only catch up from a snapshot."
    echo
    echo "| what | value |"
    echo "| --- | --- |"
    echo "| caught up (DBSIZE $LEADER_DBSIZE on node $LAGGING) | **$CAUGHT_UP** after $CATCHUP_MS ms (process start included) |"
    echo "| load | $LOAD_MS ms, $(load_errors "$TMP/load.log") errors; leader commit index $LEADER_COMMIT |"
    echo "| node $LAGGING snapshots_installed | $(info_field $((BASE + LAGGING)) snapshots_installed) |"
    echo "| node $LEADER snapshots_sent | $(info_field $((BASE + LEADER)) snapshots_sent) |"
    echo "| node $LEADER (leader) executor stalls during the catch-up (ticks >= 20 ms late) | $LEADER_STALLS ($LEADER_STALL_MS ms) |"
    echo "| node $LAGGING executor stalls since its restart | $(info_field $((BASE + LAGGING)) executor_stalls) ($(info_field $((BASE + LAGGING)) executor_stall_ms) ms) |"
    echo "| RSS node $LEADER (leader) / node $LAGGING (caught up), MiB | $(rss_mib "${PIDS[$LEADER]}") / $(rss_mib "${PIDS[$LAGGING]}") |"
    echo
    echo "## Setup"
    echo
    echo "- nodes (i = 0, 1, 2): \`$(node_cmd 0 | sed 's/--id 0/--id i/; s/--client-addr 127.0.0.1:[0-9]*/--client-addr 127.0.0.1:(base+i)/; s/node-0/node-i/')\`"
    echo "- load: this script's loader (scripts/lib.sh \`write_loader\`), $LOADERS connections"
    echo "- corepax commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), binary $BIN"
    echo "- node $LAGGING INFO after: \`$(echo "$LAG_INFO" | paste -sd' ')\`"
    echo "- node $LEADER INFO after: \`$(echo "$LEAD_INFO" | paste -sd' ')\`"
    echo
    echo "## Machine"
    echo
    echo "- nproc: $(nproc); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo); kernel $(uname -r)"
    echo "- uptime before the load: \`$UPTIME_BEFORE\`; after the catch-up: \`$UPTIME_AFTER\`"
    echo "- Shared with other agents compiling Rust: times are not comparable between runs."
    echo
    echo "## Node $LAGGING log (last 15 lines)"
    echo
    echo '```'
    tail -n 15 "$TMP/node-$LAGGING.log"
    echo '```'
} >"$OUT_MD"
cat "$OUT_MD"
[ "$CAUGHT_UP" = yes ]
