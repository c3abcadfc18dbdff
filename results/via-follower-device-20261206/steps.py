# Reads a steps.sh trace: for each WAL write that reached the disk (`block_rq_issue`, WS)
# the steps of the thread that issued it since it was last woken, medians per thread (µs):
# woken -> running, running -> its receive returned, receive -> write submitted
# (io_uring SQE or pwrite), submitted -> at the disk.
#   python3 steps.py OUT
import collections
import re
import sys

from ftrace import events

base = sys.argv[1]
roles = dict(l.split() for l in open(base + ".roles"))
by_thread = collections.defaultdict(list)
for tid, t, e, rest, line in events(base + ".txt"):
    if e == "sched_switch":
        a = re.search(r"prev_pid=(\d+).*next_pid=(\d+)", rest)
        by_thread[a.group(1)].append((t, "out"))
        by_thread[a.group(2)].append((t, "in"))
    elif e == "sched_wakeup":
        by_thread[re.search(r"pid=(\d+)", rest).group(1)].append((t, "woken"))
    elif e == "block_rq_issue" and " WS " in rest:
        by_thread[tid].append((t, "disk"))
    elif e == "io_uring_submit_req" and re.search(r"opcode WRITE", rest):
        by_thread[tid].append((t, "submit"))
    elif e == "sys_pwrite64" and " -> " not in line:
        by_thread[tid].append((t, "submit"))
    elif e in ("sys_recvfrom", "sys_read") and " -> " in line:
        by_thread[tid].append((t, "received"))
rows = collections.defaultdict(list)
for tid, v in by_thread.items():
    v.sort()
    for i, (t, kind) in enumerate(v):
        if kind != "disk":
            continue
        marks = {}
        for tt, k in reversed(v[:i]):
            if t - tt > 300e-6 or (k == "out" and "in" in marks):
                break
            if k in ("submit", "received", "in") and k not in marks:
                marks[k] = tt
            if k == "woken" and "in" in marks:
                marks["woken"] = tt
                break
        if "woken" in marks and "in" in marks:
            order = ["woken", "in", "received", "submit"]
            row = [(marks[b] - marks[a]) * 1e6 if a in marks and b in marks else None
                   for a, b in zip(order, order[1:])]
            row.append((t - marks["submit"]) * 1e6 if "submit" in marks else None)
            row.append((t - marks["woken"]) * 1e6)
            rows[tid].append(row)
print(f"{base.split('/')[-1]}: " + open(base + ".sum").read().strip())
names = ["woken->running", "running->received", "received->submitted", "submitted->disk",
         "woken->disk"]
for tid, r in sorted(rows.items(), key=lambda x: -len(x[1])):
    if len(r) < 500:
        continue
    cells = []
    for j, n in enumerate(names):
        v = sorted(x[j] for x in r if x[j] is not None)
        cells.append(f"{n} {v[len(v) // 2]:.0f}" if v else f"{n} -")
    print(f"  thread {tid} ({roles.get(tid, 'follower')}), {len(r)} writes: " + ", ".join(cells))
