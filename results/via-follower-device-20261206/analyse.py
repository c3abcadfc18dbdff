# Summarises trace.sh runs: per run, the device's requests per client request, its slow
# operations per second, how far apart the three replicas' WAL writes reach the device, and
# what the slow client requests (> 250 µs) overlapped.
#   python3 analyse.py OUT...
import bisect
import collections
import re
import sys

from ftrace import events

BLOCK = re.compile(r"\S+ (\S+) (?:\d+ )?\(\) (\d+) \+")
SLOW_REQUEST, SLOW_OP = 250e-6, 100e-6


def pct(v, p):
    v = sorted(v)
    return v[int(p * (len(v) - 1))] if v else 0.0


def analyse(base):
    ops, writes, wakeups = [], [], []
    issued, open_io, flushes, woken = collections.Counter(), {}, [], {}
    first = last = None
    for pid, t, event, rest, _ in events(base + ".txt"):
        first, last = first or t, t
        if event == "sched_wakeup":
            w = re.search(r"comm=(.*?) pid=(\d+)", rest)
            woken[w.group(2)] = t
        elif event == "sched_switch":
            w = re.search(r"next_pid=(\d+)", rest)
            if w.group(1) in woken:
                wakeups.append((woken.pop(w.group(1)), t))
        elif event.startswith("block_rq"):
            b = BLOCK.search(rest)
            if not b:
                continue
            kind, sector = b.groups()
            if event == "block_rq_issue":
                issued[kind] += 1
                if kind == "WS":
                    writes.append((t, pid))
            if kind.startswith("F"):  # flushes complete in the order issued
                if event == "block_rq_issue":
                    flushes.append(t)
                elif flushes:
                    ops.append((flushes.pop(0), t, kind))
            elif event == "block_rq_issue":
                open_io[(kind, sector)] = t
            elif (kind, sector) in open_io:
                ops.append((open_io.pop((kind, sector)), t, kind))
    span = last - first
    lat = [tuple(map(int, l.split())) for l in open(base + ".lat")]
    reqs = [(a / 1e9, d / 1e9) for a, d in lat if first < a / 1e9 and (a + d) / 1e9 < last]
    n = len(reqs)
    print(f"{base.split('/')[-1]}: {open(base + '.sum').read().strip()}")
    print(f"  {n / span:,.0f} requests/s; device requests per request: "
          + ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(issued.items()) if v / n >= 0.01))
    slow_ops = collections.Counter(k for a, b, k in ops if b - a > SLOW_OP)
    print("  device operations over 100 µs, per second: "
          + ", ".join(f"{k} {v / span:.0f}" for k, v in sorted(slow_ops.items())))
    # The writes of one request: issues less than 35 µs apart.
    groups, group = [], [writes[0]]
    for w in writes[1:]:
        if w[0] - group[-1][0] > 35e-6:
            groups.append(group)
            group = []
        group.append(w)
    second = [(g[1][0] - g[0][0]) * 1e6 for g in groups if len(g) == 3]
    third = [(g[2][0] - g[0][0]) * 1e6 for g in groups if len(g) == 3]
    print(f"  three writes together in {len(second) / max(1, len(groups)):.0%} of write groups; "
          f"2nd write after the 1st p50 {pct(second, .5):.0f} p90 {pct(second, .9):.0f} µs, "
          f"3rd p50 {pct(third, .5):.0f} p90 {pct(third, .9):.0f} µs")
    ops.sort()
    starts = [o[0] for o in ops]
    wakeups.sort()
    wake_starts = [w[0] for w in wakeups]
    slow = [(a, d) for a, d in reqs if d > SLOW_REQUEST]
    overlapping, longest_wake = 0, []
    for a, d in slow:
        lo = bisect.bisect_left(starts, a - 0.002)
        hi = bisect.bisect_right(starts, a + d)
        if any(s < a + d and e > a and e - s > SLOW_OP for s, e, _ in ops[lo:hi]):
            overlapping += 1
        lo, hi = bisect.bisect_left(wake_starts, a), bisect.bisect_right(wake_starts, a + d)
        longest_wake.append(max((e - s for s, e in wakeups[lo:hi]), default=0) * 1e6)
    print(f"  slow requests (> 250 µs): {len(slow)} of {n}; {overlapping} overlap a device "
          f"operation over 100 µs; their longest wake-up-to-run p50 {pct(longest_wake, .5):.0f} "
          f"p90 {pct(longest_wake, .9):.0f} µs")


for base in sys.argv[1:]:
    analyse(base)
