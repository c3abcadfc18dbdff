#!/usr/bin/env python3
"""One client's SETs over a long ftrace (tail.sh), request by request: the slowest 2 %
against the middle fifth, stage by stage; requests split by the inode writes (`WSM`
block requests) the disk got during them; and how the followers woke for the accept.

    tail.py TRACE CLIENT_COMM LEADER_TID FOLLOWER_TID FOLLOWER_TID

Stages as anatomy.py (../write-anatomy-20261207) cuts them, in µs from the client's send."""
import collections
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "write-anatomy-20261207"))
import anatomy as A  # noqa: E402


def block_kind(e):
    return e[4].split()[1] if e[3] == "block_rq_issue" else None


def stages(seg, leader, followers, ctid):
    r = {"leader reads the request": A.first(seg, lambda e: A.is_read(e, leader))}
    r["leader's first send"] = A.first(seg, lambda e: A.is_enter(e, leader, A.SENDTO))
    r["leader's WAL write submitted"] = A.first(seg, lambda e: A.is_write_submit(e, leader))
    r["leader sees its write durable"] = A.first(
        seg, lambda e: A.is_write_seen(e, leader), r["leader's WAL write submitted"] or 0
    )
    for i, f in enumerate(followers):
        sub = A.first(seg, lambda e, f=f: A.is_write_submit(e, f))
        r[f"follower {i} reads the accept"] = A.first(seg, lambda e, f=f: A.is_read(e, f))
        r[f"follower {i} WAL write submitted"] = sub
        r[f"follower {i} sees its write durable"] = A.first(
            seg, lambda e, f=f: A.is_write_seen(e, f), sub if sub is not None else 0
        )
    replies = [e[0] for e in seg if A.is_enter(e, leader, A.SENDTO)]
    r["leader sends the reply"] = replies[-1] if replies else None
    r["client reads the reply"] = A.first(seg, lambda e: A.is_read(e, ctid))
    return r


def wake_path(seg, t_send, followers, paths):
    """From the leader's first send to each follower's write submission."""
    for f in followers:
        wake = next((e for e in seg if e[0] >= t_send and e[3] == "sched_wakeup" and f"pid={f} " in e[4]), None)
        if wake is None:
            continue
        on_cpu = next((e for e in seg if e[0] >= wake[0] and e[3] == "sched_switch" and f"next_pid={f} " in e[4]), None)
        read = A.first(seg, lambda e, f=f: A.is_read(e, f), t_send)
        sub = A.first(seg, lambda e, f=f: A.is_write_submit(e, f), t_send)
        if on_cpu is None or read is None or sub is None:
            continue
        paths["leader's first send → follower woken"].append(wake[0] - t_send)
        paths["woken → on a CPU"].append(on_cpu[0] - wake[0])
        paths["on a CPU → accept read"].append(read - on_cpu[0])
        paths["accept read → WAL write submitted"].append(sub - read)
        paths["_wakers"].append("the idle task (another CPU's IPI)" if wake[1] == "<idle>" else wake[1].rsplit("-", 1)[0])


def pct(vals, q):
    return vals[min(int(len(vals) * q), len(vals) - 1)]


def main():
    path, client, leader, *followers = sys.argv[1:]
    ev = A.events(path)
    ctid = next(e[2] for e in ev if e[1] == client)
    starts = [i for i, e in enumerate(ev) if A.is_enter(e, ctid, A.SENDTO)]
    rows, by_inode, paths = [], collections.defaultdict(list), collections.defaultdict(list)
    t_first = ev[starts[0]][0] if starts else 0
    for a, b in zip(starts, starts[1:]):
        seg, t0 = ev[a:b], ev[a][0]
        r = {k: (v - t0 if v is not None else None) for k, v in stages(seg, leader, followers, ctid).items()}
        total = r["client reads the reply"]
        if total is None:
            continue
        inode = sum(1 for e in seg if block_kind(e) == "WSM")
        rows.append((total, t0 - t_first, inode, r))
        by_inode[min(inode, 2)].append(total)
        t_send = r["leader's first send"]
        if t_send is not None:
            wake_path(seg, t_send + t0, followers, paths)
    rows.sort(key=lambda x: x[0])
    n = len(rows)
    if n < 50:
        print(f"{n} requests: too few")
        return
    totals = [x[0] for x in rows]
    print(f"{n} requests; client's send to its read of the reply: p50 {pct(totals, .5):.0f}, "
          f"p90 {pct(totals, .9):.0f}, p99 {pct(totals, .99):.0f}, max {totals[-1]:.0f} µs")
    middle, slow = rows[int(n * 0.4):int(n * 0.6)], rows[int(n * 0.98):]
    print(f"  {'stage (median µs from the client send)':44} {'p40–p60':>8} {'slowest 2 %':>12}")
    for k in rows[0][3]:
        cells = []
        for group in (middle, slow):
            vals = [x[3][k] for x in group if x[3][k] is not None]
            cells.append(f"{statistics.median(vals):.0f}" if vals else "—")
        print(f"  {k:44} {cells[0]:>8} {cells[1]:>12}")
    at = sorted(x[1] / 1000 for x in slow)
    gaps = sum(1 for p, q in zip(at, at[1:]) if q - p <= 2.0)
    print(f"  the slowest 2 %: {len(slow)} requests, {gaps} of them within 2 ms of the previous one "
          f"(bursts); at ms {', '.join(f'{t:.0f}' for t in at[:40])}{' …' if len(at) > 40 else ''}")
    print("by inode writes (WSM block requests) issued during the request:")
    for k in sorted(by_inode):
        v = sorted(by_inode[k])
        print(f"  {k}{'+' if k == 2 else ''}: {len(v)} requests ({100 * len(v) / n:.0f} %), "
              f"p50 {pct(v, .5):.0f}, p90 {pct(v, .9):.0f}, p99 {pct(v, .99):.0f} µs")
    print("followers' path to their write (µs; p50, p90):")
    for k, v in paths.items():
        if k.startswith("_"):
            continue
        v.sort()
        print(f"  {k:38} {pct(v, .5):6.1f} {pct(v, .9):6.1f}  ({len(v)})")
    wakers = collections.Counter(paths["_wakers"])
    print("  woken by: " + ", ".join(f"{k} {100 * c / max(len(paths['_wakers']), 1):.0f} %" for k, c in wakers.most_common(3)))


if __name__ == "__main__":
    main()
