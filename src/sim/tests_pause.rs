//! The pause fault (`pause.rs`): a replica that stops for a while and resumes with its
//! old state is what a leader lease must be safe against. Every lease mode, and Raft's
//! read-index, stays linearizable with pauses in every seed. `--bug vote-inside-lease`
//! is not caught by those seeds (nor in 500): a resumed leader answers the reads that
//! waited for it, all invoked before the new leader's writes, and steps down at its next
//! tick, before a read invoked later reaches it. It is caught when clients keep sending
//! new reads to the paused leader (`pause_leader_reads_wait`): a read invoked after the
//! new leader's write waits for the old one, which answers it from its lease on resuming.

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

/// Seeds searched for detections of `vote_inside_lease` with the paused leader's reads.
const VOTE_INSIDE_LEASE_SEEDS_MAX: u64 = 400;
/// Detections wanted within them (2 in the first 72 seeds when written).
const VOTE_INSIDE_LEASE_DETECTIONS: usize = 2;

fn paused_leader_reads(seed: u64, bugs: Bugs) -> SimConfig {
    SimConfig {
        pause_leader_reads_wait: true,
        ..paused(Protocol::Raft, ReadMode::LeaderLease, seed, bugs)
    }
}

#[test]
fn raft_votes_inside_the_lease_give_stale_reads_at_a_resumed_leader() {
    let bugs = Bugs {
        vote_inside_lease: true,
        ..Bugs::default()
    };
    let mut caught = Vec::new();
    let mut searched = 0;
    while caught.len() < VOTE_INSIDE_LEASE_DETECTIONS && searched < VOTE_INSIDE_LEASE_SEEDS_MAX {
        let out = run(paused_leader_reads(searched, bugs));
        if out
            .violations
            .iter()
            .any(|v| v.contains("not linearizable"))
        {
            caught.push(searched);
        }
        searched += 1;
    }
    assert_eq!(
        caught.len(),
        VOTE_INSIDE_LEASE_DETECTIONS,
        "vote_inside_lease caught in seeds {caught:?} of 0..{searched}"
    );
    // The same seeds without the bug: the fault alone breaks nothing.
    let base = paused_leader_reads(0, Bugs::default());
    let summary = run_many(0, searched, &base, |seed, outcome| {
        eprintln!(
            "seed {seed} failed (replay: corepax sim --protocol raft --read-mode leader-lease --seeds 1 --seed {seed} --pause-seeds-percent 100 --lease-ms 300 --pause-leader-reads-wait):"
        );
        for v in &outcome.violations {
            eprintln!("  {v}");
        }
    });
    assert!(summary.pauses >= searched, "{} pauses", summary.pauses);
    assert_eq!(summary.failing_seeds, Vec::<u64>::new());
}
