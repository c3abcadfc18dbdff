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
#   SETTLE_S=10         seconds to wait before a second RSS reading (0: skip)
#   REDIS_REFERENCE=1   also measure redis-server with the same data (0: skip)
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
REDIS_REFERENCE=${REDIS_REFERENCE:-1}
READY_TIMEOUT_S=60
BIN=${COREPAX_BIN:-target/release/corepax}
KEY_BYTES=11 # len("key:%07d")

[ "$KEYS" -ge 1 ] && [ "$KEYS" -le 10000000 ] || { echo "KEYS must be 1..=10000000" >&2; exit 1; }
for tool in redis-server redis-cli python3 setsid timeout; do
    command -v "$tool" >/dev/null || {
        echo "missing $tool (apt-get install -y redis-server redis-tools python3)" >&2
        exit 1
    }
done
if [ ! -x "$BIN" ]; then
    echo "building $BIN" >&2
    cargo build --release
fi
BIN=$(readlink -f "$BIN")

STAMP=$(date -u +%Y%m%d-%H%M%S)
mkdir -p results
OUT_MD="results/node-memory-$STAMP.md"
OUT_RAW="results/node-memory-$STAMP-raw.txt"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/corepax-memory.XXXXXX")
CLUSTER_PID=""
REDIS_PID=""

cleanup() {
    local rc=$?
    # The cluster runs in its own session (setsid): signal the whole group, nodes included.
    if [ -n "$CLUSTER_PID" ] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
        kill -TERM -- "-$CLUSTER_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$CLUSTER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$CLUSTER_PID" 2>/dev/null || true
    fi
    if [ -n "$REDIS_PID" ]; then
        kill -TERM "$REDIS_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$REDIS_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$REDIS_PID" 2>/dev/null || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Prints a base port B such that B..B+replicas-1 (client ports) and the peer ports
# B+1000+64*i+shard for every replica i and shard are all free right now.
free_cluster_base() {
    python3 - "$1" "$2" <<'EOF'
import random, socket, sys
replicas, shards = int(sys.argv[1]), int(sys.argv[2])
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(200):
    b = random.randrange(20000, 40000)
    ports = [b + i for i in range(replicas)]
    ports += [b + 1000 + 64 * i + k for i in range(replicas) for k in range(shards)]
    if all(free(p) for p in ports):
        print(b)
        sys.exit(0)
sys.exit("no free port range found")
EOF
}

# A pipelined RESP loader on raw sockets: `SET key:%07d <value>` for keys [lo, hi) over
# `conns` connections (threads), BATCH commands per write, then all their replies read.
# Each value is VALUE_BYTES bytes starting with the key's number, so every value differs.
# (Not redis-cli --pipe: it ends its stream with an empty inline line, "\r\n", which Redis
# ignores but corepax answers with "ERR Protocol error: empty inline command" and a close.)
LOADER_PY=$TMP/loader.py
cat >"$LOADER_PY" <<'EOF'
import socket, sys, threading, time
port, lo, hi, vlen, conns = (int(a) for a in sys.argv[1:6])
BATCH = 1000          # commands per write; their replies are read before the next write
RECV_TIMEOUT_S = 60   # a silent server fails the load instead of hanging it
pad = b"x" * vlen
lock = threading.Lock()
totals = {"replies": 0, "errors": 0, "failed": 0}
samples = []

def cmd(i):
    k = b"key:%07d" % i
    v = (b"v%07d" % i + pad)[:vlen]
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)

def worker(a, b):
    replies = errors = 0
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=RECV_TIMEOUT_S)
        buf = b""
        for start in range(a, b, BATCH):
            n = min(BATCH, b - start)
            s.sendall(b"".join(cmd(i) for i in range(start, start + n)))
            got = 0
            while got < n:
                # A reply to SET is one line: +OK, or -ERR ... (a simple error).
                while got < n and b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    got += 1
                    if not line.startswith(b"+"):
                        errors += 1
                        with lock:
                            if len(samples) < 5:
                                samples.append(line[:200].decode("utf-8", "replace"))
                if got < n:
                    d = s.recv(1 << 16)
                    if not d:
                        raise ConnectionError("server closed the connection")
                    buf += d
            replies += got
        s.close()
    except Exception as e:
        with lock:
            totals["failed"] += 1
            samples.append("connection failed: %r" % (e,))
    with lock:
        totals["replies"] += replies
        totals["errors"] += errors

t0 = time.time()
ts = []
for j in range(conns):
    a = lo + (hi - lo) * j // conns
    b = lo + (hi - lo) * (j + 1) // conns
    t = threading.Thread(target=worker, args=(a, b))
    t.start()
    ts.append(t)
for t in ts:
    t.join()
print("sent=%d replies=%d errors=%d failed_connections=%d seconds=%.1f" %
      (hi - lo, totals["replies"], totals["errors"], totals["failed"], time.time() - t0))
for m in samples:
    print("  e.g. " + m)
sys.exit(0 if totals["failed"] == 0 else 1)
EOF

# Loads every key through port $1 with LOADERS pipelined connections; the loader's summary
# goes to $2. Failures are counted, not fatal here: the caller checks them and DBSIZE.
load_keys() {
    timeout "$LOAD_TIMEOUT_S" python3 "$LOADER_PY" "$1" 0 "$KEYS" "$VALUE_BYTES" "$LOADERS" >"$2" 2>&1 ||
        echo "loader exit status $?" >>"$2"
}

# Errors plus failed connections in the loader summary $1.
load_errors() {
    { grep -oE '(errors|failed_connections)=[0-9]+' "$1" || true; } |
        cut -d= -f2 | awk '{s += $1} END {print s + 0}'
}

# Waits until DBSIZE on port $1 reaches KEYS; prints the last value seen.
wait_dbsize() {
    local deadline=$((SECONDS + LOAD_TIMEOUT_S)) n=""
    while :; do
        n=$(redis-cli -p "$1" dbsize 2>/dev/null || echo "")
        if [ "$n" = "$KEYS" ] || [ $SECONDS -ge $deadline ]; then
            echo "${n:-none}"
            return
        fi
        sleep 0.5
    done
}

# "VmRSS VmHWM RssAnon" of PID $1 in KiB.
rss_kib() {
    awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} /^RssAnon:/ {a=$2} END {print r, h, a}' "/proc/$1/status"
}

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

SHARDS=$(nproc)
BASE=$(free_cluster_base 3 "$SHARDS")
CLUSTER_CMD="$BIN cluster --replicas 3 --base-port $BASE --data $TMP/corepax"
echo "starting: $CLUSTER_CMD" >&2
START_NS=$(date +%s%N)
setsid $CLUSTER_CMD >"$TMP/cluster.log" 2>&1 &
CLUSTER_PID=$!
deadline=$((SECONDS + READY_TIMEOUT_S))
until grep -q '^ready: ' "$TMP/cluster.log"; do
    if ! kill -0 "$CLUSTER_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        echo "cluster did not become ready; log:" >&2
        cat "$TMP/cluster.log" >&2
        exit 1
    fi
    sleep 0.05
done

# Node PIDs: the `corepax node` children of the cluster process, in replica order (each
# node's command line carries `--id i`).
NODE_PIDS=()
for i in 0 1 2; do
    pid=""
    for c in $(pgrep -P "$CLUSTER_PID" -f "corepax node" || true); do
        if tr '\0' ' ' <"/proc/$c/cmdline" | grep -q -- "--id $i "; then pid=$c; fi
    done
    [ -n "$pid" ] || { echo "no process found for node $i" >&2; exit 1; }
    NODE_PIDS+=("$pid")
done

# Every shard needs a leader; then a first SET (of the first key of the data set) must pass.
leaders_ready() {
    local all="" led
    for i in 0 1 2; do
        all+=$(redis-cli -p $((BASE + i)) info 2>/dev/null | tr -d '\r' | grep -E '^shard[0-9]+:leading=1' || true)
        all+=$'\n'
    done
    led=$(printf '%s' "$all" | grep -oE '^shard[0-9]+' | sort -u | wc -l)
    [ "$led" -ge "$SHARDS" ]
}
until leaders_ready; do
    [ $SECONDS -lt $deadline ] || { echo "no leader for every shard" >&2; cat "$TMP/cluster.log" >&2; exit 1; }
    sleep 0.1
done
FIRST_VALUE=$(python3 -c "import sys; print(('v%07d' % 0 + 'x' * $VALUE_BYTES)[:$VALUE_BYTES])")
until [ "$(redis-cli -p "$BASE" set key:0000000 "$FIRST_VALUE" 2>/dev/null)" = OK ]; do
    [ $SECONDS -lt $deadline ] || { echo "SET never succeeded" >&2; exit 1; }
    sleep 0.1
done
LEADERS_NS=$(date +%s%N)

# Load through the node leading the most shards (fewest forwards).
LOAD_PORT=$BASE
LOAD_NODE=0
best=-1
LEADER_LINES=""
for i in 0 1 2; do
    led=$(redis-cli -p $((BASE + i)) info | tr -d '\r' | sed -n 's/^shards_led://p')
    LEADER_LINES+="node $i (port $((BASE + i)), pid ${NODE_PIDS[$i]}): shards_led=$led"$'\n'
    if [ "$led" -gt "$best" ]; then
        best=$led
        LOAD_PORT=$((BASE + i))
        LOAD_NODE=$i
    fi
done
SETTINGS=$(redis-cli -p "$LOAD_PORT" info | tr -d '\r' |
    grep -E '^(shards|replicas|fsync|read_mode|batch_max|pipeline_depth):' | paste -sd' ')

declare -a RSS_IDLE
for i in 0 1 2; do RSS_IDLE[$i]=$(rss_kib "${NODE_PIDS[$i]}"); done

UPTIME_BEFORE=$(uptime)
echo "[$(date -u +%T)] loading $KEYS keys through node $LOAD_NODE (port $LOAD_PORT), $LOADERS connections" >&2
LOAD_START=$(date +%s%N)
load_keys "$LOAD_PORT" "$TMP/load1.log"
LOAD_END=$(date +%s%N)
ERRORS1=$(load_errors "$TMP/load1.log")
RELOADED=no
if [ "$ERRORS1" -gt 0 ]; then
    # SET is idempotent: a second pass fills in whatever failed (timeouts under load).
    echo "  $ERRORS1 errors in the load; loading again once" >&2
    RELOADED="yes ($ERRORS1 errors in the first pass)"
    load_keys "$LOAD_PORT" "$TMP/load2.log"
    LOAD_END=$(date +%s%N)
fi
LOAD_MS=$(((LOAD_END - LOAD_START) / 1000000))
echo "[$(date -u +%T)] load done in $LOAD_MS ms; waiting for DBSIZE = $KEYS" >&2
DBSIZE_LOAD=$(wait_dbsize "$LOAD_PORT")
declare -a DBSIZE RSS_LOADED RSS_SETTLED INFO_LINES DISK
for i in 0 1 2; do DBSIZE[$i]=$(wait_dbsize $((BASE + i))); done
APPLIED_END=$(date +%s%N)
for i in 0 1 2; do RSS_LOADED[$i]=$(rss_kib "${NODE_PIDS[$i]}"); done
echo "[$(date -u +%T)] DBSIZE ${DBSIZE[*]}; RSS read" >&2
if [ "$SETTLE_S" -gt 0 ]; then
    sleep "$SETTLE_S"
    for i in 0 1 2; do RSS_SETTLED[$i]=$(rss_kib "${NODE_PIDS[$i]}"); done
fi
for i in 0 1 2; do
    INFO_LINES[$i]=$(redis-cli -p $((BASE + i)) info 2>/dev/null | tr -d '\r' | grep -E '^shard' || true)
    DISK[$i]=$(du -sk "$TMP/corepax/node-$i" | cut -f1)
done
UPTIME_AFTER=$(uptime)
CLUSTER_ALIVE=yes
kill -0 "$CLUSTER_PID" 2>/dev/null || CLUSTER_ALIVE="NO: the cluster exited during the run"

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
    load_keys "$RPORT" "$TMP/redis-load.log"
    R_DBSIZE=$(wait_dbsize "$RPORT")
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
    echo "($RAW_MIB MiB). Target from the issue: RSS ≤ 2× raw. RSS is read from /proc/PID/status"
    echo "right after DBSIZE reached $KEYS on every node (and again ${SETTLE_S}s later)."
    echo
    echo "| node | role | DBSIZE | RSS idle MiB | RSS after load MiB | RSS / raw | RSS +${SETTLE_S}s MiB | peak (VmHWM) MiB | RssAnon MiB | (RSS − idle) / raw | data dir MiB |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for i in 0 1 2; do
        read -r idle _ _ <<<"${RSS_IDLE[$i]}"
        read -r rss hwm anon <<<"${RSS_LOADED[$i]}"
        settled="-"
        if [ "$SETTLE_S" -gt 0 ]; then read -r s _ _ <<<"${RSS_SETTLED[$i]}"; settled=$(mib "$s"); fi
        led=$(printf '%s\n' "${INFO_LINES[$i]}" | grep -c 'leading=1' || true)
        role="leads $led/$SHARDS shards"
        [ "$i" = "$LOAD_NODE" ] && role="$role, loaded through"
        echo "| $i | $role | ${DBSIZE[$i]} | $(mib "$idle") | $(mib "$rss") | $(ratio_of "$rss") | $settled | $(mib "$hwm") | $(mib "$anon") | $(ratio_of $((rss - idle))) | $(mib "${DISK[$i]}") |"
    done
    if [ "$REDIS_REFERENCE" = 1 ]; then
        read -r ridle _ _ <<<"$R_IDLE"
        read -r rrss rhwm ranon <<<"$R_RSS"
        echo "| redis-server (reference, no persistence) | - | $R_DBSIZE | $(mib "$ridle") | $(mib "$rrss") | $(ratio_of "$rrss") | - | $(mib "$rhwm") | $(mib "$ranon") | $(ratio_of $((rrss - ridle))) | - |"
    fi
    echo
    echo "- DBSIZE on the node loaded through: $DBSIZE_LOAD (expected $KEYS)."
    echo "- Load: $LOAD_MS ms for $KEYS SETs ($(awk -v n="$KEYS" -v ms="$LOAD_MS" 'BEGIN {printf "%.0f", n * 1000 / ms}') SET/s);"
    echo "  every node applied all keys $(((APPLIED_END - LOAD_END) / 1000000)) ms after the load ended."
    echo "  Errors in the first pass: $ERRORS1; loaded a second time: $RELOADED."
    echo "- Cluster alive after the run: $CLUSTER_ALIVE."
    [ "$REDIS_REFERENCE" = 1 ] && echo "- redis-server used_memory after load: $R_USED bytes."
    echo
    echo "## Setup"
    echo
    echo "- corepax: \`$CLUSTER_CMD\` (temp dir), fsync on, default protocol settings;"
    echo "  INFO: \`$SETTINGS\`; every shard led after $(((LEADERS_NS - START_NS) / 1000000)) ms."
    printf '%s' "$LEADER_LINES" | sed 's/^/  - /'
    echo "- load: \`python3 loader.py $LOAD_PORT 0 $KEYS $VALUE_BYTES $LOADERS\` (this script's"
    echo "  raw-socket RESP loader: $LOADERS connections, 1000 pipelined \`SET key:%07d <value>\` per"
    echo "  write). Not \`redis-cli --pipe\`: corepax rejects the empty line it sends last (see README)."
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
    [ -f "$TMP/load2.log" ] && { echo "## second pass"; cat "$TMP/load2.log"; }
    for i in 0 1 2; do
        echo "## node $i pid ${NODE_PIDS[$i]}: VmRSS VmHWM RssAnon (KiB) idle / loaded / settled"
        echo "${RSS_IDLE[$i]} / ${RSS_LOADED[$i]} / ${RSS_SETTLED[$i]:-}"
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
