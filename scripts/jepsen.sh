#!/usr/bin/env bash
# Jepsen-style fault run on real processes, as long as asked: for each read mode, a
# 3-replica cluster (`corepax node`, 2 shards each), every node in a network namespace of
# its own behind the emulated network's router (docs/NETWORK.md, `lan` profile), serves
# concurrent clients that record every operation (a write without a definite answer kept
# as indeterminate) while kill -9, SIGSTOP/SIGCONT and real network cuts (the router drops
# the packets: isolated both ways, cut off one way in either direction, or cut from the
# leader only) hit random nodes, the leader half the time; afterwards every key is read
# through every node and the history is checked with the simulator's linearizability
# checker. Needs root and /dev/net/tun. Prints, per mode:
#   ops N indeterminate N faults N (cuts: KINDS; packets cut N) violations N undecided N
# The same harness runs briefly in `cargo test` (tests/node_faults_history_linearizable.rs).
#
# Usage: scripts/jepsen.sh [SECONDS] [FAULTS]    (per read mode; defaults 60 and 30)
#   PROTOCOL=multipaxos|raft   the replication protocol (raft's modes: log, read-index)
#   MODES=log,leader-lease,quorum-lease,digest,quorum   read modes to run, in order
#                    (default: every mode the protocol serves)
#   CLIENTS=6        concurrent clients
#   SEED=N           fixes the clients' and the faults' choices (random otherwise)
#   OUT=FILE         also write the output here (e.g. results/jepsen-<date>.txt)
# Exits non-zero if any history is not linearizable (or the check gave up on a key).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_MODE=${1:-60}
FAULTS=${2:-30}
export COREPAX_FAULTS_SECONDS=$SECONDS_PER_MODE
export COREPAX_FAULTS_COUNT=$FAULTS
export COREPAX_FAULTS_PROTOCOL=${PROTOCOL:-multipaxos}
if [[ "$COREPAX_FAULTS_PROTOCOL" == raft ]]; then
    export COREPAX_FAULTS_MODES=${MODES:-log,read-index}
else
    export COREPAX_FAULTS_MODES=${MODES:-log,leader-lease,quorum-lease,digest,quorum}
fi
export COREPAX_FAULTS_CLIENTS=${CLIENTS:-6}
if [[ -n "${SEED:-}" ]]; then export COREPAX_FAULTS_SEED=$SEED; fi

header() {
    echo "# scripts/jepsen.sh $SECONDS_PER_MODE $FAULTS (protocol $COREPAX_FAULTS_PROTOCOL, modes $COREPAX_FAULTS_MODES, clients $COREPAX_FAULTS_CLIENTS)"
    echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ), $(nproc) cores"
}
run() {
    header
    cargo test --profile ci -j 1 --test node_faults_history_linearizable -- \
        --ignored long_run --nocapture --test-threads 1 2>&1 |
        grep -E '^faults run:|violations|not linearizable|panicked|test result' |
        sed 's/^test long_run \.\.\. //'
}
if [[ -n "${OUT:-}" ]]; then run | tee "$OUT"; else run; fi
