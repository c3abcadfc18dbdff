#!/usr/bin/env bash
# A lagging follower's catch-up by transfer while its leader keeps writing and
# snapshotting, for corepax binaries alternated ROUNDS times: 3 `corepax node`s (1 shard,
# snapshots every SNAP_SLOTS slots, a short log), KEYS keys loaded, a follower killed,
# OVERWRITE more writes, then the follower restarted while a writer keeps overwriting keys
# (so the leader snapshots during the catch-up) and `redis-cli --latency` PINGs the
# leader every 10 ms (`--latency-history -i 1`): its max shows the leader's stops. Prints
# one line per run: catch-up ms, the leader's snapshots_sent and snapshots_written during
# it, its executor stalls (>= 20 ms late), the probe's longest PING.
#   results/transfer-during-snapshot-20261207/run.sh ROUNDS NAME:BINARY ...
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=$1
shift
KEYS=${KEYS:-1000000}
OVERWRITE=${OVERWRITE:-200000}
SNAP_SLOTS=${SNAP_SLOTS:-300}
VALUE_BYTES=100
SHARDS=1
LOADERS=4
LOAD_TIMEOUT_S=600
. scripts/lib.sh
require_tools redis-cli python3 timeout stdbuf
TMP=$(mktemp -d)
PIDS=("" "" "")
BG=""
trap 'stop_pids "${PIDS[@]}" $BG; rm -rf "$TMP"' EXIT
write_loader "$TMP/loader.py"
info_field() { redis-cli -p "$1" info 2>/dev/null | tr -d '\r' | grep -oE "$2=[0-9]+" | head -1 | cut -d= -f2; }

one_run() {
    local name=$1 bin=$2 base peers i leader lagging t0 ms sent0 written0 stalls0 probe
    base=$(free_cluster_base 3 1)
    peers="127.0.0.1:$((base + 1000)),127.0.0.1:$((base + 1064)),127.0.0.1:$((base + 1128))"
    start() {
        "$bin" node --id "$1" --client-addr "127.0.0.1:$((base + $1))" --peers "$peers" \
            --data "$TMP/$name-$1" --shards 1 --no-pin --snapshot-interval-slots "$SNAP_SLOTS" \
            --log-retain-slots 100 >>"$TMP/$name-$1.log" 2>&1 &
        PIDS[$1]=$!
        wait_ping $((base + $1)) 60
    }
    for i in 0 1 2; do start "$i"; done
    BASE=$base
    until leaders_ready; do sleep 0.1; done
    for i in 0 1 2; do
        [ "$(redis-cli -p $((base + i)) info | tr -d '\r' | sed -n 's/^shards_led://p')" = 1 ] && leader=$i
    done
    lagging=$(((leader + 1) % 3))
    load_keys $((base + leader)) "$TMP/load.log" "0:$KEYS"
    kill -KILL "${PIDS[$lagging]}"
    wait "${PIDS[$lagging]}" 2>/dev/null || true
    PIDS[lagging]=""
    load_keys $((base + leader)) "$TMP/over.log" "0:$OVERWRITE"
    # Writes go on during the catch-up: the leader takes snapshots meanwhile.
    (while :; do load_keys $((base + leader)) "$TMP/bg.log" "0:$OVERWRITE"; done) &
    BG=$!
    # Line-buffered: not on a terminal it prints "min max avg samples" per sample.
    stdbuf -oL redis-cli -p $((base + leader)) --latency-history -i 1 >"$TMP/probe.txt" 2>&1 &
    probe=$!
    sleep 1
    sent0=$(info_field $((base + leader)) snapshots_sent)
    written0=$(info_field $((base + leader)) snapshots_written)
    stalls0=$(info_field $((base + leader)) executor_stalls)
    t0=$(date +%s%N)
    start "$lagging"
    until [ "$(info_field $((base + lagging)) snapshots_installed)" -ge 1 ] 2>/dev/null &&
        [ "$(redis-cli -p $((base + lagging)) dbsize)" = "$KEYS" ]; do
        [ $((($(date +%s%N) - t0) / 1000000000)) -lt 120 ] || { echo "$name: no catch-up" >&2; break; }
        sleep 0.05
    done
    ms=$((($(date +%s%N) - t0) / 1000000))
    sleep 0.5
    kill "$probe" 2>/dev/null || true
    wait "$probe" 2>/dev/null || true
    pkill -P "$BG" 2>/dev/null || true
    kill "$BG" 2>/dev/null || true
    wait "$BG" 2>/dev/null || true
    BG=""
    echo "$name: caught up in $ms ms; leader snapshots_sent +$(($(info_field $((base + leader)) snapshots_sent) - sent0)), snapshots_written +$(($(info_field $((base + leader)) snapshots_written) - written0)), executor_stalls +$(($(info_field $((base + leader)) executor_stalls) - stalls0)); probe max $(awk '$2 > m {m = $2} END {print m + 0}' "$TMP/probe.txt") ms over $(wc -l <"$TMP/probe.txt") PINGs"
    stop_pids "${PIDS[@]}"
    PIDS=("" "" "")
    rm -rf "$TMP/$name"-*
}

for r in $(seq "$ROUNDS"); do
    for spec in "$@"; do
        one_run "${spec%%:*}" "$(readlink -f "${spec#*:}")"
    done
done
