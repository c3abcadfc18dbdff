#!/usr/bin/env bash
# Memory of idle client connections: starts one `corepax node` (1 replica, 2 shards, on
# free loopback ports), reads its RSS, opens CONNS connections that each send one PING
# and read the PONG (so every connection has read and written once) and stay open, reads
# the RSS again, closes them all, waits, reads it a third time.
#
# Usage: scripts/idle-connections-memory.sh
#   CONNS=2000                         connections
#   ECHO_BYTES=0                       if > 0, each connection sends an ECHO of this many
#                                      bytes instead of PING (its buffers grow, then idle)
#   COREPAX_BIN=target/ci/corepax      the node binary
# Prints one line per step and the bytes per connection.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNS=${CONNS:-2000}
ECHO_BYTES=${ECHO_BYTES:-0}
BIN=${COREPAX_BIN:-target/ci/corepax}
TMP=$(mktemp -d)
trap 'kill "$NODE" 2>/dev/null || true; wait "$NODE" 2>/dev/null || true; rm -rf "$TMP"' EXIT

read -r CLIENT PEER < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
"$BIN" node --id 0 --client-addr "127.0.0.1:$CLIENT" --peers "127.0.0.1:$PEER" \
    --data "$TMP/data" --shards 2 --no-pin 2>"$TMP/node.log" >/dev/null &
NODE=$!
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $CLIENT)).close()" \
        2>/dev/null && break
    sleep 0.1
done
sleep 1
rss() { awk '/VmRSS/ {print $2}' "/proc/$NODE/status"; }

python3 - "$CLIENT" "$CONNS" "$NODE" "$ECHO_BYTES" <<'PY'
import socket, sys, time
port, n, pid, echo = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if echo:
    request = b"*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n" % (echo, b"e" * echo)
    reply = b"$%d\r\n%s\r\n" % (echo, b"e" * echo)
else:
    request, reply = b"PING\r\n", b"+PONG\r\n"
def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
before = rss_kb()
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request)
    conns.append(s)
for s in conns:
    got = b""
    while len(got) < len(reply):
        got += s.recv(1 << 16)
    assert got == reply, got[:64]
time.sleep(1)
opened = rss_kb()
for s in conns:
    s.close()
time.sleep(2)
closed = rss_kb()
print(f"RSS before: {before} KiB")
print(f"RSS with {n} idle connections: {opened} KiB")
print(f"RSS after closing them: {closed} KiB")
print(f"per idle connection: {(opened - before) * 1024 / n:.0f} bytes")
PY
