#!/usr/bin/env bash
# Where two cores go: corepax (3 replicas, 1 shard, leader-lease, fsync on) and redis-server
# (appendfsync always), the same redis-benchmark runs, interleaved ROUNDS times. Per run:
# req/s, the servers' CPU per request (corepax: the three replicas together), the
# benchmark client's own CPU per request (getrusage of the child), the machine's busy share
# (all of it / wall time / nproc), and the ceiling a CPU-bound run has on this machine:
# nproc cores / (servers + client) CPU per request.
set -euo pipefail
cd /work/main
. scripts/lib.sh
TMP=$(mktemp -d)
COREPAX_BIN=${COREPAX_BIN:-target/release/corepax}; resolve_bin
SHARDS=1 CLUSTER_ARGS="--read-mode leader-lease" start_cluster "$TMP/d" "$TMP/c.log" >/dev/null 2>&1
CP_PORT=$LEAD_PORT; CP_PIDS="${NODE_PIDS[*]}"
RPORT=$(free_port); mkdir -p "$TMP/redis"
redis-server --port "$RPORT" --save '' --appendonly yes --appendfsync always --dir "$TMP/redis" --daemonize no >/dev/null 2>&1 &
RPID=$!; wait_ping "$RPORT" 10
NPROC=$(nproc)
run() { # name port "pids" args...
  local name=$1 port=$2 pids=$3; shift 3
  local a b n
  a=$(cpu_ticks $pids)
  read -r wall user sys rps < <(python3 - "$port" "$@" <<'PY'
import resource, subprocess, sys, time
port, args = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
out = subprocess.run(["redis-benchmark", "-p", port, *args, "--csv"], capture_output=True, text=True).stdout
wall = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
rps = out.strip().splitlines()[-1].split(",")[1].strip('"')
print(wall, ru.ru_utime, ru.ru_stime, rps)
PY
)
  b=$(cpu_ticks $pids)
  n=$(echo "$@" | sed -E 's/.*-n ([0-9]+).*/\1/')
  python3 - "$name" "$*" "$a" "$b" "$(getconf CLK_TCK)" "$n" "$wall" "$user" "$sys" "$rps" "$NPROC" <<'PY'
import sys
name, args, a, b, hz, n, wall, user, sys_, rps, nproc = sys.argv[1:]
a, b, hz, n, wall, user, sys_, rps, nproc = int(a), int(b), int(hz), int(n), float(wall), float(user), float(sys_), float(rps), int(nproc)
server = (b - a) / hz * 1e6 / n
client = (user + sys_) * 1e6 / n
busy = ((b - a) / hz + user + sys_) / wall / nproc
ceiling = nproc * 1e6 / (server + client)
print(f"| {name} | {args} | {rps:.0f} | {server:.2f} | {client:.2f} | {server+client:.2f} | {busy*100:.0f} % | {ceiling:.0f} | {rps/ceiling:.2f} |")
PY
}
echo "| target | redis-benchmark | req/s | servers' CPU µs/req | client's CPU µs/req | total | machine busy | CPU ceiling req/s | req/s ÷ ceiling |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for r in $(seq ${ROUNDS:-2}); do
  for t in "-c 50 -P 16 -n ${N2:-600000} -r 100000 -t set" "-c 50 -P 16 -n ${N2:-600000} -r 100000 -t get" "-c 50 -P 1 -n ${N3:-100000} -r 100000 -t set"; do
    run corepax $CP_PORT "$CP_PIDS" $t
    run redis-always $RPORT "$RPID" $t
  done
done
kill $RPID; kill -TERM -- -$CLUSTER_PID 2>/dev/null || true; sleep 1; rm -rf $TMP
