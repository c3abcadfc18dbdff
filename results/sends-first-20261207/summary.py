"""Summarises ab.sh's output (stdin): per name, the minimum, median and maximum over its
rounds of req/s, avg, p50, p95 and p99 (ms)."""
import collections
import sys

rows = collections.defaultdict(list)
for line in sys.stdin:
    parts = line.split(None, 2)
    if len(parts) < 3 or not parts[2].startswith('"SET"'):
        continue
    values = parts[2].replace('"', "").split(",")[1:]
    rows[parts[0]].append([float(v) for v in values])
for name, runs in rows.items():
    cells = []
    for i, label in [(0, "req/s"), (1, "avg"), (3, "p50"), (4, "p95"), (5, "p99")]:
        xs = sorted(r[i] for r in runs)
        fmt = "%.0f" if i == 0 else "%.3f"
        cells.append(("%s " + fmt + " / " + fmt + " / " + fmt) % (label, xs[0], xs[len(xs) // 2], xs[-1]))
    print("%s (%d runs, min / median / max): %s" % (name, len(runs), "; ".join(cells)))
