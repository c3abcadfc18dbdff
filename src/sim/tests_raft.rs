//! The simulator runs Raft under every fault it injects (lost synced records included),
//! and its checkers catch Raft's deliberate bugs.
//! (`--bug reply-before-persist` is caught too, first at seed 59 of 3 replicas, but the
//! seeds before it cost about 40 s of checking: the core's unit tests cover it instead,
//! as they cover `commit-older-term`, which needs the rare interleaving of Figure 8.)

use super::*;

fn raft(seed: u64, replicas: usize) -> SimConfig {
    SimConfig {
        protocol: Protocol::Raft,
        ..SimConfig::new(seed, replicas)
    }
}

fn assert_raft_clean(replicas: usize, seeds: u64) {
    let summary = run_many(0, seeds, &raft(0, replicas), |seed, outcome| {
        eprintln!(
            "seed {seed} failed (replay: corepax sim --protocol raft --seeds 1 --seed {seed} --replicas {replicas}):"
        );
        for v in &outcome.violations {
            eprintln!("  {v}");
        }
    });
    assert_eq!(summary.seeds, seeds);
    assert!(
        summary.ops >= seeds as usize * 100,
        "clients ran too few operations"
    );
    assert!(
        summary.snapshots_sent > 0,
        "no seed sent a snapshot to a lagging replica"
    );
    assert!(
        summary.stats.snapshots_installed > 0,
        "no replica installed a transfer (built off its steps, as the node builds it)"
    );
    assert!(
        summary.stats.elections_started > seeds,
        "too few elections: {}",
        summary.stats.elections_started
    );
    assert!(
        summary.forwards > summary.seeds,
        "the nodes' client paths forwarded {} commands to a leader",
        summary.forwards
    );
    assert_eq!(summary.failing_seeds, Vec::<u64>::new());
}

#[test]
fn raft_3_replicas_200_seeds_linearizable() {
    assert_raft_clean(3, 200);
}

#[test]
fn raft_5_replicas_100_seeds_linearizable() {
    assert_raft_clean(5, 100);
}

fn raft_seeds_until_violation(bugs: Bugs, seeds_max: u64) -> Option<u64> {
    (0..seeds_max).find(|&seed| {
        let mut cfg = raft(seed, 3);
        cfg.bugs = bugs;
        !run(cfg).violations.is_empty()
    })
}

#[test]
fn raft_bug_vote_without_log_check_is_caught() {
    let bugs = Bugs {
        vote_without_log_check: true,
        ..Bugs::default()
    };
    let found = raft_seeds_until_violation(bugs, 100);
    assert!(
        found.is_some(),
        "votes without the up-to-date check went unnoticed in 100 seeds"
    );
}

#[test]
fn raft_same_seed_same_run() {
    let a = run(SimConfig {
        trace: true,
        ..raft(42, 3)
    });
    let b = run(SimConfig {
        trace: true,
        ..raft(42, 3)
    });
    assert_eq!(a.ops, b.ops);
    assert_eq!(a.trace, b.trace);
    assert!(a.trace.contains("append t"));
}

#[test]
fn raft_read_index_3_replicas_200_seeds_linearizable() {
    let base = SimConfig {
        read_mode: ReadMode::ReadIndex,
        ..raft(0, 3)
    };
    let summary = run_many(0, 200, &base, |seed, outcome| {
        eprintln!(
            "seed {seed} failed (replay: corepax sim --protocol raft --read-mode read-index --seeds 1 --seed {seed}):"
        );
        for v in &outcome.violations {
            eprintln!("  {v}");
        }
    });
    assert!(summary.ops >= 200 * 100, "clients ran too few operations");
    assert!(
        summary.stats.reads_local > 200 * 10,
        "only {} reads were served by read-index",
        summary.stats.reads_local
    );
    assert_eq!(summary.failing_seeds, Vec::<u64>::new());
}

fn raft_lease(seed: u64, replicas: usize) -> SimConfig {
    SimConfig {
        read_mode: ReadMode::LeaderLease,
        ..raft(seed, replicas)
    }
}

fn assert_raft_lease_clean(base: &SimConfig, seeds: u64, flags: &str) -> Summary {
    let replicas = base.replicas;
    let summary = run_many(0, seeds, base, |seed, outcome| {
        eprintln!(
            "seed {seed} failed (replay: corepax sim --protocol raft --read-mode leader-lease --seeds 1 --seed {seed} --replicas {replicas}{flags}):"
        );
        for v in &outcome.violations {
            eprintln!("  {v}");
        }
    });
    assert_eq!(summary.failing_seeds, Vec::<u64>::new());
    summary
}

#[test]
fn raft_leader_lease_3_and_5_replicas_linearizable() {
    for (replicas, seeds) in [(3, 100), (5, 40)] {
        let summary = assert_raft_lease_clean(&raft_lease(0, replicas), seeds, "");
        assert!(
            summary.ops >= seeds as usize * 100,
            "clients ran too few operations"
        );
        // The leader answers most reads alone, on the path the node takes.
        assert!(
            summary.reads_now > seeds * 10,
            "{replicas} replicas: {} reads answered under the lease",
            summary.reads_now
        );
        assert!(
            summary.stats.votes_withheld > 0,
            "no grant ever held a vote back"
        );
    }
}

/// Clocks far beyond the bound, arranged for the worst (a leader's clock crawls, the
/// grantors' race): the clock-rate check keeps every read fresh, and trusting the clocks
/// instead (`Bugs::trust_clocks`) gives stale reads.
#[test]
fn raft_leader_lease_drift_beyond_bound_safe_with_the_check_caught_without() {
    let base = SimConfig {
        drift_beyond_bound: true,
        ..raft_lease(0, 3)
    };
    let summary = assert_raft_lease_clean(&base, 40, " --drift-beyond-bound");
    assert!(summary.stats.clock_checks_failed > 0);
    let found = (0..100).find(|&seed| {
        let cfg = SimConfig {
            seed,
            bugs: Bugs {
                trust_clocks: true,
                ..Bugs::default()
            },
            ..base.clone()
        };
        run(cfg)
            .violations
            .iter()
            .any(|v| v.contains("not linearizable"))
    });
    assert!(
        found.is_some(),
        "clocks beyond the bound went unnoticed in 100 seeds"
    );
}

/// One replica's clock runs 30 % slow, six times the bound: caught in every seed.
#[test]
fn raft_leader_lease_slow_clock_is_caught() {
    let base = SimConfig {
        slow_clock_ppm: Some(-300_000),
        ..raft_lease(0, 3)
    };
    let summary = assert_raft_lease_clean(&base, 40, " --slow-clock-ppm -300000");
    assert!(
        summary.stats.clock_checks_failed >= 2 * 40,
        "the slow clock was caught {} times in 40 seeds",
        summary.stats.clock_checks_failed
    );
    assert!(summary.stats.leases_untrusted > 0);
}

/// Leases three times the election timeout: then only the grants keep a follower from
/// voting inside a lease (hearing its leader holds a vote back for an election timeout
/// only). (`Bugs::vote_inside_lease` is not caught here: a leader cut off steps down after
/// an election timeout without answers, before the others can elect a new one, unless it
/// is paused; the core's tests pause one and catch it.)
#[test]
fn raft_long_leases_linearizable() {
    let base = SimConfig {
        lease_ms: Some(300),
        ..raft_lease(0, 3)
    };
    let summary = assert_raft_lease_clean(&base, 40, " (lease_ms 300)");
    assert!(
        summary.reads_now > 40 * 10,
        "{} lease reads",
        summary.reads_now
    );
}

/// Seeds in which every crash may lose synced records mid-log.
const CORRUPTION_SEEDS: u64 = 60;

fn raft_corruption_run(bugs: Bugs, replicas: usize, seed: u64) -> SimOutcome {
    run(SimConfig {
        bugs,
        corrupt_seeds_percent: 100,
        ..raft(seed, replicas)
    })
}

#[test]
fn raft_bug_truncate_at_corruption_is_caught() {
    let bugs = Bugs {
        truncate_at_corruption: true,
        ..Bugs::default()
    };
    let found = (0..CORRUPTION_SEEDS).find(|&seed| {
        let out = raft_corruption_run(bugs, 3, seed);
        out.violations.iter().any(|v| !v.starts_with("liveness"))
    });
    assert!(
        found.is_some(),
        "voting on a log that lost synced records went unnoticed in {CORRUPTION_SEEDS} seeds"
    );
}

/// The same seeds without the bug: the learner rule keeps every checker green.
#[test]
fn raft_lost_synced_records_3_and_5_replicas_no_violation() {
    for replicas in [3, 5] {
        let mut lost = 0;
        let mut withheld = 0;
        let mut failing = Vec::new();
        for seed in 0..CORRUPTION_SEEDS {
            let out = raft_corruption_run(Bugs::default(), replicas, seed);
            lost += out.records_lost_crashes;
            withheld += out.stats.votes_withheld;
            if !out.violations.is_empty() {
                eprintln!(
                    "seed {seed} failed (replay: corepax sim --protocol raft --seeds 1 --seed {seed} --replicas {replicas} --corrupt-seeds-percent 100):"
                );
                for v in &out.violations {
                    eprintln!("  {v}");
                }
                failing.push(seed);
            }
        }
        assert!(
            lost > CORRUPTION_SEEDS,
            "only {lost} crashes lost synced records"
        );
        assert!(withheld > 0, "no recovering replica ever withheld a vote");
        assert_eq!(failing, Vec::<u64>::new(), "{replicas} replicas");
    }
}
