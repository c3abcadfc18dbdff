//! Early learning: a follower answers its own forward from its accept and the leader's
//! vote; never with more than three replicas or in quorum-lease mode, never from its own
//! vote, and a leader-lease read of a key it voted on goes through the log.

use super::*;
use crate::config::ReadMode;

/// r0 leads; every replica's session is its index + 100 (r1 forwards as client 101).
fn cluster(n: usize, mode: ReadMode) -> Cluster {
    let mut c = Cluster::with_reads(n, mode);
    for (i, r) in c.replicas.iter_mut().enumerate() {
        r.set_session(100 + i as u64);
        r.set_bugs(Bugs {
            trust_clocks: true,
            ..Bugs::default()
        });
    }
    if mode == ReadMode::LeaderLease {
        c.wait_out_startup_amnesia();
    }
    // The new leader asks for its lease at once (leader-lease mode); every replica grants it.
    c.elect(0);
    c.run(|_, _, _| true);
    c
}

/// r1 forwards SET a 1 as `token` (its own session) and the leader proposes it; the
/// leader's disk syncs, the followers' do not yet.
fn forward_from_r1(c: &mut Cluster, token: Token) {
    let req = r1_set_a();
    c.replicas[1].expect_forwarded(token, &req);
    c.replicas[0].on_request(c.now, 500, req);
    c.collect(0);
    c.sync(0);
}

/// SET a 1, the first request of r1's session.
fn r1_set_a() -> Request {
    Request {
        client: 101,
        seq: 1,
        ack_floor: 1,
        cmd: set("a", "1"),
    }
}

/// GET a, request `seq` of session `client`.
fn get_a(client: u64, seq: u64) -> Request {
    Request {
        client,
        seq,
        ack_floor: seq,
        cmd: get("a"),
    }
}

/// What GET a answers once SET a 1 is applied.
fn a_is_1() -> ClientReply {
    ClientReply::Done(Reply::Value(Some(Bytes::from("1"))))
}

/// A cluster in log mode where every replica applied SET a 1 (from r0's own session).
fn cluster_with_a_1() -> Cluster {
    let mut c = cluster(3, ReadMode::Log);
    c.request(0, 5, 100, 1, set("a", "1"));
    c.run(|_, _, _| true);
    c
}

/// Delivers what is on the wire to `to` only, without syncing anyone.
fn deliver_to(c: &mut Cluster, to: usize) {
    c.deliver(|_, t, _| t.index() == to);
}

#[test]
fn a_follower_answers_its_forward_from_its_accept_and_the_leaders_vote() {
    let mut c = cluster(3, ReadMode::Log);
    forward_from_r1(&mut c, 77);
    // r1 gets the accept and the leader's vote before its own accept is durable.
    deliver_to(&mut c, 1);
    assert!(
        c.reply_of(77).is_none(),
        "not before our own accept is durable"
    );
    c.sync(1);
    assert_eq!(c.reply_of(77), Some(&ClientReply::Done(Reply::Ok)));
    assert_eq!(value(&c, 1, "a"), Some(Bytes::from("1")));
    assert_eq!(c.replicas[1].stats().slots_learned_early, 1);
    assert_eq!(c.replicas[1].stats().forwards_answered_early, 1);
    // The leader has not heard a follower's vote yet: it has not answered.
    assert!(c.reply_of(500).is_none());
    // r2, which forwarded nothing, learns the slot the same way.
    deliver_to(&mut c, 2);
    c.sync(2);
    assert_eq!(value(&c, 2, "a"), Some(Bytes::from("1")));
}

#[test]
fn a_forwarded_read_is_answered_where_it_was_forwarded_and_not_by_the_leader() {
    use crate::protocol::waiting::ANSWERED_THERE;
    let mut c = cluster_with_a_1();
    let read = get_a(101, 1);
    assert!(
        c.replicas[1].expect_forwarded(77, &read),
        "a read: r1 answers it"
    );
    let write = Request {
        seq: 2,
        ack_floor: 1,
        ..r1_set_a()
    };
    assert!(c.replicas[1].expect_forwarded(78, &write), "a write too");
    let token = 500 | ANSWERED_THERE;
    c.replicas[0].on_request(c.now, token, read);
    c.collect(0);
    assert_eq!(
        c.reply_of(token),
        Some(&ClientReply::Logged),
        "queued: said at once"
    );
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(77), Some(&a_is_1()));
    assert_eq!(c.replicas[1].stats().forwards_answered_early, 1);
    assert_eq!(
        c.replies.iter().filter(|(t, _)| *t == token).count(),
        1,
        "the leader answered nothing once it applied the read"
    );
    // Without the mark the leader answers as before.
    c.replicas[0].on_request(c.now, 501, get_a(102, 1));
    c.collect(0);
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(501), Some(&a_is_1()));
}

#[test]
fn a_follower_whose_sync_is_late_learns_its_forwarded_read_from_a_prompt_commit() {
    use crate::protocol::waiting::ANSWERED_THERE;
    let mut c = cluster_with_a_1();
    let read = get_a(101, 1);
    assert!(c.replicas[1].expect_forwarded(77, &read));
    c.replicas[0].on_request(c.now, 500 | ANSWERED_THERE, read);
    c.collect(0);
    c.sync(0);
    // Both followers hold the accept; only r2's sync completes, and its vote chooses.
    deliver_to(&mut c, 1);
    deliver_to(&mut c, 2);
    c.sync(2);
    assert!(c.reply_of(77).is_none(), "r1's own accept is not durable");
    deliver_to(&mut c, 0);
    assert!(
        c.wire
            .iter()
            .any(|(_, t, m)| t.index() == 1 && matches!(m, Message::Commit { .. })),
        "the leader tells r1 at once"
    );
    assert!(
        !c.wire
            .iter()
            .any(|(_, t, m)| t.index() == 2 && matches!(m, Message::Commit { .. })),
        "not r2, whose vote came"
    );
    deliver_to(&mut c, 1);
    assert_eq!(c.reply_of(77), Some(&a_is_1()));
}

#[test]
fn a_lagging_follower_leaves_its_forwards_to_the_leader() {
    let mut c = cluster(3, ReadMode::Log);
    // r1 misses the first write's accept, then hears its commit with the second's.
    c.request(0, 5, 100, 1, set("a", "1"));
    c.run(|_, to, _| to.index() != 1);
    c.wire.retain(|(_, to, _)| to.index() != 1);
    c.request(0, 6, 100, 2, set("b", "2"));
    deliver_to(&mut c, 1);
    let r1 = &mut c.replicas[1];
    assert!(r1.applied < r1.commit_heard, "r1 lags");
    assert!(!r1.expect_forwarded(77, &get_a(101, 1)));
    let write = Request {
        seq: 2,
        ack_floor: 1,
        ..r1_set_a()
    };
    assert!(!r1.expect_forwarded(79, &write), "nor a write");
    c.run(|_, _, _| true);
    assert!(
        c.replicas[1].expect_forwarded(78, &get_a(101, 2)),
        "caught up"
    );
}

#[test]
fn the_leaders_vote_alone_chooses_nothing() {
    let mut c = cluster(3, ReadMode::Log);
    forward_from_r1(&mut c, 77);
    // The accept is lost; the vote arrives.
    c.wire
        .retain(|(_, t, m)| t.index() != 1 || matches!(m, Message::Accepted { .. }));
    deliver_to(&mut c, 1);
    c.sync(1);
    assert!(c.reply_of(77).is_none());
    assert_eq!(value(&c, 1, "a"), None);
    assert_eq!(c.replicas[1].stats().slots_learned_early, 0);
}

#[test]
fn no_early_learning_with_five_replicas_or_quorum_leases_or_when_off() {
    for (n, mode, on) in [
        (5, ReadMode::Log, true),
        (3, ReadMode::QuorumLease, true),
        (3, ReadMode::Log, false),
    ] {
        let mut c = cluster(n, mode);
        for r in &mut c.replicas {
            r.cfg.early_learning = on;
        }
        forward_from_r1(&mut c, 77);
        assert!(
            !c.wire
                .iter()
                .any(|(_, t, m)| t.index() != 0 && matches!(m, Message::Accepted { .. })),
            "{n} replicas, {mode}, early_learning {on}: the leader sends its vote to nobody"
        );
        deliver_to(&mut c, 1);
        c.sync(1);
        assert!(
            c.reply_of(77).is_none(),
            "{n} replicas, {mode}, early_learning {on}"
        );
    }
}

#[test]
fn a_leaders_own_clients_cost_no_vote_to_the_followers() {
    let mut c = cluster(3, ReadMode::Log);
    // Client 100 is r0's own session.
    c.request(0, 5, 100, 1, set("a", "1"));
    c.sync(0);
    assert!(
        !c.wire
            .iter()
            .any(|(_, t, m)| t.index() != 0 && matches!(m, Message::Accepted { .. }))
    );
}

#[test]
fn a_leader_lease_read_of_a_key_voted_on_goes_through_the_log() {
    let mut c = cluster(3, ReadMode::LeaderLease);
    assert_eq!(
        c.replicas[0].read_now(c.now, &get("b")),
        Some(Reply::Value(None))
    );
    forward_from_r1(&mut c, 77);
    deliver_to(&mut c, 1);
    c.sync(1);
    assert_eq!(
        c.reply_of(77),
        Some(&ClientReply::Done(Reply::Ok)),
        "acknowledged"
    );
    // The leader has not learned the write chosen: its state still lacks it. A lease
    // read of that key must not be served from it; other keys still are.
    assert_eq!(value(&c, 0, "a"), None);
    assert_eq!(c.replicas[0].read_now(c.now, &get("a")), None);
    assert_eq!(
        c.replicas[0].read_now(c.now, &get("b")),
        Some(Reply::Value(None))
    );
    c.request(0, 9, 100, 1, get("a"));
    c.run(|_, _, _| true);
    assert_eq!(
        c.reply_of(9),
        Some(&ClientReply::Done(Reply::Value(Some(Bytes::from("1")))))
    );
    // Applied: the key is served from the lease again.
    assert_eq!(
        c.replicas[0].read_now(c.now, &get("a")),
        Some(Reply::Value(Some(Bytes::from("1"))))
    );
}

#[test]
fn a_deposed_leaders_own_vote_is_not_a_second_one() {
    let mut c = cluster(3, ReadMode::Log);
    // r0 proposes a forward but its disk has not synced; r1 is elected meanwhile.
    c.replicas[0].on_request(c.now, 500, r1_set_a());
    c.collect(0);
    c.wire.clear();
    c.replicas[0].on_message(
        c.now,
        ReplicaId(1),
        Message::Prepare {
            ballot: Ballot {
                round: 99,
                node: ReplicaId(1),
            },
            from_slot: 1,
        },
    );
    c.collect(0);
    assert!(c.replicas[0].leading().is_none());
    let chosen = c.replicas[0].chosen_through;
    // Its sync releases its own vote, to itself: one vote, not a quorum.
    c.sync(0);
    assert_eq!(c.replicas[0].chosen_through, chosen);
    assert_eq!(c.replicas[0].stats().slots_learned_early, 0);
}

/// Accept records replica `i` asked to sync only after its step's sends.
fn accepts_synced_after_sends(c: &Cluster, i: usize) -> usize {
    c.after_sends_records[i]
        .iter()
        .filter(|r| matches!(r, Record::Accept { .. }))
        .count()
}

#[test]
fn the_leaders_lone_accept_is_synced_after_its_sends_unless_a_follower_waits_for_its_vote() {
    let mut c = cluster(3, ReadMode::Log);
    // Its own client's write, alone: a follower's vote chooses it with the leader's and
    // comes later, so the accepts go out before the leader's write.
    c.request(0, 5, 100, 1, set("b", "1"));
    assert_eq!(accepts_synced_after_sends(&c, 0), 1);
    // Another while that slot is in flight (its record durable, no vote back yet): at
    // once, as under load.
    c.sync(0);
    let proposed = c.replicas[0].stats().slots_proposed;
    c.request(0, 6, 100, 2, set("c", "1"));
    assert_eq!(c.replicas[0].stats().slots_proposed, proposed + 1);
    assert_eq!(
        accepts_synced_after_sends(&c, 0),
        1,
        "not beside another slot"
    );
    c.run(|_, _, _| true);
    // A forward from r1: r1 answers it from its accept and the leader's vote, so the
    // leader's write goes first.
    forward_from_r1(&mut c, 77);
    assert_eq!(
        accepts_synced_after_sends(&c, 0),
        1,
        "the forward's is synced at once"
    );
    // Followers sync their accepts at once.
    c.run(|_, _, _| true);
    assert_eq!(accepts_synced_after_sends(&c, 1), 0);
    assert_eq!(accepts_synced_after_sends(&c, 2), 0);
}
