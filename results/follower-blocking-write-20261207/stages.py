"""Reads an ftrace text trace (stages.sh) of one follower thread and prints, per accept
received (a receive after which the thread accepts a slot, `accept_locally`), the µs from
the receive's return to each probed function's first entry, up to the io_uring_enter that
submits its WAL write."""
import re
import statistics
import sys

STAGES = ["on_message", "accept_locally", "apply_chosen", "finish_step", "append_record",
          "begin_sync", "submit"]
LINE = re.compile(r"\s(\d+\.\d+): (\w+)(?::|\(| ->)(.*)")


def events(lines):
    for line in lines:
        m = LINE.search(line)
        if not m or line.startswith("#"):
            continue
        t, name, rest = float(m.group(1)) * 1e6, m.group(2), m.group(3)
        if name == "sys_recvfrom":
            name = "receive"
        elif name == "sys_io_uring_enter":
            sub = re.search(r"to_submit: (0x[0-9a-f]+|\d+)", rest)
            wait = re.search(r"min_complete: (0x[0-9a-f]+|\d+)", rest)
            submits = sub and int(sub.group(1), 0) > 0 and int(wait.group(1), 0) == 0
            name = "submit" if submits else "enter"
        yield t, name


def main():
    found = {s: [] for s in STAGES}
    start, seen = None, {}
    for t, name in events(sys.stdin):
        if name == "receive":
            start, seen = t, {}
            continue
        if start is None or name not in STAGES or name in seen:
            continue
        seen[name] = t - start
        if name == "submit" and "accept_locally" in seen and "begin_sync" in seen:
            for stage, us in seen.items():
                found[stage].append(us)
            start = None
    n = len(found["submit"])
    print(f"{n} accepts to a submitted write; µs from the receive's return: median, p90")
    for stage in STAGES:
        v = sorted(found[stage])
        if v:
            print(f"  {stage:15s} {statistics.median(v):6.1f} {v[int(len(v) * 0.9)]:6.1f}")


main()
