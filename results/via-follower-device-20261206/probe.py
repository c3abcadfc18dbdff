# One client's SETs, one at a time, each timed: writes "start latency" per request (ns,
# the start in CLOCK_MONOTONIC, as ftrace's mono clock) and prints percentiles (µs).
#   python3 probe.py PORT N OUT
import random
import socket
import sys
import time

port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rows = []
for _ in range(n):
    k = b"key:%012d" % random.randrange(100000)
    msg = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n" % (len(k), k)
    a = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    s.sendall(msg)
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(64)
    rows.append((a, time.clock_gettime_ns(time.CLOCK_MONOTONIC) - a))
with open(out, "w") as f:
    f.writelines("%d %d\n" % r for r in rows)
lat = sorted(d for _, d in rows)
q = lambda p: lat[int(p * len(lat))] / 1000
print("n=%d p50=%.0f p90=%.0f p99=%.0f p999=%.0f max=%.0f us"
      % (n, q(.5), q(.9), q(.99), q(.999), lat[-1] / 1000))
