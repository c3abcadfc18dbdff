//! Cluster: storage faults: a replica that lost synced records withholds its vote, serves
//! no reads and grants no leases until it recovered them from the group.

use super::*;

/// Everyone's records up to a point, with `drop` (indexes) left out of replica `i`'s:
/// what it reads back when storage lost those synced records.
fn records_without(c: &Cluster, i: usize, drop: std::ops::Range<usize>) -> Vec<Record> {
    c.durable[i]
        .iter()
        .enumerate()
        .filter(|(n, _)| !drop.contains(n))
        .map(|(_, r)| r.clone())
        .collect()
}

/// Ticks every live replica `times` times, `step` apart, delivering everything between.
fn tick_all_for(c: &mut Cluster, times: usize, step: Nanos) {
    for _ in 0..times {
        c.now += step;
        for i in 0..c.replicas.len() {
            if c.up[i] {
                c.replicas[i].on_tick(c.now);
                c.collect(i);
            }
        }
        c.run(|_, _, _| true);
    }
}

#[test]
fn a_replica_that_lost_synced_records_withholds_its_vote_until_it_caught_up() {
    // r2 is down while r0 (leader) and r1 acknowledge writes.
    let mut c = Cluster::new(3);
    c.crash(2);
    c.elect(0);
    for i in 0..6u64 {
        c.request(0, 100 + i, 7, i + 1, set(&format!("k{i}"), "v"));
        c.run(|_, _, _| true);
        assert!(matches!(c.reply_of(100 + i), Some(ClientReply::Done(_))));
    }
    let ballot0 = c.replicas[0].promised();
    // All stop; r1's storage loses every record but its first and last two.
    c.crash(0);
    c.crash(1);
    let n = c.durable[1].len();
    assert!(n > 6, "r1 persisted its accepts");
    let kept = records_without(&c, 1, 1..n - 2);
    let cfg = c.replicas[1].cfg.clone();
    c.replicas[1] = Replica::recover(cfg, ReplicaId(1), 99, None, kept, true);
    c.up[1] = true;
    c.restart(2);
    assert!(c.replicas[1].recovering());

    // r1 and r2 alone: r1 never promises, so r2 cannot lead (it would fill the slots with
    // no-ops), and r1 never campaigns.
    tick_all_for(&mut c, 40, 50 * MS);
    assert!(c.replicas[2].stats().elections_started > 0);
    assert!(c.replicas[2].leading().is_none(), "no leader without r0");
    assert!(c.replicas[1].leading().is_none());
    assert_eq!(c.replicas[1].stats().elections_started, 0);
    assert!(c.replicas[1].stats().votes_withheld > 0);
    assert!(c.replicas[1].recovering());

    // r0 returns: a leader is elected without r1, and r1 learns every chosen slot.
    c.restart(0);
    tick_all_for(&mut c, 60, 50 * MS);
    let leader = (0..3).find(|&i| c.replicas[i].leading().is_some());
    let leader = leader.expect("r0 and r2 elect a leader");
    assert_ne!(leader, 1);
    assert!(!c.replicas[1].recovering(), "r1 caught up and votes again");
    let ballot = c.replicas[leader].promised();
    assert!(ballot > ballot0);
    assert_eq!(
        c.replicas[1].promised(),
        ballot,
        "r1 promised the leader's ballot"
    );
    assert!(
        c.snapshots_asked[1] > 0,
        "the end of recovery is made durable"
    );
    for i in 0..6u64 {
        for r in 0..3 {
            assert_eq!(
                value(&c, r, &format!("k{i}")).as_deref(),
                Some(&b"v"[..]),
                "k{i} at r{r}"
            );
        }
    }

    // Now r1's vote counts: with the other follower down, a write still commits.
    let other = 3 - leader - 1;
    c.crash(other);
    c.request(leader, 200, 8, 1, set("after", "x"));
    c.run(|_, _, _| true);
    assert!(matches!(c.reply_of(200), Some(ClientReply::Done(_))));
}

#[test]
fn a_recovering_replica_serves_no_reads_and_grants_no_leases() {
    let mut c = Cluster::with_reads(3, crate::config::ReadMode::Digest);
    let cfg = c.replicas[1].cfg.clone();
    c.replicas[1] = Replica::recover(cfg, ReplicaId(1), 99, None, Vec::new(), true);
    c.request(1, 1, 9, 1, get("k"));
    assert!(matches!(c.reply_of(1), Some(ClientReply::NotLeader { .. })));
    let lease = Message::LeaseRequest {
        seq: 1,
        ballot: Ballot {
            round: 1,
            node: ReplicaId(0),
        },
    };
    c.replicas[1].on_message(c.now, ReplicaId(0), lease);
    c.collect(1);
    let prepare = Message::Prepare {
        ballot: Ballot {
            round: 1,
            node: ReplicaId(0),
        },
        from_slot: 1,
    };
    c.replicas[1].on_message(c.now, ReplicaId(0), prepare);
    c.collect(1);
    assert!(
        c.wire.iter().all(|(from, _, _)| *from != ReplicaId(1)),
        "no grant and no promise: {:?}",
        c.wire
    );
    assert_eq!(c.replicas[1].stats().votes_withheld, 1);
}

#[test]
fn a_leader_whose_catch_up_source_lost_its_records_still_catches_up() {
    // r2 is down while r0 (leader) and r1 choose six slots, and both know them chosen.
    let mut c = Cluster::new(3);
    c.crash(2);
    c.elect(0);
    for i in 0..6u64 {
        c.request(0, 100 + i, 7, i + 1, set(&format!("k{i}"), "v"));
        c.run(|_, _, _| true);
    }
    tick_all_for(&mut c, 2, 50 * MS);
    assert!(c.replicas[1].commit_index() >= 6);
    // r0 stops; r2 returns and leads with r1's promise, which says the slots are chosen:
    // r2 will learn them by catch-up from r1, not propose them again.
    c.crash(0);
    c.restart(2);
    c.replicas[2].start_election(c.now);
    c.replicas[2].finish_step(c.now);
    c.collect(2);
    c.run(|_, _, m| matches!(m, Message::Prepare { .. } | Message::Promise { .. }));
    assert!(c.replicas[2].leading().is_some());
    assert_eq!(c.replicas[2].commit_index(), 0);
    // Before it does, r1's storage loses its accepts: it comes back a learner that can
    // serve none of them. r0, which knows them, comes back too.
    c.crash(1);
    let n = c.durable[1].len();
    let kept = records_without(&c, 1, 1..n - 1);
    let cfg = c.replicas[1].cfg.clone();
    c.replicas[1] = Replica::recover(cfg, ReplicaId(1), 99, None, kept, true);
    c.up[1] = true;
    assert!(c.replicas[1].recovering());
    c.restart(0);

    tick_all_for(&mut c, 60, 20 * MS);
    for r in 0..3 {
        assert!(c.replicas[r].commit_index() >= 6, "r{r} caught up");
        for i in 0..6u64 {
            assert_eq!(
                value(&c, r, &format!("k{i}")).as_deref(),
                Some(&b"v"[..]),
                "k{i} at r{r}"
            );
        }
    }
    assert!(!c.replicas[1].recovering());
    let leader = (0..3).find(|&i| c.replicas[i].leading().is_some());
    let leader = leader.expect("a leader");
    c.request(leader, 200, 8, 1, set("after", "x"));
    c.run(|_, _, _| true);
    assert!(matches!(c.reply_of(200), Some(ClientReply::Done(_))));
}

#[test]
fn a_learner_waits_for_slots_chosen_with_its_lost_vote_that_the_leader_does_not_know() {
    // r1 is down while r0 (leader) and r2 choose three slots; r2 learns they are chosen.
    let mut c = Cluster::new(3);
    c.crash(1);
    c.elect(0);
    for i in 0..3u64 {
        c.request(0, 100 + i, 7, i + 1, set(&format!("k{i}"), "v"));
        c.run(|_, _, _| true);
    }
    tick_all_for(&mut c, 2, 50 * MS);
    assert!(c.replicas[2].commit_index() >= 3);
    // r0 stops; r1 returns empty and leads with r2's promise, which says slots 1-3 are
    // chosen: r1 does not propose them again, it will learn them.
    c.crash(0);
    c.restart(1);
    c.replicas[1].start_election(c.now);
    c.replicas[1].finish_step(c.now);
    c.collect(1);
    c.run(|_, _, m| matches!(m, Message::Prepare { .. } | Message::Promise { .. }));
    assert!(c.replicas[1].leading().is_some());
    assert_eq!(c.replicas[1].commit_index(), 0);
    // r2's storage loses every record but its first: its votes for slots 1-3, and any
    // record naming them. The leader's commit index (0) covers nothing it lost.
    c.crash(2);
    let n = c.durable[2].len();
    let kept = records_without(&c, 2, 1..n);
    let cfg = c.replicas[2].cfg.clone();
    c.replicas[2] = Replica::recover(cfg, ReplicaId(2), 99, None, kept, true);
    c.up[2] = true;

    // Without r0, r2 must not vote again: the leader proposed through slot 3, and r2
    // cannot learn those slots. Had it voted, r1 would have filled them with no-ops.
    tick_all_for(&mut c, 40, 20 * MS);
    assert!(c.replicas[2].recovering(), "r2 waits for slots 1-3");
    assert_eq!(
        c.replicas[1].commit_index(),
        0,
        "nothing chosen over slots 1-3"
    );
    assert_eq!(c.replicas[2].commit_index(), 0);

    // r0 returns: everyone learns slots 1-3 as r0 and r2 chose them.
    c.restart(0);
    tick_all_for(&mut c, 60, 20 * MS);
    assert!(!c.replicas[2].recovering());
    for r in 0..3 {
        for i in 0..3u64 {
            assert_eq!(
                value(&c, r, &format!("k{i}")).as_deref(),
                Some(&b"v"[..]),
                "k{i} at r{r}"
            );
        }
    }
    let leader = (0..3).find(|&i| c.replicas[i].leading().is_some());
    let leader = leader.expect("a leader");
    c.request(leader, 200, 8, 1, set("after", "x"));
    c.run(|_, _, _| true);
    assert!(matches!(c.reply_of(200), Some(ClientReply::Done(_))));
}
