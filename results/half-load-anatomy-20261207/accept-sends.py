#!/usr/bin/env python3
"""The leader's two accept sends of each one-client request, from an ftrace of
accept-sends.sh: how long the first send took, the time from its end to the second's
start, and the request's latency (the client's send to its read of the reply) for the
requests in which the leader was switched out between its two sends against the rest.

    accept-sends.py TRACE LEADER_TID"""
import bisect
import re
import sys

LINE = re.compile(r"^\s*(.+)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(\w+):\s*(.*)$")
ACCEPT_BYTES_MIN = 40  # an accept frame; the client's reply (+OK) is 5 bytes
GAP_SWITCHED_US = 20  # a gap this long: the leader was switched out between its sends


def quantiles(v):
    v = sorted(v)
    if not v:
        return "n=0"
    return (f"n={len(v)} p10 {v[len(v) // 10]:.0f} p50 {v[len(v) // 2]:.0f} "
            f"p90 {v[len(v) * 9 // 10]:.0f} mean {sum(v) / len(v):.0f}")


def main():
    path, leader = sys.argv[1], sys.argv[2]
    ev = []
    for line in open(path):
        m = LINE.match(line)
        if m:
            comm, tid, _cpu, ts, name, rest = m.groups()
            ev.append((float(ts) * 1e6, comm.strip(), tid, name, rest))
    client = [e for e in ev if e[1].startswith("redis-bench")]
    sends = [e[0] for e in client if e[3] == "sys_enter" and e[4].split()[1] in ("1", "44")]
    reads = [e[0] for e in client if e[3] == "sys_exit" and e[4].split()[1] in ("0", "45")
             and not e[4].endswith("= -11")]
    accepts, i = [], 0
    while i < len(ev):
        t, _, tid, name, rest = ev[i]
        if tid == leader and name == "sys_enter" and rest.startswith("NR 44 "):
            j = i + 1
            while j < len(ev) and not (ev[j][2] == leader and ev[j][3] == "sys_exit"):
                j += 1
            if j < len(ev) and int(ev[j][4].split("=")[1]) >= ACCEPT_BYTES_MIN:
                accepts.append((t, ev[j][0]))
            i = j
        i += 1
    pairs, k = [], 0
    while k + 1 < len(accepts):
        if accepts[k + 1][0] - accepts[k][0] < 150:
            pairs.append((accepts[k], accepts[k + 1]))
            k += 2
        else:
            k += 1
    print("first send, µs:                 ", quantiles([a[1] - a[0] for a, _ in pairs]))
    print("its end to the second's start:  ", quantiles([b[0] - a[1] for a, b in pairs]))
    switched, through = [], []
    for a, b in pairs:
        s = bisect.bisect_right(sends, a[0]) - 1
        r = bisect.bisect_right(reads, a[0])
        if s < 0 or r >= len(reads):
            continue
        (switched if b[0] - a[1] > GAP_SWITCHED_US else through).append(reads[r] - sends[s])
    print(f"request latency, switched out between (gap > {GAP_SWITCHED_US} µs):", quantiles(switched))
    print("request latency, the rest:                       ", quantiles(through))


main()
