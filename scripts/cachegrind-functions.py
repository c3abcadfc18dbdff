#!/usr/bin/env python3
"""The functions that cost the most instructions in a cachegrind or callgrind profile, and
where two profiles differ.

    cachegrind-functions.py OUT [--commands N] [--top K]
    cachegrind-functions.py BEFORE AFTER [--commands N | --commands N_BEFORE,N_AFTER] [--top K]

OUT is a `cachegrind.out.<pid>` (exclusive Ir per function) or a `callgrind.out.<pid>`
(exclusive and inclusive Ir). With --commands the counts are divided by the number of
commands the run executed (e.g. benches/core.rs with CORE_BENCH_COMMANDS=N), so two builds
compare per command. Rust hashes (`::h0123...`) are dropped from names so that the same
function matches across builds.
"""

import argparse
import re
import sys
from collections import defaultdict

HASH = re.compile(r"::h[0-9a-f]{16}$")
COMPRESSED = re.compile(r"^\((\d+)\)(?: (.*))?$")


def clean(name):
    return HASH.sub("", name.strip())


class Profile:
    def __init__(self, path):
        self.path = path
        self.exclusive = defaultdict(int)
        self.inclusive = defaultdict(int)
        self.has_inclusive = False
        self.total = 0
        self._read(path)

    def _read(self, path):
        names = {}

        def name_of(value):
            # callgrind compresses repeated names as "(id) name" once, then "(id)".
            m = COMPRESSED.match(value)
            if not m:
                return clean(value)
            if m.group(2) is not None:
                names[m.group(1)] = clean(m.group(2))
            return names.get(m.group(1), "(" + m.group(1) + ")")

        ir_col = 0
        fn = "???"
        call_pending = False
        callee = None
        # Per function: instructions in calls it makes (callgrind's inclusive cost of a call
        # line), added to its exclusive cost at the end.
        in_calls = defaultdict(int)
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                c = line[0]
                if c.isdigit() or c in "+-*":
                    if fn is None:
                        continue
                    parts = line.split()
                    costs = parts[1:]
                    ir = int(costs[ir_col]) if len(costs) > ir_col else 0
                    if call_pending:
                        call_pending = False
                        if callee != fn:  # recursion is already inside fn's own cost
                            in_calls[fn] += ir
                    else:
                        self.exclusive[fn] += ir
                        self.total += ir
                    continue
                key, _, value = line.partition("=")
                if line.startswith("events:"):
                    events = line.split(":", 1)[1].split()
                    ir_col = events.index("Ir") if "Ir" in events else 0
                elif key == "fn":
                    fn = name_of(value)
                elif key == "cfn":
                    callee = name_of(value)
                elif key == "calls":
                    call_pending = True
                    self.has_inclusive = True
                elif key in ("fl", "fi", "fe", "ob", "cob", "cfi", "cfl"):
                    pass
        for name, cost in self.exclusive.items():
            self.inclusive[name] = cost + in_calls.get(name, 0)
        for name, cost in in_calls.items():
            if name not in self.exclusive:
                self.inclusive[name] = cost


def per(value, n):
    return value / n if n else value


def show_one(p, n, top):
    unit = "Ir per command" if n else "Ir"
    print(f"{p.path}: {p.total:,} Ir" + (f", {per(p.total, n):,.0f} per command" if n else ""))
    cols = ["exclusive"] + (["inclusive"] if p.has_inclusive else [])
    print(f"top {top} by exclusive {unit}:")
    print("  " + "".join(f"{c:>12}" for c in cols) + "  function")
    for name, cost in sorted(p.exclusive.items(), key=lambda kv: -kv[1])[:top]:
        row = [per(cost, n)] + ([per(p.inclusive[name], n)] if p.has_inclusive else [])
        print("  " + "".join(f"{v:>12,.1f}" for v in row) + "  " + name)
    if p.has_inclusive:
        print(f"top {top} by inclusive {unit}:")
        for name, cost in sorted(p.inclusive.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {per(cost, n):>12,.1f}  {name}")


def show_diff(a, b, na, nb, top):
    unit = "per command" if na and nb else "total"
    print(f"before {a.path}: {per(a.total, na):,.0f} Ir {unit}")
    print(f"after  {b.path}: {per(b.total, nb):,.0f} Ir {unit}")
    print(f"difference: {per(b.total, nb) - per(a.total, na):+,.0f}")
    kinds = [("exclusive", a.exclusive, b.exclusive)]
    if a.has_inclusive and b.has_inclusive:
        kinds.append(("inclusive", a.inclusive, b.inclusive))
    for kind, ea, eb in kinds:
        names = set(ea) | set(eb)
        rows = [(n, per(ea.get(n, 0), na), per(eb.get(n, 0), nb)) for n in names]
        rows.sort(key=lambda r: -abs(r[2] - r[1]))
        print(f"\ntop {top} differences, {kind} Ir {unit}:")
        print(f"  {'before':>10} {'after':>10} {'diff':>10}  function")
        for n, x, y in rows[:top]:
            print(f"  {x:>10,.1f} {y:>10,.1f} {y - x:>+10,.1f}  {n}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profiles", nargs="+", help="one profile, or two to compare")
    ap.add_argument("--commands", default="", help="N, or N_BEFORE,N_AFTER")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    if len(args.profiles) > 2:
        ap.error("one or two profiles")
    try:
        counts = [int(x) for x in args.commands.split(",") if x]
    except ValueError:
        ap.error("--commands: integers")
    if len(counts) == 1:
        counts = counts * 2
    if not counts:
        counts = [0, 0]
    profiles = [Profile(p) for p in args.profiles]
    if len(profiles) == 1:
        show_one(profiles[0], counts[0], args.top)
    else:
        show_diff(profiles[0], profiles[1], counts[0], counts[1], args.top)


if __name__ == "__main__":
    sys.exit(main())
