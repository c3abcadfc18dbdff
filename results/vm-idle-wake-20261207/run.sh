#!/usr/bin/env bash
# scripts/floor.sh (ROUNDS=1) with this KVM guest's halt polling as the machine has it and
# with idle vCPUs polling 200 µs before they halt, alternated PAIRS times (default 1);
# each first prints examples/wakeprobe.rs's wake-up round trip. Needs root and the
# haltpoll idle driver; puts the machine's own setting back on exit.
#   results/vm-idle-wake-20261207/run.sh [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/../.."
P=/sys/module/haltpoll/parameters/guest_halt_poll_ns
[ -w "$P" ] || { echo "needs root and the haltpoll idle driver ($P)" >&2; exit 1; }
ORIG=$(cat "$P")
trap 'echo "$ORIG" >"$P"' EXIT
cargo build --release --quiet --example wakeprobe
for _ in $(seq "${1:-1}"); do
    for ns in "$ORIG" 200000; do
        echo "$ns" >"$P"
        echo "## guest_halt_poll_ns $ns: $(target/release/examples/wakeprobe)"
        ROUNDS=1 scripts/floor.sh 2>&1 >/dev/null | grep '^wrote'
    done
done
