"""Segments of one-client SETs from `perf script` of syscall tracepoints (see trace.sh).

Usage: segments.py SCRIPT_OUTPUT LEADER_PID FOLLOWER_PID,FOLLOWER_PID CLIENT_PID
Prints p10 / p50 / p90 in µs of each segment of a write, from the client's send to its
receive of the reply. A follower's segments count only where both followers voted before
the leader replied (the leader waits for both: lazy leader sync)."""
import re
import sys

# Frame lengths: the varints of slot numbers move an accept's and a vote's by a byte or two.
SET, OK = 0x2D, 0x5
ACCEPT, VOTE = range(0x30, 0x41), range(0x12, 0x19)
LINE = re.compile(r"\s*(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s*(.*)")


def load(path):
    events = []
    for line in open(path):
        m = LINE.match(line)
        if m:
            events.append((float(m.group(4)) * 1e6, int(m.group(1)), m.group(5).split(":")[1], m.group(6)))
    return events


def length(trace):
    m = re.search(r"len: (0x[0-9a-f]+)", trace)
    return int(m.group(1), 16) if m else None


def main():
    events = load(sys.argv[1])
    leader, followers, client = int(sys.argv[2]), [int(p) for p in sys.argv[3].split(",")], int(sys.argv[4])
    names = ["client send -> leader has it", "leader has it -> 1st accept sent",
             "1st -> 2nd accept sent", "1st accept sent -> follower has it",
             "follower has it -> record submitted", "record submission (in the kernel)",
             "submitted -> vote sent", "2nd vote sent -> leader awake",
             "leader awake -> reply sent", "reply sent -> client has it", "total"]
    segs = {n: [] for n in names}
    starts = [i for i, e in enumerate(events) if e[1] == client and e[2] == "sys_enter_sendto"]
    for a, b in zip(starts, starts[1:]):
        w, t0 = events[a:b], events[a][0]

        def first(pred, after=t0):
            return next((e for e in w if e[0] >= after and pred(e)), None)

        got = first(lambda e: e[1] == leader and e[2] == "sys_exit_recvfrom" and e[3].strip() == hex(SET))
        acc = [e for e in w if e[1] == leader and e[2] == "sys_enter_sendto" and length(e[3]) in ACCEPT]
        rep = first(lambda e: e[1] == leader and e[2] == "sys_enter_sendto" and length(e[3]) == OK)
        if not got or len(acc) < 2 or not rep:
            continue
        back = first(lambda e: e[1] == client and e[2] == "sys_exit_recvfrom", rep[0])
        if not back:
            continue
        votes, parts = [], []
        for f in followers:
            fr = first(lambda e: e[1] == f and e[2] == "sys_exit_recvfrom" and int(e[3].strip(), 16) in ACCEPT, acc[0][0])
            fs = fr and first(lambda e: e[1] == f and e[2] == "sys_enter_io_uring_enter", fr[0])
            fe = fs and first(lambda e: e[1] == f and e[2] == "sys_exit_io_uring_enter", fs[0])
            fv = fr and first(lambda e: e[1] == f and e[2] == "sys_enter_sendto" and length(e[3]) in VOTE, fr[0])
            if fs and fe and fv and fv[0] < rep[0]:
                votes.append(fv[0])
                parts.append((fr[0] - acc[0][0], fs[0] - fr[0], fe[0] - fs[0], fv[0] - fe[0]))
        segs[names[0]].append(got[0] - t0)
        segs[names[1]].append(acc[0][0] - got[0])
        segs[names[2]].append(acc[1][0] - acc[0][0])
        if len(votes) == 2:
            for p in parts:
                for n, v in zip(names[3:7], p):
                    segs[n].append(v)
            awake = first(lambda e: e[1] == leader and e[2] == "sys_exit_io_uring_enter", max(votes))
            if awake and awake[0] < rep[0]:
                segs[names[7]].append(awake[0] - max(votes))
                segs[names[8]].append(rep[0] - awake[0])
        segs[names[9]].append(back[0] - rep[0])
        segs[names[10]].append(back[0] - t0)
    print("| segment | n | p10 | p50 | p90 (µs) |\n| --- | ---: | ---: | ---: | ---: |")
    for n, v in segs.items():
        v.sort()
        if v:
            print(f"| {n} | {len(v)} | {v[len(v) // 10]:.0f} | {v[len(v) // 2]:.0f} | {v[9 * len(v) // 10]:.0f} |")


main()
