#!/usr/bin/env bash
# Fuzzes every decoder of outside input for as long as asked: RESP (values, and commands
# fed in pieces), peer frames and handshakes, snapshot chunks, WAL records and segment
# headers, snapshot payloads and files, node/protocol config TOML, workload TOML
# (tests/fuzz_decoders.rs). Structured random input through proptest: random bytes and
# mutations (flips, truncations, insertions, repeats) of valid input, a fresh seed per
# round. `cargo test` runs the same targets with 300 cases each. (cargo-fuzz needs a
# nightly toolchain, which this machine lacks; these targets need none.)
#
# Usage: scripts/fuzz.sh [SECONDS] [CASES_PER_ROUND]     (defaults 60 and 20000)
#   TARGET=name      only this target (e.g. resp_values, peer_frames, workload_toml)
# A failing case is printed minimised by proptest, and the script stops with its status.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TOTAL=${1:-60}
CASES=${2:-20000}
cargo test --profile ci -j 1 --test fuzz_decoders --no-run
end=$(($(date +%s) + SECONDS_TOTAL))
rounds=0
while (( $(date +%s) < end )); do
    if ! out=$(COREPAX_FUZZ_CASES=$CASES cargo test --profile ci -j 1 --test fuzz_decoders -- \
        ${TARGET:-} 2>&1); then
        echo "$out"
        echo "fuzz: failure in round $rounds"
        exit 1
    fi
    rounds=$((rounds + 1))
done
echo "fuzz: $rounds rounds of $CASES cases per target, no failure"
