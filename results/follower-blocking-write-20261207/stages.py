"""Reads an ftrace text trace (stages.sh) of one replica's threads and prints, stage by
stage, the median and p90 µs from a receive's return to each stage's first event after it.

  follower: an accept (a receive after which the thread accepts a slot, `accept_locally`)
            up to the io_uring_enter that submits its WAL write;
  leader:   a client's request (a receive after which it proposes, `propose_at`) up to the
            submission of its own write after the accepts' two sends; and the deciding
            vote (a receive after which it applies a slot, `apply_chosen`) up to the
            reply's send.

Usage: stages.py follower|leader < trace"""
import re
import statistics
import sys

# (title, the probe that marks a receive as one of these, the stages in order; the last
# one ends the request). "send" and "send2" are the first and second sends, "submit" an
# io_uring_enter that submits without waiting.
PATHS = {
    "follower": [
        ("accepts to a submitted write", "accept_locally",
         ["on_message", "accept_locally", "apply_chosen", "finish_step", "append_record",
          "begin_sync", "submit"]),
    ],
    "leader": [
        ("requests to the leader's own write submitted", "propose_at",
         ["run_client_path", "propose_at", "send", "send2", "submit"]),
        ("deciding votes to the reply's send", "apply_chosen",
         ["on_message", "maybe_choose", "apply_chosen", "run_client_path", "send"]),
    ],
}
LINE = re.compile(r"\s(\d+\.\d+): (\w+)(?::|\(| ->)(.*)")


def events(lines):
    """(µs, name) per traced event: probes by their name, receives, sends, submissions."""
    for line in lines:
        m = LINE.search(line)
        if not m or line.startswith("#"):
            continue
        t, name, rest = float(m.group(1)) * 1e6, m.group(2), m.group(3)
        if name == "sys_recvfrom":
            name = "receive"
        elif name == "sys_sendto":
            name = "send"
        elif name == "sys_io_uring_enter":
            sub = re.search(r"to_submit: (0x[0-9a-f]+|\d+)", rest)
            wait = re.search(r"min_complete: (0x[0-9a-f]+|\d+)", rest)
            submits = sub and int(sub.group(1), 0) > 0 and int(wait.group(1), 0) == 0
            name = "submit" if submits else "enter"
        yield t, name


def requests(evs):
    """The events between one receive's return and the next, times relative to it."""
    start, seen = None, []
    for t, name in evs:
        if name == "receive":
            if start is not None:
                yield seen
            start, seen = t, []
        elif start is not None:
            seen.append((name, t - start))
    if start is not None:
        yield seen


def stage_times(seen, marker, stages):
    """Each stage's first time, the stages taken in their order (a send before the
    proposal is not an accept's), or None if the receive is not such a request."""
    if marker not in (name for name, _ in seen):
        return None
    times = {}
    for name, us in seen:
        want = stages[len(times)]
        if name == want or (name == "send" and want == "send2"):
            times[want] = us
            if len(times) == len(stages):
                return times
    return None


def main():
    role = sys.argv[1] if len(sys.argv) > 1 else "follower"
    traced = list(requests(events(sys.stdin)))
    for title, marker, stages in PATHS[role]:
        found = {s: [] for s in stages}
        n = 0
        for seen in traced:
            times = stage_times(seen, marker, stages)
            if times is None:
                continue
            n += 1
            for stage, us in times.items():
                found[stage].append(us)
        print(f"{n} {title}; µs from the receive's return: median, p90")
        for stage in stages:
            v = sorted(found[stage])
            if v:
                print(f"  {stage:15s} {statistics.median(v):6.1f} {v[int(len(v) * 0.9)]:6.1f}")


main()
