#!/usr/bin/env python3
"""One client's SETs, request by request, across processes: an ftrace of system calls,
io_uring submissions and completions, the scheduler and the block layer (anatomy.sh),
cut at each of the client's sends. Prints, per stage, the median and p90 µs from the
client's send; the disk's requests per client request; and each thread's time on a CPU,
sleeps and preemptions per request.

    anatomy.py TRACE CLIENT_COMM LEADER_TID FOLLOWER_TID FOLLOWER_TID

A WAL write is an io_uring WRITE submission and its completion as its thread reaps it
(corepax), or a pwrite64 system call's entry and exit (replfloor, blocking)."""
import collections
import re
import statistics
import sys

LINE = re.compile(r"^\s*(.+)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(\w+):\s*(.*)$")
SENDTO, RECVFROM, PWRITE64 = "44", "45", "18"


def events(path):
    out = []
    for line in open(path):
        if line.startswith("#"):
            continue
        m = LINE.match(line)
        if m:
            comm, tid, _cpu, ts, name, rest = m.groups()
            out.append((float(ts) * 1e6, comm, tid, name, rest))
    return out


def nr(e):
    return e[4].split()[1] if e[3] in ("sys_enter", "sys_exit") else None


def exit_value(e):
    return int(e[4].split("=")[1])


def is_enter(e, tid, number):
    return e[2] == tid and e[3] == "sys_enter" and nr(e) == number


def is_read(e, tid):
    return e[2] == tid and e[3] == "sys_exit" and nr(e) == RECVFROM and exit_value(e) > 0


def is_write_submit(e, tid):
    return e[2] == tid and (
        (e[3] == "io_uring_submit_req" and "opcode WRITE" in e[4]) or is_enter(e, tid, PWRITE64)
    )


def is_write_seen(e, tid):
    if e[2] != tid:
        return False
    if e[3] == "sys_exit" and nr(e) == PWRITE64:
        return True
    m = re.search(r"result (-?\d+)", e[4]) if e[3] == "io_uring_complete" else None
    return bool(m) and int(m.group(1)) >= 512  # a WAL write, not a poll or a timer


def first(seg, pred, after=float("-inf")):
    return next((e[0] for e in seg if e[0] >= after and pred(e)), None)


def main():
    path, client, leader, *followers = sys.argv[1:]
    ev = events(path)
    ctid = next(e[2] for e in ev if e[1] == client)
    starts = [i for i, e in enumerate(ev) if is_enter(e, ctid, SENDTO)]
    rows, disk, by_flushes = [], collections.Counter(), collections.defaultdict(list)
    for a, b in zip(starts, starts[1:]):
        seg, t0 = ev[a:b], ev[a][0]
        r = {"leader reads the request": first(seg, lambda e: is_read(e, leader))}
        r["leader's first send (an accept)"] = first(seg, lambda e: is_enter(e, leader, SENDTO))
        r["leader's WAL write submitted"] = first(seg, lambda e: is_write_submit(e, leader))
        for i, f in enumerate(followers):
            got = first(seg, lambda e, f=f: is_read(e, f))
            sub = first(seg, lambda e, f=f: is_write_submit(e, f))
            seen = first(seg, lambda e, f=f: is_write_seen(e, f), sub if sub is not None else 0)
            r[f"follower {i} reads the accept"] = got
            r[f"follower {i} WAL write submitted"] = sub
            r[f"follower {i} sees its write durable"] = seen
            r[f"follower {i} sends its vote"] = first(
                seg, lambda e, f=f: is_enter(e, f, SENDTO), seen if seen is not None else float("inf")
            )
        r["leader sees its write durable"] = first(
            seg, lambda e: is_write_seen(e, leader), r["leader's WAL write submitted"] or 0
        )
        replies = [e[0] for e in seg if is_enter(e, leader, SENDTO)]
        r["leader sends the reply"] = replies[-1] if replies else None
        r["client reads the reply"] = first(seg, lambda e: is_read(e, ctid))
        r["client's next send"] = ev[b][0]
        rows.append({k: (v - t0 if v is not None else None) for k, v in r.items()})
        flushes = 0
        for e in seg:
            if e[3] == "block_rq_issue":
                kind = e[4].split()[1]
                flush = "F" in kind and "W" not in kind
                flushes += flush
                disk["flushes" if flush else "writes"] += 1
        by_flushes[flushes].append(ev[b][0] - t0)
    print(f"{len(rows)} requests; µs from the client's send: median, p90 (requests with the event)")
    for k in rows[0]:
        vals = sorted(r[k] for r in rows if r[k] is not None)
        if vals:
            p90 = vals[int(len(vals) * 0.9)]
            print(f"  {k:38} {statistics.median(vals):7.1f} {p90:7.1f}  ({len(vals)})")
    n = max(len(rows), 1)
    print(f"disk requests issued per request: writes {disk['writes'] / n:.2f}, flushes {disk['flushes'] / n:.2f}")
    cells = ", ".join(
        f"{k}: {len(v)} requests, median {statistics.median(v):.0f} µs" for k, v in sorted(by_flushes.items())
    )
    print(f"by flushes issued during the request: {cells}")
    threads(ev, [("leader", leader)] + [(f"follower {i}", f) for i, f in enumerate(followers)], n)


def threads(ev, named, n):
    """Each thread's time on a CPU, sleeps (blocked: S or D) and preemptions, per request."""
    tids = {tid for _, tid in named}
    on, ran, slept, preempted = {}, collections.Counter(), collections.Counter(), collections.Counter()
    for e in ev:
        if e[3] != "sched_switch":
            continue
        prev = re.search(r"prev_pid=(\d+) .*prev_state=(\S+)", e[4])
        nxt = re.search(r"next_pid=(\d+)", e[4]).group(1)
        pid, state = prev.group(1), prev.group(2)
        if pid in on:
            ran[pid] += e[0] - on.pop(pid)
            if state.startswith("R"):  # R or R+: still runnable
                preempted[pid] += 1
            else:
                slept[pid] += 1
        if nxt in tids:
            on[nxt] = e[0]
    print("per request: µs on a CPU, sleeps, preemptions")
    for name, tid in named:
        print(f"  {name:11} {ran[tid] / n:6.1f} {slept[tid] / n:5.2f} {preempted[tid] / n:5.2f}")


if __name__ == "__main__":
    main()
