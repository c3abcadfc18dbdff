//! A replica whose storage lost synced records rejoins as a learner: it votes for nobody
//! until it waited out any candidacy that may hold its lost vote, heard a quorum's terms
//! and caught up with a leader of at least those terms.

use super::*;

#[test]
fn a_replica_that_lost_records_votes_only_once_caught_up() {
    let mut g = Group::new(3);
    g.elect(0);
    for seq in 1..=4 {
        g.request(0, seq, set("k", &seq.to_string(), seq));
        g.deliver_all();
    }
    let records = g.records[1].clone();
    g.replicas[1] = Replica::recover(cfg(3), ReplicaId(1), 11, None, records, true);
    assert!(g.replicas[1].recovering());
    assert_eq!(g.replicas[1].term(), 1, "the term its records named");
    assert_eq!(
        g.replicas[1].last_index(),
        0,
        "the WAL's entries are not trusted"
    );
    // A candidate of a later term gets no vote, and no term change.
    g.replicas[1].on_message(
        g.now,
        ReplicaId(2),
        Message::Raft(Msg::RequestVote {
            term: 5,
            last_index: 9,
            last_term: 1,
        }),
    );
    g.collect(1);
    assert!(
        !g.wire
            .iter()
            .any(|(f, _, m)| *f == ReplicaId(1) && matches!(m, Msg::VoteReply { .. }))
    );
    assert_eq!(g.replicas[1].term(), 1);
    assert_eq!(g.replicas[1].stats().votes_withheld, 1);
    // The leader keeps writing; the learner follows and catches up, but recovers only
    // after three election timeouts (1.5 s here) and a quorum's reports.
    g.run_for(1_000, None);
    g.request(0, 5, set("k", "5", 5));
    g.run_for(400, None);
    assert!(g.replicas[1].recovering(), "recovered before the wait");
    assert_eq!(g.replicas[1].commit_index(), g.replicas[0].commit_index());
    g.run_for(600, None);
    let r1 = &g.replicas[1];
    assert!(!r1.recovering());
    assert_eq!(
        r1.voted_for,
        Some(ReplicaId(0)),
        "no second vote in the leader's term"
    );
    assert_eq!(r1.term(), g.replicas[0].term());
    assert_eq!(r1.kv().digest(), g.replicas[0].kv().digest());
    assert!(
        g.records[1].iter().any(|r| matches!(
            r,
            Record::Raft(RaftRecord::Vote {
                voted_for: Some(ReplicaId(0)),
                ..
            })
        )),
        "the vote is persisted"
    );
    assert_eq!(g.leaders(), vec![(0, 1)]);
}
