//! Cluster: a replica restarted from an older copy of its storage learns from its peers
//! that it acknowledged more than the copy holds, and rejoins as a learner; one restarted
//! from its own storage is never taken for stale.

use super::*;

/// Three replicas, r0 leading: `before` writes, then r1's durable records are copied,
/// then `after` writes. Returns the cluster and the copy.
fn copied_then_written(before: u64, after: u64) -> (Cluster, Vec<Record>) {
    let mut c = Cluster::new(3);
    c.elect(0);
    let mut copy = c.durable[1].clone();
    for i in 0..before + after {
        c.request(0, 100 + i, 7, i + 1, set(&format!("k{i}"), "v"));
        c.run(|_, _, _| true);
        assert!(matches!(c.reply_of(100 + i), Some(ClientReply::Done(_))));
        if i + 1 == before {
            copy = c.durable[1].clone();
        }
    }
    (c, copy)
}

/// r1 restarts from `records` with the restart check and asks its peers.
fn restart_checked(c: &mut Cluster, records: Vec<Record>, bugs: Bugs) {
    c.crash(1);
    let cfg = c.replicas[1].cfg.clone();
    let mut r = Replica::recover(cfg, ReplicaId(1), 99, None, records.clone(), false);
    r.set_bugs(bugs);
    r.start_restart_check();
    c.replicas[1] = r;
    c.durable[1] = records;
    c.up[1] = true;
    // Before its peers answered it promises nothing.
    prepare_from_r2(c, 50);
    assert!(c.wire.iter().all(|(f, _, _)| *f != ReplicaId(1)));
    c.replicas[1].on_tick(c.now);
    c.collect(1);
    assert!(
        c.wire
            .iter()
            .any(|(f, _, m)| *f == ReplicaId(1) && matches!(m, Message::RestartQuery))
    );
    c.run(|_, _, m| matches!(m, Message::RestartQuery | Message::RestartReport { .. }));
    assert!(!c.replicas[1].restart_checking(), "both peers answered");
}

/// Delivers to r1 a `Prepare` from r2 at `round` and collects what r1 does.
fn prepare_from_r2(c: &mut Cluster, round: u64) {
    let ballot = Ballot {
        round,
        node: ReplicaId(2),
    };
    let prepare = Message::Prepare {
        ballot,
        from_slot: 1,
    };
    c.replicas[1].on_message(c.now, ReplicaId(2), prepare);
    c.collect(1);
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
fn a_restored_older_copy_is_detected_and_votes_only_once_caught_up() {
    let (mut c, copy) = copied_then_written(2, 3);
    restart_checked(&mut c, copy, Bugs::default());
    let r1 = &c.replicas[1];
    assert_eq!(r1.stats().stale_data_detected, 1);
    assert!(r1.recovering(), "a learner, as after lost records");
    let finding = r1.stale_finding().expect("described");
    assert!(finding.contains("accept slot 5"), "{finding}");
    tick_all_for(&mut c, 60, 50 * MS);
    let r1 = &c.replicas[1];
    assert!(!r1.recovering(), "caught up and votes again");
    assert_eq!(r1.kv().digest(), c.replicas[0].kv().digest());
    assert!(
        c.snapshots_asked[1] > 0,
        "a snapshot makes the catch-up durable"
    );
}

#[test]
fn a_copy_from_before_a_promise_is_detected_by_the_ballot() {
    let (mut c, _) = copied_then_written(0, 1);
    restart_checked(&mut c, Vec::new(), Bugs::default());
    let finding = c.replicas[1].stale_finding().expect("detected").to_string();
    assert!(finding.contains("promise ballot"), "{finding}");
    assert!(c.replicas[1].recovering());
}

#[test]
fn a_replica_restarted_from_its_own_storage_is_not_taken_for_stale() {
    let (mut c, _) = copied_then_written(2, 3);
    let own = c.durable[1].clone();
    restart_checked(&mut c, own, Bugs::default());
    let r1 = &c.replicas[1];
    assert_eq!(r1.stats().stale_data_detected, 0);
    assert!(!r1.recovering());
    assert_eq!(r1.stale_finding(), None);
}

#[test]
fn with_the_bug_a_restored_copy_goes_unnoticed() {
    let (mut c, copy) = copied_then_written(2, 3);
    let bugs = Bugs {
        ignore_stale_data: true,
        ..Bugs::default()
    };
    restart_checked(&mut c, copy, bugs);
    assert_eq!(c.replicas[1].stats().stale_data_detected, 0);
    assert!(!c.replicas[1].recovering());
}

/// Sends r1 a `Prepare` from r2 at a ballot above every replica's; returns whether r1
/// promised it.
fn promises_to_r2(c: &mut Cluster) -> bool {
    let round = c
        .replicas
        .iter()
        .map(|r| r.promised.round)
        .max()
        .unwrap_or(0)
        + 1;
    prepare_from_r2(c, round);
    c.sync(1);
    let promised = c.wire.iter().any(|(f, t, m)| {
        *f == ReplicaId(1) && *t == ReplicaId(2) && matches!(m, Message::Promise { .. })
    });
    c.wire.retain(|(f, _, _)| *f != ReplicaId(1));
    promised
}

#[test]
fn a_stale_finding_is_durable_until_the_replica_caught_up() {
    let (mut c, copy) = copied_then_written(2, 3);
    restart_checked(&mut c, copy, Bugs::default());
    assert!(c.replicas[1].recovering());
    let is_mark = |r: &Record| matches!(r, Record::StaleData { seen_through: 5 });
    assert_eq!(c.durable[1].iter().filter(|r| is_mark(r)).count(), 1);
    // It crashes before it caught up. Restarted from its storage it is a learner at
    // once, with no check to run (its peers may have restarted and forgotten).
    c.crash(1);
    c.restart(1);
    c.replicas[1].start_restart_check();
    assert!(c.replicas[1].recovering(), "the mark keeps it a learner");
    assert!(!c.replicas[1].restart_checking());
    assert!(!promises_to_r2(&mut c), "a learner does not promise");
    // Without the mark, the same storage would promise (the check is what found it).
    let unmarked: Vec<Record> = c.durable[1]
        .iter()
        .filter(|r| !is_mark(r))
        .cloned()
        .collect();
    let cfg = c.replicas[1].cfg.clone();
    let mut blind = Cluster::new(3);
    blind.replicas[1] = Replica::recover(cfg.clone(), ReplicaId(1), 98, None, unmarked, false);
    assert!(promises_to_r2(&mut blind), "no mark: a voter");
    // It catches up, then votes again; the snapshot it asks for supersedes the mark.
    let asked = c.snapshots_asked[1];
    tick_all_for(&mut c, 60, 50 * MS);
    let r1 = &c.replicas[1];
    assert!(!r1.recovering(), "caught up");
    assert_eq!(r1.kv().digest(), c.replicas[0].kv().digest());
    assert!(c.snapshots_asked[1] > asked);
    let snapshot = r1.snapshot();
    c.replicas[1] = Replica::recover(cfg, ReplicaId(1), 97, Some(snapshot), Vec::new(), false);
    assert!(!c.replicas[1].recovering(), "the snapshot holds no mark");
    assert!(promises_to_r2(&mut c), "a voter again");
}
