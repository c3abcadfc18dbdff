//! The pause fault (`pause.rs`): a replica that stops for a while and resumes with its
//! old state is what a leader lease must be safe against. Every lease mode, and Raft's
//! read-index, stays linearizable with pauses in every seed. (`--bug vote-inside-lease`
//! is not caught by these seeds, nor in 500 with pauses: a resumed leader answers the
//! reads that waited for it, all invoked before the new leader's writes, and steps down
//! at its next tick, before a read invoked later reaches it. The core's unit tests catch
//! the bug.)

use super::*;

/// Seeds of each run; every one pauses replicas.
const SEEDS: u64 = 40;

fn paused(protocol: Protocol, read_mode: ReadMode, seed: u64, bugs: Bugs) -> SimConfig {
    SimConfig {
        protocol,
        read_mode,
        bugs,
        pause_seeds_percent: 100,
        // Leases three times the election timeout: only the grants hold votes back.
        lease_ms: Some(300),
        ..SimConfig::new(seed, 3)
    }
}

#[test]
fn pauses_leave_every_lease_mode_linearizable() {
    let modes = [
        (Protocol::Raft, ReadMode::LeaderLease),
        (Protocol::Raft, ReadMode::ReadIndex),
        (Protocol::Multipaxos, ReadMode::LeaderLease),
        (Protocol::Multipaxos, ReadMode::QuorumLease),
    ];
    for (protocol, read_mode) in modes {
        let base = paused(protocol, read_mode, 0, Bugs::default());
        let summary = run_many(0, SEEDS, &base, |seed, outcome| {
            eprintln!(
                "seed {seed} failed (replay: corepax sim --protocol {protocol} --read-mode {read_mode} --seeds 1 --seed {seed} --pause-seeds-percent 100 --lease-ms 300):"
            );
            for v in &outcome.violations {
                eprintln!("  {v}");
            }
        });
        assert!(
            summary.pauses > SEEDS,
            "{protocol} {read_mode}: {} pauses",
            summary.pauses
        );
        assert_eq!(
            summary.failing_seeds,
            Vec::<u64>::new(),
            "{protocol} {read_mode}"
        );
    }
}
