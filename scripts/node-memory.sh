#!/usr/bin/env bash
# Memory of a corepax node holding 1,000,000 keys: starts a local 3-replica cluster
# (fsync on, default settings), loads KEYS distinct keys `key:%07d` with VALUE_BYTES-byte
# values through one node with pipelined RESP (a python3 raw-socket loader), waits until DBSIZE (a local
# read of applied state) reaches KEYS on every node, then reads each node process's RSS from
# /proc/PID/status against the raw key + value bytes. The issue's target: RSS <= 2x raw.
# For reference the same data is loaded into redis-server (no persistence) and its RSS
# reported too.
#
# Usage: scripts/node-memory.sh   (defaults below; all can be overridden)
#   KEYS=1000000        distinct keys (key:%07d, so at most 10,000,000)
#   VALUE_BYTES=100     bytes per value
#   LOADERS=4           pipelined connections, each loading a slice of the keys
#   LOAD_TIMEOUT_S=900  bound on the load and on waiting for DBSIZE
#   DBSIZE_WAIT_S=60    after the load, how long DBSIZE may take before failed keys are resent
#   SETTLE_S=10         seconds to wait before a second RSS reading (0: skip)
#   OVERWRITE=1         then SET the same keys to the same values again and report what RSS
#                       gains: the log's cost per SET, apart from the map (0: skip)
#   REDIS_REFERENCE=1   also measure redis-server with the same data (0: skip)
#   SHARDS=             shards per node (default: the cluster's, cores / 3, at least 1)
#   COREPAX_BIN=target/release/corepax  (built with `cargo build --release` if missing)
#   KEEP_TMP=1          keep the temp dir (node data, logs) for inspection
# Writes results/node-memory-<date>.md and results/node-memory-<date>-raw.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYS=${KEYS:-1000000}
VALUE_BYTES=${VALUE_BYTES:-100}
LOADERS=${LOADERS:-4}
LOAD_TIMEOUT_S=${LOAD_TIMEOUT_S:-900}
SETTLE_S=${SETTLE_S:-10}
DBSIZE_WAIT_S=${DBSIZE_WAIT_S:-60}
OVERWRITE=${OVERWRITE:-1}
REDIS_REFERENCE=${REDIS_REFERENCE:-1}
READY_TIMEOUT_S=60
KEY_BYTES=11 # len("key:%07d")
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if [ "$KEYS" -lt 1 ] || [ "$KEYS" -gt 10000000 ]; then
    echo "KEYS must be 1..=10000000" >&2
    exit 1
fi
require_tools redis-server redis-cli python3 setsid timeout pgrep
resolve_bin

begin_run node-memory

write_loader "$TMP/loader.py"

# Waits until DBSIZE on port $1 reaches KEYS, at most $2 seconds; prints the last value seen.
wait_dbsize() {
    local deadline=$((SECONDS + $2)) n=""
    while :; do
        n=$(redis-cli -p "$1" dbsize 2>/dev/null || echo "")
        if [ "$n" = "$KEYS" ] || [ $SECONDS -ge $deadline ]; then
            echo "${n:-none}"
            return
        fi
        sleep 0.5
    done
}

# Sum over every shard of every node of INFO's applied_index.
applied_sum() {
    for i in 0 1 2; do
        redis-cli -p $((BASE + i)) info 2>/dev/null | tr -d '\r' | grep -oE 'applied_index=[0-9]+' || true
    done | cut -d= -f2 | awk '{s += $1} END {print s + 0}'
}

# Waits until no node applies anything more for 2 s (followers catch up), at most
# LOAD_TIMEOUT_S.
wait_applied_settles() {
    local deadline=$((SECONDS + LOAD_TIMEOUT_S)) last=-1 now
    while [ $SECONDS -lt $deadline ]; do
        now=$(applied_sum)
        [ "$now" = "$last" ] && return
        last=$now
        sleep 2
    done
}

# "VmRSS VmHWM RssAnon" of PID $1 in KiB.
rss_kib() {
    awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} /^RssAnon:/ {a=$2} END {print r, h, a}' "/proc/$1/status"
}

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

start_cluster "$TMP/corepax" "$TMP/cluster.log"
deadline=$((SECONDS + READY_TIMEOUT_S))
FIRST_VALUE=$(python3 -c "import sys; print(('v%07d' % 0 + 'x' * $VALUE_BYTES)[:$VALUE_BYTES])")
until [ "$(redis-cli -p "$BASE" set key:0000000 "$FIRST_VALUE" 2>/dev/null)" = OK ]; do
    [ $SECONDS -lt $deadline ] || { echo "SET never succeeded" >&2; exit 1; }
    sleep 0.1
done

# Load through the node leading the most shards (fewest forwards).
LOAD_PORT=$LEAD_PORT
LOAD_NODE=$LEAD_NODE
SETTINGS=$(redis-cli -p "$LOAD_PORT" info | tr -d '\r' |
    grep -E '^(shards|replicas|fsync|read_mode|batch_max|pipeline_depth):' | paste -sd' ')

declare -a RSS_IDLE
for i in 0 1 2; do RSS_IDLE[i]=$(rss_kib "${NODE_PIDS[$i]}"); done

UPTIME_BEFORE=$(uptime)
echo "[$(date -u +%T)] loading $KEYS keys through node $LOAD_NODE (port $LOAD_PORT), $LOADERS connections" >&2
LOAD_START=$(date +%s%N)
load_keys "$LOAD_PORT" "$TMP/load1.log" "0:$KEYS"
LOAD_END=$(date +%s%N)
ERRORS1=$(load_errors "$TMP/load1.log")
# A TIMEOUT answer "may or may not have taken effect": see whether DBSIZE gets there anyway
# before resending anything, since every resent SET adds to the in-memory log.
DBSIZE_LOAD=$(wait_dbsize "$LOAD_PORT" "$DBSIZE_WAIT_S")
RETRIED=no
if [ "$DBSIZE_LOAD" != "$KEYS" ] && [ -s "$TMP/load1.log.failed" ]; then
    nfail=$(wc -l <"$TMP/load1.log.failed")
    echo "  DBSIZE $DBSIZE_LOAD after the load; resending the $nfail keys answered with an error" >&2
    RETRIED="yes: DBSIZE was $DBSIZE_LOAD, resent the $nfail keys answered with an error"
    load_keys "$LOAD_PORT" "$TMP/load2.log" "@$TMP/load1.log.failed"
    LOAD_END=$(date +%s%N)
    DBSIZE_LOAD=$(wait_dbsize "$LOAD_PORT" "$LOAD_TIMEOUT_S")
fi
LOAD_MS=$(((LOAD_END - LOAD_START) / 1000000))
echo "[$(date -u +%T)] load done in $LOAD_MS ms; DBSIZE $DBSIZE_LOAD on node $LOAD_NODE" >&2
declare -a DBSIZE RSS_LOADED RSS_SETTLED RSS_OVER INFO_LINES DISK
for i in 0 1 2; do DBSIZE[i]=$(wait_dbsize $((BASE + i)) "$LOAD_TIMEOUT_S"); done
APPLIED_END=$(date +%s%N)
for i in 0 1 2; do RSS_LOADED[i]=$(rss_kib "${NODE_PIDS[$i]}"); done
echo "[$(date -u +%T)] DBSIZE ${DBSIZE[*]}; RSS read" >&2
if [ "$SETTLE_S" -gt 0 ]; then
    sleep "$SETTLE_S"
    for i in 0 1 2; do RSS_SETTLED[i]=$(rss_kib "${NODE_PIDS[$i]}"); done
fi
for i in 0 1 2; do
    INFO_LINES[i]=$(redis-cli -p $((BASE + i)) info 2>/dev/null | tr -d '\r' | grep -E '^shard' || true)
    DISK[i]=$(du -sk "$TMP/corepax/node-$i" | cut -f1)
done

# Overwrite pass: the same KEYS SETs again (same keys, same values). The map keeps its size,
# so what RSS gains is what stays behind after the log's entries (bounded by
# log_retain_bytes) and the snapshots taken meanwhile (which keep overwritten items alive
# until written): allocator slack.
OVER_ERRORS="-"
OVER_MS=0
if [ "$OVERWRITE" = 1 ]; then
    echo "[$(date -u +%T)] overwrite pass: the same $KEYS SETs again" >&2
    for i in 0 1 2; do
        [ -n "${RSS_SETTLED[$i]:-}" ] || RSS_SETTLED[i]=${RSS_LOADED[$i]}
    done
    o_start=$(date +%s%N)
    load_keys "$LOAD_PORT" "$TMP/load-over.log" "0:$KEYS"
    OVER_MS=$((($(date +%s%N) - o_start) / 1000000))
    OVER_ERRORS=$(load_errors "$TMP/load-over.log")
    wait_applied_settles
    for i in 0 1 2; do RSS_OVER[i]=$(rss_kib "${NODE_PIDS[$i]}"); done
    for i in 0 1 2; do
        INFO_LINES[i]=$(redis-cli -p $((BASE + i)) info 2>/dev/null | tr -d '\r' | grep -E '^shard' || true)
    done
fi
UPTIME_AFTER=$(uptime)
CLUSTER_ALIVE=$(cluster_alive)

# Redis reference: the same keys and values, no persistence.
if [ "$REDIS_REFERENCE" = 1 ]; then
    RPORT=$(free_port)
    mkdir -p "$TMP/redis"
    REDIS_CMD="redis-server --port $RPORT --bind 127.0.0.1 --dir $TMP/redis --appendonly no --save ''"
    redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$TMP/redis" --appendonly no --save '' \
        >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 200); do
        [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && break
        sleep 0.1
    done
    R_IDLE=$(rss_kib "$REDIS_PID")
    load_keys "$RPORT" "$TMP/redis-load.log" "0:$KEYS"
    R_DBSIZE=$(wait_dbsize "$RPORT" "$LOAD_TIMEOUT_S")
    R_RSS=$(rss_kib "$REDIS_PID")
    R_USED=$(redis-cli -p "$RPORT" info memory | tr -d '\r' | sed -n 's/^used_memory:\(.*\)/\1/p')
fi

RAW=$((KEYS * (KEY_BYTES + VALUE_BYTES)))
RAW_MIB=$(awk -v b="$RAW" 'BEGIN {printf "%.1f", b / 1048576}')
ratio_of() { awk -v k="$1" -v b="$RAW" 'BEGIN {printf "%.2f", k * 1024 / b}'; }

{
    echo "# corepax node memory with $KEYS keys — $STAMP"
    echo
    echo "$KEYS distinct keys \`key:%07d\` ($KEY_BYTES bytes) with $VALUE_BYTES-byte values, loaded"
    echo "through node $LOAD_NODE (port $LOAD_PORT) with $LOADERS pipelined connections."
    echo "Raw key + value bytes: $KEYS × ($KEY_BYTES + $VALUE_BYTES) = $RAW bytes"
    echo "($RAW_MIB MiB). Target from the issue: RSS ≤ 2× raw. RSS (VmRSS of /proc/PID/status) is"
    echo "read right after DBSIZE reached $KEYS on every node, and again ${SETTLE_S}s later."
    echo "Each key is one allocation (key, value and version packed); applied log entries stay in"
    echo "memory up to \`log_retain_bytes\` of keys and values (default 8 MiB), so this RSS holds"
    echo "the map, that much log, the Merkle tree and the runtime's buffers."
    echo
    echo "| node | role | DBSIZE | RSS idle MiB | RSS after load MiB | **RSS / raw** | RSS +${SETTLE_S}s MiB | RssAnon MiB | data dir MiB | RSS after overwrite MiB | RSS gained per overwriting SET, bytes |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for i in 0 1 2; do
        read -r idle _ _ <<<"${RSS_IDLE[$i]}"
        read -r rss _ anon <<<"${RSS_LOADED[$i]}"
        settled="-"
        base_kib=$rss
        if [ "$SETTLE_S" -gt 0 ]; then
            read -r s _ _ <<<"${RSS_SETTLED[$i]}"
            settled=$(mib "$s")
            base_kib=$s
        fi
        over="-"
        per_set="-"
        if [ "$OVERWRITE" = 1 ]; then
            read -r o _ _ <<<"${RSS_OVER[$i]}"
            over=$(mib "$o")
            per_set=$(awk -v a="$o" -v b="$base_kib" -v n="$KEYS" 'BEGIN {printf "%.0f", (a - b) * 1024 / n}')
        fi
        led=$(printf '%s\n' "${INFO_LINES[$i]}" | grep -c 'leading=1' || true)
        role="leads $led/$SHARDS shards"
        [ "$i" = "$LOAD_NODE" ] && role="$role, loaded through"
        echo "| $i | $role | ${DBSIZE[$i]} | $(mib "$idle") | $(mib "$rss") | **$(ratio_of "$rss")** | $settled | $(mib "$anon") | $(mib "${DISK[$i]}") | $over | $per_set |"
    done
    if [ "$REDIS_REFERENCE" = 1 ]; then
        read -r ridle _ _ <<<"$R_IDLE"
        read -r rrss _ ranon <<<"$R_RSS"
        echo "| redis-server (reference, no persistence) | - | $R_DBSIZE | $(mib "$ridle") | $(mib "$rrss") | $(ratio_of "$rrss") | - | $(mib "$ranon") | - | - | - |"
    fi
    echo
    echo "- DBSIZE on the node loaded through: $DBSIZE_LOAD (expected $KEYS)."
    echo "- Load: $LOAD_MS ms for $KEYS SETs ($(awk -v n="$KEYS" -v ms="$LOAD_MS" 'BEGIN {printf "%.0f", n * 1000 / (ms > 0 ? ms : 1)}') SET/s);"
    echo "  every node had applied all keys $(((APPLIED_END - LOAD_END) / 1000000)) ms after the load ended."
    echo "  Keys answered with an error: ${ERRORS1}$(grep -m1 'e\.g\.' "$TMP/load1.log" | sed 's/^ *e.g. / (e.g. /; s/$/)/' || true);"
    echo "  resent: $RETRIED."
    if [ "$OVERWRITE" = 1 ]; then
        echo "- Overwrite pass: the same $KEYS SETs again in $OVER_MS ms, $OVER_ERRORS keys answered"
        echo "  with an error. DBSIZE stays $KEYS and values keep their size, so the RSS gained is"
        echo "  what the bounded in-memory log, snapshots taken meanwhile and allocator slack keep per applied SET"
        echo "  (compare: $((KEY_BYTES + VALUE_BYTES)) bytes of key + value)."
    fi
    echo "- Cluster alive after the run: $CLUSTER_ALIVE."
    [ "$REDIS_REFERENCE" = 1 ] && echo "- redis-server used_memory after load: $R_USED bytes."
    echo
    echo "## Setup"
    echo
    echo "- corepax: \`$CLUSTER_CMD\` (temp dir), fsync on, default protocol settings;"
    echo "  INFO: \`$SETTINGS\`; every shard led after $(((LEADERS_NS - START_NS) / 1000000)) ms."
    printf '%s' "$LEADER_LINES" | sed 's/^/  - /'
    echo "- load: \`python3 loader.py $LOAD_PORT $VALUE_BYTES $LOADERS <failed-out> 0:$KEYS\` (this"
    echo "  script's raw-socket RESP loader: $LOADERS connections, 1000 pipelined \`SET key:%07d <value>\`"
    echo "  per write). Not \`redis-cli --pipe\`: corepax rejects the empty line it sends last."
    [ "$REDIS_REFERENCE" = 1 ] && echo "- redis reference: \`$REDIS_CMD\`, loaded the same way."
    echo "- $(redis-server --version)"
    echo "- corepax commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    echo "## Machine"
    echo
    echo "- nproc: $(nproc); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "- kernel: $(uname -r)"
    echo "- uptime before the load: \`$UPTIME_BEFORE\`"
    echo "- uptime after: \`$UPTIME_AFTER\`"
    echo "- The machine is shared with other agents compiling Rust (the load average is mostly"
    echo "  theirs): load time moves between runs; the memory figures do not depend on it."
    echo
    echo "Raw output (loader summaries, INFO of every node, /proc status): \`$(basename "$OUT_RAW")\`."
} >"$OUT_MD"

{
    echo "## loader summaries (corepax)"
    cat "$TMP/load1.log"
    [ -f "$TMP/load2.log" ] && { echo "## resent failed keys"; cat "$TMP/load2.log"; }
    [ -f "$TMP/load-over.log" ] && { echo "## overwrite pass"; cat "$TMP/load-over.log"; }
    for i in 0 1 2; do
        echo "## node $i pid ${NODE_PIDS[$i]}: VmRSS VmHWM RssAnon (KiB) idle / loaded / settled / overwritten"
        echo "${RSS_IDLE[$i]} / ${RSS_LOADED[$i]} / ${RSS_SETTLED[$i]:-} / ${RSS_OVER[$i]:-}"
        echo "## node $i INFO"
        echo "${INFO_LINES[$i]}"
        echo "## node $i /proc/PID/status"
        grep -E '^(Vm|Rss|Threads)' "/proc/${NODE_PIDS[$i]}/status" || true
    done
    if [ "$REDIS_REFERENCE" = 1 ]; then
        echo "## redis reference: VmRSS VmHWM RssAnon (KiB) idle / loaded"
        echo "$R_IDLE / $R_RSS"
        cat "$TMP/redis-load.log"
    fi
    echo "## cluster log (last 40 lines)"
    tail -n 40 "$TMP/cluster.log"
} >"$OUT_RAW"

cat "$OUT_MD"
echo >&2
echo "wrote $OUT_MD and $OUT_RAW" >&2
