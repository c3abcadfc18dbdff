//! The fault "a replica's storage is replaced by an older copy of itself": the restart
//! check detects it and the replica rejoins as a learner, for both protocols. (With the
//! check ignored, `--bug ignore-stale-data`, 400 seeds of each protocol found no
//! violation once the fault was limited to what the check can detect: a forgotten
//! acknowledgement harms only when the replica's vote then elects a leader without it,
//! which needs the one peer holding it out of that election.)

use super::*;

/// Seeds per configuration; every one may restore a copy.
const SEEDS: u64 = 60;

fn restore_run(protocol: Protocol, bugs: Bugs, replicas: usize, seed: u64) -> SimOutcome {
    let mut cfg = SimConfig::new(seed, replicas);
    cfg.protocol = protocol;
    cfg.bugs = bugs;
    cfg.restore_seeds_percent = 100;
    run(cfg)
}

#[test]
fn restored_copies_are_detected_with_no_violation() {
    for protocol in Protocol::ALL {
        for replicas in [3, 5] {
            let (mut restored, mut detected) = (0, 0);
            let mut failing = Vec::new();
            for seed in 0..SEEDS {
                let out = restore_run(protocol, Bugs::default(), replicas, seed);
                restored += out.copies_restored;
                detected += out.stats.stale_data_detected;
                if !out.violations.is_empty() {
                    eprintln!(
                        "seed {seed} failed (replay: corepax sim --protocol {protocol} --seeds 1 --seed {seed} --replicas {replicas} --restore-seeds-percent 100):"
                    );
                    for v in &out.violations {
                        eprintln!("  {v}");
                    }
                    failing.push(seed);
                }
            }
            assert!(
                failing.is_empty(),
                "{protocol} × {replicas}: failing seeds {failing:?}"
            );
            assert!(
                restored > 0,
                "{protocol} × {replicas}: no copy was restored"
            );
            assert!(
                detected > 0,
                "{protocol} × {replicas}: {restored} copies restored, none detected"
            );
        }
    }
}
