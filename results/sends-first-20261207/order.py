"""Reads an ftrace of order.sh: finds the leader's thread (the one that wakes
redis-benchmark most), and for each client request it received (recvfrom of 45 bytes:
one SET) says which came first, its WAL write's io_uring submission (W) or a sendto (S,
the first accept), and how long after the request the first send began."""
import collections
import re
import sys

LINE = re.compile(r"^\s*(\S+)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+): (\w+): (.*)")
SENDTO, RECVFROM = "44", "45"
lines = open(sys.argv[1], errors="replace").read().splitlines()
wakers = collections.Counter()
for line in lines:
    m = LINE.match(line)
    if m and m.group(4) == "sched_wakeup" and "comm=redis-benchmark" in m.group(5):
        if m.group(2) != "0":
            wakers[m.group(2)] += 1
leader = wakers.most_common(1)[0][0]
events = []
for line in lines:
    m = LINE.match(line)
    if not m or m.group(2) != leader:
        continue
    t, ev, rest = float(m.group(3)), m.group(4), m.group(5)
    fields = rest.replace(",", " ").split()
    if ev == "io_uring_submit_req" and "WRITE_FIXED" in rest:
        events.append((t, "W"))
    elif ev == "sys_exit" and fields[1] == RECVFROM and fields[-1] == "45":
        events.append((t, "R"))
    elif ev == "sys_enter" and fields[1] == SENDTO:
        events.append((t, "S"))
first = collections.Counter()
to_send = []
for i, (t, kind) in enumerate(events):
    if kind != "R":
        continue
    later = [e for e in events[i + 1 :] if e[1] in "WS"]
    if later:
        first[later[0][1]] += 1
    sends = [e for e in events[i + 1 :] if e[1] == "S"]
    if sends:
        to_send.append((sends[0][0] - t) * 1e6)
to_send.sort()
print(
    "leader thread %s: %d requests; write first %d, sends first %d; request to first send p50 %.0f us"
    % (leader, sum(first.values()), first["W"], first["S"], to_send[len(to_send) // 2])
)
