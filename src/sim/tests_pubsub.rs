//! Publish/subscribe through the log under every fault: each replica delivers a gap-free
//! run of one sequence; delivering on receipt instead of on apply is caught.

use super::*;

fn pubsub_run(seed: u64, read_mode: ReadMode, bug: bool) -> SimOutcome {
    let cfg = SimConfig {
        read_mode,
        pubsub: true,
        bug_deliver_on_receipt: bug,
        ..SimConfig::new(seed, 3)
    };
    run(cfg)
}

#[test]
fn published_messages_reach_every_replica_in_one_order() {
    let mut delivered = 0;
    for (read_mode, seeds) in [(ReadMode::Log, 0..30), (ReadMode::QuorumLease, 30..40)] {
        for seed in seeds {
            let out = pubsub_run(seed, read_mode, false);
            assert!(
                out.violations.is_empty(),
                "seed {seed} ({read_mode}): {:#?}",
                out.violations
            );
            delivered += out.messages_delivered;
        }
    }
    // About a third of 160 operations per seed are writes, each a message delivered by
    // up to three replicas.
    assert!(delivered >= 40 * 100, "only {delivered} messages delivered");
}

#[test]
fn bug_deliver_on_receipt_is_caught() {
    let failing: Vec<u64> = (0..10)
        .filter(|&seed| !pubsub_run(seed, ReadMode::Log, true).violations.is_empty())
        .collect();
    assert!(
        failing.len() >= 5,
        "delivering on receipt failed only seeds {failing:?} of 10"
    );
}
