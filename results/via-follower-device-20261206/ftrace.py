# Reads the text ftrace's `trace` file gives (trace.sh, steps.sh): one event per line.
import re

LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+(\d+\.\d+):\s+(\w+)(?::|\(| ->)\s*(.*)$")


def events(path):
    """Yields (thread id, time in s, event name, the rest, the whole line) of each event."""
    for line in open(path):
        m = LINE.match(line)
        if m:
            _, tid, _, t, event, rest = m.groups()
            yield tid, float(t), event, rest, line
