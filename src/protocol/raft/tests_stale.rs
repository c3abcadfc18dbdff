//! A replica restarted from an older copy of its storage learns from its peers that it
//! acknowledged more than the copy holds, and rejoins as a learner; one restarted from
//! its own storage is never taken for stale.

use super::*;

/// Three replicas, 0 leading; `before` writes happen before replica 1's storage is
/// copied and `after` writes after. Returns the group and the copy.
fn copied_then_written(before: u64, after: u64) -> (Group, Vec<Record>) {
    let mut g = Group::new(3);
    g.elect(0);
    for seq in 1..=before {
        g.request(0, seq, set("k", &seq.to_string(), seq));
        g.deliver_all();
    }
    let copy = g.records[1].clone();
    for seq in before + 1..=before + after {
        g.request(0, seq, set("k", &seq.to_string(), seq));
        g.deliver_all();
    }
    (g, copy)
}

/// Replica 1 restarts from `records`, with the restart check, and asks its peers.
fn restart_checked(g: &mut Group, records: Vec<Record>, bugs: Bugs) {
    let mut r = Replica::recover(cfg(3), ReplicaId(1), 11, None, records, false);
    r.set_bugs(bugs);
    r.start_restart_check();
    g.replicas[1] = r;
    g.records[1].clear();
    assert!(g.replicas[1].restart_checking());
    let term = g.replicas[1].term();
    // Before its peers answered it neither votes nor changes its term.
    g.replicas[1].on_message(
        g.now,
        ReplicaId(2),
        Message::Raft(Msg::RequestVote {
            term: 9,
            last_index: 99,
            last_term: 1,
        }),
    );
    g.collect(1);
    assert!(!g.wire.iter().any(|(f, _, _)| *f == ReplicaId(1)));
    assert_eq!(g.replicas[1].term(), term);
    g.tick(1, g.now);
    assert!(
        g.wire
            .iter()
            .any(|(f, _, m)| *f == ReplicaId(1) && matches!(m, Msg::RestartQuery))
    );
    g.deliver_all();
    assert!(!g.replicas[1].restart_checking(), "both peers answered");
}

#[test]
fn a_restored_older_copy_is_detected_and_votes_only_once_caught_up() {
    let (mut g, copy) = copied_then_written(2, 3);
    restart_checked(&mut g, copy, Bugs::default());
    let r1 = &g.replicas[1];
    assert_eq!(r1.stats().stale_data_detected, 1);
    assert!(r1.recovering(), "a learner, as after lost records");
    let finding = r1.stale_finding().expect("described");
    assert!(finding.contains("store entry 6"), "{finding}");
    // It follows and catches up, and votes again only after the learner's wait.
    g.run_for(2_500, None);
    let r1 = &g.replicas[1];
    assert!(!r1.recovering());
    assert_eq!(r1.voted_for, Some(ReplicaId(0)));
    assert_eq!(r1.kv().digest(), g.replicas[0].kv().digest());
    assert_eq!(g.leaders(), vec![(0, 1)]);
}

#[test]
fn a_copy_from_before_a_term_is_detected_by_the_term() {
    // Copied before the election: no term, no vote, no entry.
    let (mut g, _) = copied_then_written(0, 0);
    g.request(0, 1, set("k", "1", 1));
    g.deliver_all();
    restart_checked(&mut g, Vec::new(), Bugs::default());
    // `restart_checked` saw term 1 before: the copy's is 0.
    let finding = g.replicas[1].stale_finding().expect("detected").to_string();
    assert!(finding.contains("at term 1"), "{finding}");
    assert!(g.replicas[1].recovering());
}

#[test]
fn a_replica_restarted_from_its_own_storage_is_not_taken_for_stale() {
    let (mut g, _) = copied_then_written(2, 3);
    let own = g.records[1].clone();
    restart_checked(&mut g, own, Bugs::default());
    let r1 = &g.replicas[1];
    assert_eq!(r1.stats().stale_data_detected, 0);
    assert!(!r1.recovering());
    assert_eq!(r1.stale_finding(), None);
}

#[test]
fn with_the_bug_a_restored_copy_goes_unnoticed() {
    let (mut g, copy) = copied_then_written(2, 3);
    let bugs = Bugs {
        ignore_stale_data: true,
        ..Bugs::default()
    };
    restart_checked(&mut g, copy, bugs);
    assert_eq!(g.replicas[1].stats().stale_data_detected, 0);
    assert!(!g.replicas[1].recovering());
}

#[test]
fn without_every_peer_the_check_ends_after_the_wait_with_a_quorum() {
    let (mut g, _) = copied_then_written(1, 0);
    let own = g.records[1].clone();
    let mut r = Replica::recover(cfg(3), ReplicaId(1), 11, None, own, false);
    r.start_restart_check();
    g.replicas[1] = r;
    g.tick(1, g.now);
    // Replica 2 is down: only 0 answers.
    g.wire.retain(|(_, t, _)| *t != ReplicaId(2));
    g.deliver_all();
    assert!(g.replicas[1].restart_checking(), "one peer of two");
    let wait = crate::protocol::stale::WAIT_ELECTION_TIMEOUTS * cfg(3).election_timeout_ms * MS;
    g.tick(1, g.now + wait);
    assert!(
        !g.replicas[1].restart_checking(),
        "a quorum once the wait passed"
    );
}

/// Asks replica 1 for its vote for replica 2 in a term past every replica's, with a log
/// past every replica's; returns whether it granted it.
fn grants_vote_to_2(g: &mut Group) -> bool {
    let term = g.replicas.iter().map(Replica::term).max().unwrap_or(0) + 1;
    g.replicas[1].on_message(
        g.now,
        ReplicaId(2),
        Message::Raft(Msg::RequestVote {
            term,
            last_index: 1_000,
            last_term: term,
        }),
    );
    g.collect(1);
    let granted = g.wire.iter().any(|(f, t, m)| {
        *f == ReplicaId(1)
            && *t == ReplicaId(2)
            && matches!(m, Msg::VoteReply { granted: true, .. })
    });
    g.wire.retain(|(f, _, _)| *f != ReplicaId(1));
    granted
}

#[test]
fn a_stale_finding_is_durable_until_the_replica_caught_up() {
    let (mut g, copy) = copied_then_written(2, 3);
    restart_checked(&mut g, copy.clone(), Bugs::default());
    assert!(g.replicas[1].recovering());
    // Its storage now: the copy, then what it wrote since it restarted.
    let mut storage = copy;
    storage.append(&mut g.records[1]);
    let mark = Record::Raft(RaftRecord::StaleData);
    assert_eq!(storage.iter().filter(|r| **r == mark).count(), 1);
    // It crashes before it caught up. Restarted from that storage it is a learner at
    // once, with no check to run (its peers may have restarted and forgotten).
    let mut r = Replica::recover(cfg(3), ReplicaId(1), 12, None, storage.clone(), false);
    r.start_restart_check();
    assert!(r.recovering(), "the mark keeps it a learner");
    assert!(!r.restart_checking());
    g.replicas[1] = r;
    assert!(!grants_vote_to_2(&mut g), "a learner does not vote");
    // Without the mark, the same storage would vote (the check is what found it stale).
    let unmarked: Vec<Record> = storage.iter().filter(|r| **r != mark).cloned().collect();
    let mut blind = Group::from(vec![
        Replica::new(cfg(3), ReplicaId(0), 0),
        Replica::recover(cfg(3), ReplicaId(1), 12, None, unmarked, false),
        Replica::new(cfg(3), ReplicaId(2), 2),
    ]);
    assert!(grants_vote_to_2(&mut blind), "no mark: a voter");
    // It catches up, then votes again; the snapshot it asks for supersedes the mark.
    g.run_for(2_500, None);
    let r1 = &g.replicas[1];
    assert!(!r1.recovering(), "caught up");
    assert_eq!(r1.kv().digest(), g.replicas[0].kv().digest());
    let snapshot = r1.snapshot();
    let after: Vec<Record> = Vec::new();
    let r = Replica::recover(cfg(3), ReplicaId(1), 13, Some(snapshot), after, false);
    assert!(!r.recovering(), "the snapshot holds no mark");
    g.replicas[1] = r;
    assert!(grants_vote_to_2(&mut g), "a voter again");
}
