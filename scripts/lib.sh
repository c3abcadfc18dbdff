# Shared by the scripts in scripts/: tools check, the corepax binary, free loopback ports, a
# local `corepax cluster` started in its own session, waited for (ready line, a leader for
# every shard, one SET) and stopped, and a pipelined RESP loader (write_loader, load_keys).
# Source it after `set -euo pipefail`; it defines functions and these variables:
#   BIN CLUSTER_PID CLUSTER_CMD BASE SHARDS START_NS READY_NS LEADERS_NS NODE_PIDS
#   LEAD_PORT LEAD_NODE LEADER_LINES LOADER_PY RB REDIS_PORT REDIS_PID

READY_TIMEOUT_S=${READY_TIMEOUT_S:-60}
CLUSTER_PID=""
NODE_PIDS=()

# begin_run NAME: sets STAMP, OUT_MD (results/NAME-STAMP.md), OUT_RAW (…-raw.txt), TMP (a new
# temp dir) and REDIS_PID (empty: a script that starts another server — redis-server, the
# floor example — stores its pid there while it runs), and traps exit and Ctrl-C so the
# cluster and that server are stopped and TMP removed.
begin_run() {
    STAMP=$(date -u +%Y%m%d-%H%M%S)
    mkdir -p results
    OUT_MD="results/$1-$STAMP.md"
    OUT_RAW="results/$1-$STAMP-raw.txt"
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/corepax-$1.XXXXXX")
    REDIS_PID=""
    trap end_run EXIT
    trap 'exit 130' INT TERM
}

# The exit trap of begin_run.
end_run() {
    local rc=$?
    stop_cluster
    stop_pids "$REDIS_PID"
    remove_tmp
    exit "$rc"
}

# Exits with a hint unless every named tool is on PATH.
require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || {
            echo "missing $tool (apt-get install -y redis-server redis-tools python3)" >&2
            exit 1
        }
    done
}

# Sets BIN to the absolute path of COREPAX_BIN (default target/release/corepax), building
# the release binary when it is missing.
resolve_bin() {
    BIN=${COREPAX_BIN:-target/release/corepax}
    if [ ! -x "$BIN" ]; then
        echo "building $BIN" >&2
        cargo build --release
    fi
    BIN=$(readlink -f "$BIN")
}

# Prints a free loopback port (the kernel picks it; it may be taken again before use, which
# only makes the server fail to start with a clear error).
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

# Prints the CPU time (user + system, clock ticks) the processes named by their pids have
# used so far, summed.
cpu_ticks() {
    local p t=0
    for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}

# Prints µs of CPU per request: cpu_us_per_op TICKS_BEFORE TICKS_AFTER REQUESTS.
cpu_us_per_op() {
    awk -v a="$1" -v b="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.2f", (b - a) / hz * 1e6 / n}'
}

# Waits until `redis-cli -p $1 PING` answers PONG, at most $2 seconds.
wait_ping() {
    local deadline=$((SECONDS + $2))
    until [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

# start_redis_always DIR [LOG]: the peer corepax is measured against, a redis-server with
# appendonly yes and appendfsync always, its data in DIR, on a free port, its output
# appended to LOG (default: discarded); waits for PING. Sets REDIS_PORT and REDIS_PID (the
# caller stops it: stop_pids "$REDIS_PID").
start_redis_always() {
    REDIS_PORT=$(free_port)
    mkdir -p "$1"
    redis-server --port "$REDIS_PORT" --save '' --appendonly yes --appendfsync always \
        --dir "$1" --daemonize no >>"${2:-/dev/null}" 2>&1 &
    REDIS_PID=$!
    wait_ping "$REDIS_PORT" 10
}

# start_scratch_cluster ARGS...: a local 3-replica cluster of BIN (1 shard, `corepax cluster`
# flags ARGS, e.g. "--read-mode leader-lease"), started as start_cluster does with its data
# and output in TMP (a new temp dir) and nothing printed; at exit it is stopped and TMP
# removed. For the measurement scripts under results/.
start_scratch_cluster() {
    TMP=$(mktemp -d)
    SHARDS=1 CLUSTER_ARGS="$*" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
    trap 'stop_cluster; rm -rf "$TMP"' EXIT
}

# start_named_cluster NAME DIR ARGS: a local 3-replica cluster of BIN (1 shard, `--read-mode
# leader-lease ARGS`) with its data and log under DIR, started as start_cluster does, for
# the results/ scripts that run two side by side; sets NAME_PID (stop it with
# CLUSTER_PID=$NAME_PID stop_cluster), NAME_PORT (its leader's client port) and NAME_NODES
# (its node pids, the leader first).
start_named_cluster() {
    local name=$1 dir=$2 i nodes
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease $3" start_cluster "$dir/$name" "$dir/$name.log" >/dev/null
    nodes="${NODE_PIDS[$LEAD_NODE]}"
    for i in 0 1 2; do [ "$i" = "$LEAD_NODE" ] || nodes+=" ${NODE_PIDS[$i]}"; done
    printf -v "${name}_PID" %s "$CLUSTER_PID"
    printf -v "${name}_PORT" %s "$LEAD_PORT"
    printf -v "${name}_NODES" %s "$nodes"
}

# bench_set_cpu NAME CLIENTS PIPELINE N: one `redis-benchmark -t set -r 100000` run against
# the leader of NAME's cluster (start_named_cluster); prints its SETs/s, p50, and each
# node's CPU (user + system, /proc) per SET, the leader first, and their total.
bench_set_cpu() {
    local name=$1 port nodes p line cpus="" total i=0
    port=${name}_PORT nodes=${name}_NODES
    local -a pids before=()
    read -r -a pids <<<"${!nodes}"
    for p in "${pids[@]}"; do before+=("$(cpu_ticks "$p")"); done
    line=$(redis-benchmark -p "${!port}" -c "$2" -P "$3" -n "$4" -r 100000 -t set -q 2>&1 |
        tr '\r' '\n' | grep "per second" | tail -1)
    for p in "${pids[@]}"; do
        cpus+=" $(cpu_us_per_op "${before[$i]}" "$(cpu_ticks "$p")" "$4")"
        i=$((i + 1))
    done
    total=$(echo "$cpus" | awk '{s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.2f", s}')
    printf '%s -c %-2s -P %-2s %10s SETs/s  p50 %s ms  CPU µs/SET (leader, followers)%s  total %s\n' \
        "$name" "$2" "$3" "$(echo "$line" | awk '{print $2}')" \
        "$(echo "$line" | sed -n 's/.*p50=\([0-9.]*\).*/\1/p')" "$cpus" "$total"
}

# One client's SETs on a fresh cluster, for tracing a request's path: TMP (a new temp dir)
# holds a local 3-replica cluster of BIN (1 shard, leader-lease, started as start_cluster
# does), `redis-benchmark -c 1 -P 1 -t set` runs against its leader in the background (RB:
# its pid; the caller kills it and stops the cluster), and 2 s pass for it to settle.
start_one_client_sets() {
    TMP=$(mktemp -d)
    SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
    redis-benchmark -p "$LEAD_PORT" -c 1 -P 1 -n 1000000 -r 100000 -t set -q >/dev/null &
    RB=$!
    sleep 2
}

# Starts `corepax cluster --replicas 3` with data under $1 and its output appended to $2,
# in its own session (so stop_cluster can signal the nodes too), on free ports. Shards per
# node: SHARDS if set, else the cluster's own default (cores ÷ replicas, at least 1), passed
# explicitly so the ports checked are the ports used; CLUSTER_ARGS, if set, is appended
# (e.g. "--read-mode leader-lease"). Waits for the ready line, a leader
# for every shard and one successful SET; then finds the node processes (NODE_PIDS) and the
# node leading the most shards (LEAD_PORT, LEAD_NODE; LEADER_LINES describes all).
start_cluster() {
    local data=$1 log=$2 deadline i c pid led best=-1
    if [ -z "${SHARDS:-}" ]; then
        SHARDS=$(($(nproc) / 3))
        [ "$SHARDS" -ge 1 ] || SHARDS=1
    fi
    BASE=$(free_cluster_base 3 "$SHARDS")
    CLUSTER_CMD="$BIN cluster --replicas 3 --base-port $BASE --shards $SHARDS --data $data${CLUSTER_ARGS:+ $CLUSTER_ARGS}"
    echo "starting: $CLUSTER_CMD" >&2
    START_NS=$(date +%s%N)
    : >"$log" # exists before the wait loop greps it
    local -a argv
    read -r -a argv <<<"$CLUSTER_CMD" # no spaces in its paths: mktemp's name
    setsid "${argv[@]}" >>"$log" 2>&1 &
    CLUSTER_PID=$!
    deadline=$((SECONDS + READY_TIMEOUT_S))
    until grep -q '^ready: ' "$log"; do
        if ! kill -0 "$CLUSTER_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            echo "cluster did not become ready; log:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.05
    done
    READY_NS=$(date +%s%N)
    until leaders_ready; do
        if [ $SECONDS -ge $deadline ]; then
            echo "not every shard elected a leader within ${READY_TIMEOUT_S}s; log:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
    until [ "$(redis-cli -p "$BASE" set corepax:probe 1 2>/dev/null)" = OK ]; do
        [ $SECONDS -lt $deadline ] || { echo "SET never succeeded" >&2; exit 1; }
        sleep 0.1
    done
    redis-cli -p "$BASE" del corepax:probe >/dev/null 2>&1 || true
    LEADERS_NS=$(date +%s%N)
    # The `corepax node` children of the cluster, in replica order (`corepax cluster`
    # starts replica i as `node --config DIR/node-i.toml`).
    NODE_PIDS=()
    for i in 0 1 2; do
        pid=""
        for c in $(pgrep -P "$CLUSTER_PID" -f "corepax node" || true); do
            if tr '\0' ' ' <"/proc/$c/cmdline" | grep -q -- "/node-$i.toml "; then pid=$c; fi
        done
        [ -n "$pid" ] || { echo "no process found for node $i" >&2; exit 1; }
        NODE_PIDS+=("$pid")
    done
    LEAD_PORT=$BASE
    LEAD_NODE=0
    LEADER_LINES=""
    for i in 0 1 2; do
        led=$(redis-cli -p $((BASE + i)) info | tr -d '\r' | sed -n 's/^shards_led://p')
        LEADER_LINES+="node $i (port $((BASE + i)), pid ${NODE_PIDS[$i]}): shards_led=$led"$'\n'
        if [ "$led" -gt "$best" ]; then
            best=$led
            LEAD_PORT=$((BASE + i))
            LEAD_NODE=$i
        fi
    done
}

# True once, for every shard K, some node's INFO says shardK:leading=1.
leaders_ready() {
    local all="" i led
    for i in 0 1 2; do
        all+=$(redis-cli -p $((BASE + i)) info 2>/dev/null | tr -d '\r' | grep -E '^shard[0-9]+:leading=1' || true)
        all+=$'\n'
    done
    led=$(printf '%s' "$all" | grep -oE '^shard[0-9]+' | sort -u | wc -l)
    [ "$led" -ge "$SHARDS" ]
}

# Prints "yes", or what died: the cluster keeps running while a majority of nodes does,
# so every node is checked, not only the cluster process.
cluster_alive() {
    local dead="" i
    kill -0 "$CLUSTER_PID" 2>/dev/null || dead+=" the cluster process"
    for i in "${!NODE_PIDS[@]}"; do
        kill -0 "${NODE_PIDS[$i]}" 2>/dev/null || dead+=" node $i"
    done
    if [ -z "$dead" ]; then echo yes; else echo "NO: exited during the run:$dead"; fi
}

# SIGTERM to the cluster's session (nodes included), SIGKILL after 10 s. For traps.
stop_cluster() {
    if [ -n "$CLUSTER_PID" ] && kill -0 "$CLUSTER_PID" 2>/dev/null; then
        kill -TERM -- "-$CLUSTER_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$CLUSTER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$CLUSTER_PID" 2>/dev/null || true
    fi
}

# stop_pids PID...: asks each process to stop (TERM), gives it 5 s, then kills it. Empty
# arguments are skipped.
stop_pids() {
    local pid
    for pid in "$@"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        [ -n "$pid" ] || continue
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

# remove_tmp: deletes $TMP, unless KEEP_TMP=1 (then says where it is).
remove_tmp() {
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}

# A pipelined RESP loader on raw sockets: `SET key:%07d <value>` over `conns` connections
# (threads), BATCH commands per write, then all their replies read. The keys are the range
# lo:hi, or @FILE (one key number a line). Numbers of keys answered with an error go to
# failed_out, so that a retry resends only those. Each value is VALUE_BYTES bytes starting
# with the key's number, so every value differs.
# (Not redis-cli --pipe: it ends its stream with an empty inline line, "\r\n", which Redis
# ignores but corepax answers with "ERR Protocol error: empty inline command" and a close.)
# write_loader PATH: writes the loader to PATH and sets LOADER_PY.
write_loader() {
    LOADER_PY=$1
    cat >"$LOADER_PY" <<'EOF'
import socket, sys, threading, time
port, vlen, conns = (int(a) for a in sys.argv[1:4])
failed_out, spec = sys.argv[4], sys.argv[5]
BATCH = 1000          # commands per write; their replies are read before the next write
RECV_TIMEOUT_S = 60   # a silent server fails the load instead of hanging it
if spec.startswith("@"):
    with open(spec[1:]) as f:
        keys = [int(x) for x in f.read().split()]
else:
    lo, hi = (int(x) for x in spec.split(":"))
    keys = range(lo, hi)
pad = b"x" * vlen
lock = threading.Lock()
totals = {"replies": 0, "errors": 0, "failed": 0}
failed_keys = []
samples = []

def cmd(i):
    k = b"key:%07d" % i
    v = (b"v%07d" % i + pad)[:vlen]
    return b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)

def worker(part):
    replies = errors = 0
    bad = []
    pos = 0
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=RECV_TIMEOUT_S)
        buf = b""
        for pos in range(0, len(part), BATCH):
            batch = part[pos:pos + BATCH]
            s.sendall(b"".join(cmd(i) for i in batch))
            got = 0
            while got < len(batch):
                # A reply to SET is one line: +OK, or -ERR ... (a simple error).
                while got < len(batch) and b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if not line.startswith(b"+"):
                        errors += 1
                        bad.append(batch[got])
                        with lock:
                            if len(samples) < 5:
                                samples.append(line[:200].decode("utf-8", "replace"))
                    got += 1
                if got < len(batch):
                    d = s.recv(1 << 16)
                    if not d:
                        raise ConnectionError("server closed the connection")
                    buf += d
            replies += got
        pos = len(part)
        s.close()
    except Exception as e:
        bad.extend(part[pos:])  # the unanswered rest of this connection's keys
        with lock:
            totals["failed"] += 1
            samples.append("connection failed: %r" % (e,))
    with lock:
        totals["replies"] += replies
        totals["errors"] += errors
        failed_keys.extend(bad)

t0 = time.time()
ts = []
for j in range(conns):
    part = keys[len(keys) * j // conns:len(keys) * (j + 1) // conns]
    t = threading.Thread(target=worker, args=(part,))
    t.start()
    ts.append(t)
for t in ts:
    t.join()
with open(failed_out, "w") as f:
    f.write("".join("%d\n" % i for i in sorted(set(failed_keys))))
print("sent=%d replies=%d errors=%d failed_connections=%d seconds=%.1f" %
      (len(keys), totals["replies"], totals["errors"], totals["failed"], time.time() - t0))
for m in samples:
    print("  e.g. " + m)
sys.exit(0 if totals["failed"] == 0 else 1)
EOF
}

# Sends SETs (VALUE_BYTES each, bounded by LOAD_TIMEOUT_S) through port $1 with LOADERS
# pipelined connections: keys `$3` (lo:hi or @FILE); the loader's summary goes to $2, the
# numbers of failed keys to $2.failed. Failures are counted, not fatal here: the caller
# checks them and DBSIZE.
load_keys() {
    timeout "$LOAD_TIMEOUT_S" python3 "$LOADER_PY" "$1" "$VALUE_BYTES" "$LOADERS" "$2.failed" "$3" \
        >"$2" 2>&1 || echo "loader exit status $?" >>"$2"
    [ -f "$2.failed" ] || : >"$2.failed"
}

# Errors plus failed connections in the loader summary $1.
load_errors() {
    { grep -oE '(errors|failed_connections)=[0-9]+' "$1" || true; } |
        cut -d= -f2 | awk '{s += $1} END {print s + 0}'
}
