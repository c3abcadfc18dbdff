#!/usr/bin/env bash
# Fuzzes every decoder of outside input for as long as asked: RESP (values, and commands
# fed in pieces), peer frames and handshakes, snapshot payloads, chunks and files, WAL
# records and segment headers, node/protocol config TOML, workload TOML. The drivers are
# in tests/fuzz_support/mod.rs; two engines feed them:
#   cargo-fuzz   coverage-guided (libFuzzer), the targets in fuzz/; needs a nightly
#                toolchain and `cargo install cargo-fuzz`. Each target gets an equal share
#                of SECONDS; -malloc_limit_mb makes any single allocation above the
#                limit a failure (a decoder must not trust a length it was sent).
#   proptest     random bytes and mutations of valid input (tests/fuzz_decoders.rs), a
#                fresh seed per round of CASES cases per target; stable toolchain.
# `cargo test` runs the proptest targets with 300 cases each.
#
# Usage: scripts/fuzz.sh [SECONDS] [CASES_PER_ROUND]     (defaults 60 and 20000)
#   ENGINE=cargo-fuzz|proptest   default: cargo-fuzz when nightly and cargo-fuzz exist
#   TARGETS="resp peer_frame"    cargo-fuzz targets (default: all in fuzz/Cargo.toml)
#   MALLOC_LIMIT_MB=64           cargo-fuzz: the largest allocation allowed
# A failure prints the input (cargo-fuzz also saves it under fuzz/artifacts/) and the
# script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TOTAL=${1:-60}
CASES=${2:-20000}
if [[ -z "${ENGINE:-}" ]]; then
    if cargo +nightly --version >/dev/null 2>&1 && cargo fuzz --version >/dev/null 2>&1; then
        ENGINE=cargo-fuzz
    else
        ENGINE=proptest
    fi
fi
echo "# scripts/fuzz.sh $SECONDS_TOTAL $CASES, engine $ENGINE, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

if [[ $ENGINE == cargo-fuzz ]]; then
    all=$(grep -A1 '^\[\[bin\]\]' fuzz/Cargo.toml | sed -n 's/^name = "\(.*\)"/\1/p')
    targets=${TARGETS:-$all}
    n=$(wc -w <<<"$targets")
    share=$(( SECONDS_TOTAL / n > 1 ? SECONDS_TOTAL / n : 1 ))
    (cd fuzz && CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo +nightly fuzz build -s none)
    for t in $targets; do
        echo "## $t: $share s"
        (cd fuzz && cargo +nightly fuzz run -s none "$t" -- \
            -max_total_time="$share" -malloc_limit_mb="${MALLOC_LIMIT_MB:-64}" \
            -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
            grep -E 'Done|stat::number_of_executed_units|stat::new_units_added|ERROR|panicked|SUMMARY|Test unit written|malloc\(')
    done
    echo "fuzz: every target ran its share without a failure"
    exit 0
fi

cargo test --profile ci -j 1 --test fuzz_decoders --no-run
end=$(($(date +%s) + SECONDS_TOTAL))
rounds=0
while (( $(date +%s) < end )); do
    if ! out=$(COREPAX_FUZZ_CASES=$CASES cargo test --profile ci -j 1 --test fuzz_decoders 2>&1); then
        echo "$out"
        echo "fuzz: failure in round $rounds"
        exit 1
    fi
    rounds=$((rounds + 1))
done
echo "fuzz: $rounds rounds of $CASES cases per target, no failure"
