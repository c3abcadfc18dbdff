"""Reads a trace.sh capture (OUT.txt, OUT.roles) and prints, in µs:
- each replica's WAL writes (io_uring WRITE requests): submitted -> the filesystem's
  completion work (iomap_dio_complete_work, a kworker: the write is on the device's cache)
  -> that work's end (it issued the cache flush and waited for it) -> posted to the ring;
- how long each replica's WAL sat idle between one write posted and its next submitted;
- for each follower: the leader's accept sent -> the follower's thread woken -> running ->
  the accept received -> the follower's WAL write submitted; and that last step split by
  whether the thread ran through, was preempted (and not put to sleep) or slept in between;
- wake-up to running, per kind of thread.
    python3 analyze.py OUT"""
import bisect
import collections
import re
import sys

OUT = sys.argv[1]
ROLES = {tid: role for tid, role, _ in (l.split() for l in open(OUT + ".roles"))}
LINE = re.compile(r"^\s*(.+)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(\w+)(?::\s*|(?=\()|(?= ->))(.*)$")

writes = {}                                   # io_uring req -> (role, submitted)
done = collections.defaultdict(list)          # role -> [(submitted, posted)]
submits = collections.defaultdict(list)       # role -> [submitted]
dio = []                                      # (start, end) of iomap_dio_complete_work
dio_open = {}
peer_sends = []                               # leader's sends other than a 5-byte reply
events = collections.defaultdict(list)        # follower -> [(t, kind)]
woken, wake_lat = {}, collections.defaultdict(list)


def kind(comm):
    if comm.startswith("kworker"):
        return "kworker"
    return re.sub(r"[-/:]?\d+$", "", comm)


for line in open(OUT + ".txt"):
    m = LINE.match(line)
    if not m:
        continue
    comm, tid, _, ts, ev, rest = m.groups()
    t = float(ts) * 1e6
    role = ROLES.get(tid)
    if ev == "io_uring_submit_req" and "opcode WRITE" in rest and role:
        writes[re.search(r"req (\S+),", rest).group(1)] = (role, t)
        submits[role].append(t)
        if role.startswith("follower"):
            events[role].append((t, "write"))
    elif ev == "io_uring_complete":
        req = re.search(r"req (\S+),", rest).group(1)
        if req in writes:
            r, s = writes.pop(req)
            done[r].append((s, t))
    elif ev == "workqueue_execute_start" and "iomap_dio_complete_work" in rest:
        dio_open[tid] = t
    elif ev == "workqueue_execute_end" and tid in dio_open:
        dio.append((dio_open.pop(tid), t))
    elif ev == "sys_sendto" and role and role.startswith("leader"):
        if int(re.search(r"len: (\w+)", rest).group(1), 16) != 5:
            peer_sends.append(t)
    elif ev == "sys_recvfrom" and "->" in rest and role and role.startswith("follower"):
        got = int(rest.split("->")[1].strip(), 16)
        if 100 < got < 1 << 63:
            events[role].append((t, "recv"))
    elif ev == "sched_wakeup":
        w = re.search(r"comm=(.*) pid=(\d+)", rest)
        woken[w.group(2)] = (t, w.group(1))
        if ROLES.get(w.group(2), "").startswith("follower"):
            events[ROLES[w.group(2)]].append((t, "wake"))
    elif ev == "sched_switch":
        prev = re.search(r"prev_pid=(\d+)", rest).group(1)
        nxt = re.search(r"next_pid=(\d+)", rest).group(1)
        if ROLES.get(prev, "").startswith("follower"):
            preempted = "prev_state=R" in rest
            events[ROLES[prev]].append((t, "preempted" if preempted else "slept"))
        if ROLES.get(nxt, "").startswith("follower"):
            events[ROLES[nxt]].append((t, "run"))
        if nxt in woken:
            w, c = woken.pop(nxt)
            wake_lat[kind(c)].append(t - w)


def stats(v):
    v = sorted(v)
    if not v:
        return "n=0"
    q = lambda p: v[min(len(v) - 1, int(len(v) * p))]
    return f"n={len(v):5d} avg {sum(v) / len(v):5.0f} p50 {q(.5):5.0f} p90 {q(.9):5.0f}"


dio.sort()
dio_ends = [e for _, e in dio]
print("## WAL writes: submitted -> completion work starts -> ends -> posted (µs)")
for role in sorted(done):
    total, to_work, work, to_post = [], [], [], []
    for s, c in done[role]:
        total.append(c - s)
        i = bisect.bisect_left(dio_ends, c) - 1
        if i >= 0 and dio[i][0] > s:
            to_work.append(dio[i][0] - s)
            work.append(dio[i][1] - dio[i][0])
            to_post.append(c - dio[i][1])
    print(f"{role:10s} whole {stats(total)}")
    print(f"{'':10s} to the work {stats(to_work)} | the work (flush) {stats(work)} | to posted {stats(to_post)}")
print("## WAL idle: a write posted -> the same replica's next write submitted (µs)")
for role in sorted(done):
    subs = submits[role]
    gaps = []
    for _, c in done[role]:
        i = bisect.bisect_left(subs, c)
        if i < len(subs):
            gaps.append(subs[i] - c)
    print(f"{role:10s} {stats(gaps)}")
print("## followers: the leader's accept sent -> woken / running / received -> WAL write submitted (µs)")
peer_sends.sort()
for f in sorted(events):
    ev = sorted(events[f])
    times = {k: [t for t, kk in ev if kk == k] for k in ("wake", "run", "recv", "write")}
    chain = collections.defaultdict(list)
    for n, w in enumerate(times["write"]):
        i = bisect.bisect_left(times["recv"], w) - 1
        # The accept received after the follower's previous write, the last before this one.
        if i < 0 or (n > 0 and times["recv"][i] < times["write"][n - 1]):
            continue
        r = times["recv"][i]
        j = bisect.bisect_left(peer_sends, r) - 1
        if j < 0 or r - peer_sends[j] > 2000:
            continue
        s = peer_sends[j]
        for k in ("wake", "run"):
            x = bisect.bisect_right(times[k], s)
            if x < len(times[k]) and times[k][x] < r:
                chain[k].append(times[k][x] - s)
        chain["recv"].append(r - s)
        how = "ran through"
        for t, kk in ev[bisect.bisect_right(ev, (r, "~")):]:
            if t >= w:
                break
            if kk == "slept" or (kk == "preempted" and how == "ran through"):
                how = kk
        chain[how].append(w - r)
    print(f"{f}: sent->woken {stats(chain['wake'])}")
    print(f"{'':10s} sent->running {stats(chain['run'])}")
    print(f"{'':10s} sent->received {stats(chain['recv'])}")
    for how in ("ran through", "preempted", "slept"):
        print(f"{'':10s} received->write, {how} {stats(chain[how])}")
print("## woken -> running, by thread kind (µs)")
for k, v in sorted(wake_lat.items(), key=lambda kv: -len(kv[1]))[:5]:
    print(f"{k:20s} {stats(v)}")
