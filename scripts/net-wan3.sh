#!/usr/bin/env bash
# Every read mode on the emulated three-region network (workloads/net/wan3.toml), the
# client beside each replica in turn (workloads/matrix-net-wan3.toml), then one table:
# per run, where the client and the leader were, their round trip, and get/set p50/p99.
# Needs root (network namespaces). Usage: [MATRIX=FILE] scripts/net-wan3.sh [OUT_DIR]
#   TABLE_ONLY=1 scripts/net-wan3.sh DIR   tabulates an existing sweep folder.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/net-wan3-$(date -u +%Y%m%d-%H%M%S)}
BIN=${COREPAX_BIN:-target/release/corepax}
if [ -z "${TABLE_ONLY:-}" ]; then
    [ -x "$BIN" ] || cargo build --release
    "$BIN" sweep --matrix "${MATRIX:-workloads/matrix-net-wan3.toml}" --out "$OUT" --quiet
fi
python3 - "$OUT" <<'PY'
import glob, json, sys
regions = ["east", "central", "west"]
rtt = {(0, 1): 30, (0, 2): 70, (1, 2): 140}
def dist(a, b):
    return 0 if a == b else rtt[(min(a, b), max(a, b))]
rows = []
for f in sorted(glob.glob(sys.argv[1] + "/run-*.json")):
    d = json.load(open(f))
    ti = d["target_info"]
    mode = ti["sweep_config"]["protocol"]["read_mode"]
    near = ti.get("client_near", 0)
    leader = (ti.get("leaders") or [None])[0]
    ms = lambda op, p: "%.1f" % (d["ops"][op][p] / 1000) if op in d["ops"] else "-"
    rc = ti.get("read_counters", {})
    reads = sum(rc.get(k, 0) for k in ("local", "quorum", "log"))
    local = "%.0f%%" % (100 * rc.get("local", 0) / reads) if reads else "-"
    changes = ti.get("shard_counters", {}).get("became_leader", 0)
    holders = ti["sweep_config"]["protocol"].get("lease_holders") or "all"
    if mode != "quorum-lease":
        holders = "-"
    elif holders != "all":
        holders = ",".join(regions[h] for h in holders)
    rows.append((mode, holders, regions[near], "-" if leader is None else regions[leader],
                 "-" if leader is None else dist(near, leader),
                 ms("get", "p50_us"), ms("get", "p99_us"), ms("set", "p50_us"),
                 ms("set", "p99_us"), local, changes, f.split("/")[-1]))
print("| read mode | lease holders | client at | leader at | client-leader RTT (ms) | get p50 | get p99 | set p50 | set p99 | local reads | leader changes | run |")
print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
PY
