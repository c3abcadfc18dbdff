//! Lazy leader sync (`leader.rs`, `lazy_sync_allowed`): a leader with nothing else in
//! flight writes its accept without a sync of its own; the followers' durable votes
//! choose the slot, and the leader's vote counts only once its record is durable.

use super::*;
use crate::config::ReadMode;

fn is_accept_for(to: usize) -> impl Fn(ReplicaId, ReplicaId, &Message) -> bool {
    move |_, t, m| t.index() == to && matches!(m, Message::Accept { .. })
}

fn is_vote_from(from: usize) -> impl Fn(ReplicaId, ReplicaId, &Message) -> bool {
    move |f, _, m| f.index() == from && matches!(m, Message::Accepted { .. })
}

fn lazy_accepts(c: &Cluster, i: usize) -> usize {
    c.lazy_records[i]
        .iter()
        .filter(|r| matches!(r, Record::Accept { .. }))
        .count()
}

/// `c` with lazy leader sync for every batch, one command too, on every replica.
fn lazy(mut c: Cluster) -> Cluster {
    for r in &mut c.replicas {
        r.cfg.lazy_leader_sync = true;
        r.cfg.lazy_sync_batch_min = 1;
    }
    c
}

/// r0 leads three replicas with lazy leader sync, every disk synced.
fn three() -> Cluster {
    let mut c = lazy(Cluster::new(3));
    c.elect(0);
    c.run(|_, _, _| true);
    c
}

/// `three()`, then SET a 1 (written lazily) and SET b 1, a partial batch that waits for
/// it as for a sync; with the slots proposed before them.
fn lazy_slot_and_a_waiting_batch() -> (Cluster, u64) {
    let mut c = three();
    let before = c.replicas[0].stats().slots_proposed;
    c.request(0, 1, 7, 1, set("a", "1"));
    c.request(0, 2, 8, 1, set("b", "1"));
    assert_eq!(c.replicas[0].stats().slots_proposed - before, 1, "b waits");
    assert_eq!(c.replicas[0].stats().slots_lazy, 1);
    (c, before)
}

#[test]
fn a_lone_slot_is_chosen_by_the_followers_votes_while_the_leaders_record_waits() {
    let mut c = three();
    let lazy_before = lazy_accepts(&c, 0);
    c.request(0, 1, 7, 1, set("a", "1"));
    assert_eq!(
        lazy_accepts(&c, 0),
        lazy_before + 1,
        "the accept was written lazily"
    );
    assert_eq!(c.replicas[0].stats().slots_lazy, 1);
    for f in [1, 2] {
        c.deliver(is_accept_for(f));
        c.sync(f);
    }
    assert!(!c.replicas[0].lazy_wait_running(), "no vote yet: no wait");
    // The first follower's vote alone is not a quorum: the leader starts its wait.
    c.deliver(is_vote_from(1));
    assert_eq!(c.reply_of(1), None);
    assert_eq!(c.lazy_checks[0], 1);
    assert!(c.replicas[0].lazy_wait_running());
    c.deliver(is_vote_from(2));
    assert_eq!(c.reply_of(1), Some(&ClientReply::Done(Reply::Ok)));
    assert!(
        !c.replicas[0].lazy_wait_running(),
        "chosen: the driver may drop the wait's timer"
    );
    assert!(
        c.unsynced[0]
            .iter()
            .any(|(_, r)| matches!(r, Record::Accept { .. })),
        "chosen while the leader's own accept is not durable"
    );
    // Chosen: the wait's end asks for no sync.
    c.now += c.replicas[0].cfg.lazy_sync_wait_us * NANOS_PER_US;
    assert!(!c.replicas[0].lazy_sync_due(c.now));
    assert_eq!(c.replicas[0].stats().lazy_syncs_forced, 0);
    assert_eq!(c.lazy_checks[0], 1, "one wait per slot");
}

/// r0 proposes SET a `seq` lazily; only r1 votes; the wait runs out and the leader syncs.
fn late_second_vote(c: &mut Cluster, seq: u64) {
    let lazy = c.replicas[0].stats().slots_lazy;
    c.request(0, seq, 7, seq, set("a", &seq.to_string()));
    assert_eq!(c.replicas[0].stats().slots_lazy, lazy + 1, "written lazily");
    let checks = c.lazy_checks[0];
    c.deliver(is_accept_for(1));
    c.sync(1);
    c.deliver(is_vote_from(1));
    assert_eq!(c.lazy_checks[0], checks + 1);
    assert_eq!(c.reply_of(seq), None);
    // A check that ends before this slot's wait does (an earlier slot's) asks nothing.
    let wait = c.replicas[0].cfg.lazy_sync_wait_us * NANOS_PER_US;
    c.now += wait - 1;
    assert!(!c.replicas[0].lazy_sync_due(c.now));
    // r2 does not answer in time: the leader's record is wanted durable, and with it the
    // leader's vote chooses the slot.
    assert!(c.replicas[0].lazy_wait_running());
    c.now += 1;
    assert!(c.replicas[0].lazy_sync_due(c.now));
    assert!(
        !c.replicas[0].lazy_wait_running(),
        "ran out: nothing to wait for"
    );
    c.sync(0);
    assert_eq!(c.reply_of(seq), Some(&ClientReply::Done(Reply::Ok)));
    assert!(
        !c.replicas[0].lazy_sync_due(c.now),
        "nothing waits any more"
    );
    c.wire.clear();
}

#[test]
fn late_second_votes_make_the_leader_sync_and_in_a_row_stop_lazy_writes_for_a_while() {
    use crate::protocol::paxos::leader::{LAZY_LATE_IN_A_ROW, LAZY_OFF_NS};
    let mut c = three();
    // A late vote now and then (a follower's disk stalls): lazy writes go on.
    late_second_vote(&mut c, 1);
    c.request(0, 2, 7, 2, set("a", "2"));
    c.run(|_, _, _| true);
    assert_eq!(c.replicas[0].stats().slots_lazy, 2, "a slot chosen in time");
    // Late ones in a row (a follower gone): lazy writes stop for a while…
    let mut seq = 3;
    for _ in 0..LAZY_LATE_IN_A_ROW {
        late_second_vote(&mut c, seq);
        seq += 1;
    }
    assert_eq!(
        c.replicas[0].stats().lazy_syncs_forced,
        1 + u64::from(LAZY_LATE_IN_A_ROW)
    );
    let lazy = c.replicas[0].stats().slots_lazy;
    c.request(0, seq, 7, seq, set("a", "x"));
    assert_eq!(c.replicas[0].stats().slots_lazy, lazy);
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(seq), Some(&ClientReply::Done(Reply::Ok)));
    // …then come back.
    c.now += LAZY_OFF_NS;
    late_second_vote(&mut c, seq + 1);
}

#[test]
fn a_leader_that_crashes_before_its_lazy_record_is_durable_loses_no_chosen_write() {
    let mut c = three();
    c.request(0, 1, 7, 1, set("a", "1"));
    for f in [1, 2] {
        c.deliver(is_accept_for(f));
        c.sync(f);
    }
    c.deliver(|_, _, m| matches!(m, Message::Accepted { .. }));
    assert_eq!(c.reply_of(1), Some(&ClientReply::Done(Reply::Ok)));
    // The leader's accept of the acknowledged write never reached its disk.
    c.crash(0);
    c.restart(0);
    assert_eq!(
        value(&c, 0, "a"),
        None,
        "the restarted leader lost its record"
    );
    // A new leader with the restarted one in its quorum still finds the value.
    c.now += 10_000 * MS;
    c.replicas[1].start_election(c.now);
    c.replicas[1].finish_step(c.now);
    c.collect(1);
    c.run(|f, t, _| f.index() != 2 && t.index() != 2);
    assert!(c.replicas[1].leading().is_some());
    // Heartbeats tell r0 (and r2) what is chosen; they catch up.
    for _ in 0..5 {
        c.now += 100 * MS;
        for i in 0..3 {
            c.replicas[i].on_tick(c.now);
            c.collect(i);
        }
        c.run(|_, _, _| true);
    }
    for i in 0..3 {
        assert_eq!(value(&c, i, "a"), Some(Bytes::from("1")), "r{i}");
    }
}

#[test]
fn no_lazy_write_when_the_leader_is_needed_or_it_is_off() {
    // Another slot in flight: a partial batch waits for the lazy slot to be chosen (as
    // for a sync), a full one leaves and is synced (which makes the first durable too).
    let (mut c, before) = lazy_slot_and_a_waiting_batch();
    c.replicas[0].cfg.batch_max = 1;
    c.request(0, 3, 9, 1, set("c", "1"));
    assert_eq!(c.replicas[0].stats().slots_proposed - before, 3);
    assert_eq!(c.replicas[0].stats().slots_lazy, 1);
    assert_eq!(lazy_accepts(&c, 0), 1);
    c.run(|_, _, _| true);
    for t in 1..=3 {
        assert_eq!(c.reply_of(t), Some(&ClientReply::Done(Reply::Ok)));
    }
    // Turned off.
    let mut c = three();
    c.replicas[0].cfg.lazy_leader_sync = false;
    c.request(0, 1, 7, 1, set("a", "1"));
    assert_eq!(c.replicas[0].stats().slots_lazy, 0);
    assert_eq!(lazy_accepts(&c, 0), 0);
    // Quorum leases: a write waits for every holder's vote, the leader's own too.
    let mut c = lazy(Cluster::with_reads(3, ReadMode::QuorumLease));
    c.elect(0);
    c.request(0, 1, 7, 1, set("a", "1"));
    assert_eq!(c.replicas[0].stats().slots_lazy, 0);
    // One replica: the leader is its own quorum.
    let mut c = lazy(Cluster::new(1));
    c.elect(0);
    c.request(0, 1, 7, 1, set("a", "1"));
    assert_eq!(c.replicas[0].stats().slots_lazy, 0);
    // A forwarded command with early learning: its vote goes to the followers, who
    // count it as durable.
    let mut c = three();
    for (i, r) in c.replicas.iter_mut().enumerate() {
        r.set_session(100 + i as u64);
    }
    c.request(0, 1, 101, 1, set("a", "1"));
    assert_eq!(c.replicas[0].stats().slots_lazy, 0);
    // The leader's own session is written lazily.
    c.run(|_, _, _| true);
    c.request(0, 2, 100, 1, set("a", "2"));
    assert_eq!(c.replicas[0].stats().slots_lazy, 1);
}

#[test]
fn a_partial_batch_waits_for_a_lazy_slot_only_while_its_record_is_not_durable() {
    let (mut c, before) = lazy_slot_and_a_waiting_batch();
    // The leader's record becomes durable (a tick's sync) before any follower voted: the
    // lazy slot now waits like any synced one, and b leaves at once, not lazily (a
    // slot is in flight); c waits for b's sync.
    c.sync(0);
    assert_eq!(c.replicas[0].stats().slots_proposed - before, 2, "b leaves");
    assert_eq!(c.replicas[0].stats().slots_lazy, 1);
    c.request(0, 3, 9, 1, set("c", "1"));
    assert_eq!(c.replicas[0].stats().slots_proposed - before, 2, "c waits");
    c.run(|_, _, _| true);
    for t in 1..=3 {
        assert_eq!(c.reply_of(t), Some(&ClientReply::Done(Reply::Ok)));
    }
}

/// With the defaults (lazy leader sync on, `lazy_sync_batch_min` 8) a batch of 7 commands
/// is synced and one of 8 written lazily; every command is answered either way.
#[test]
fn only_batches_of_the_minimum_are_written_lazily() {
    let mut c = Cluster::new(3);
    let min = c.replicas[0].cfg.lazy_sync_batch_min;
    assert!(c.replicas[0].cfg.lazy_leader_sync);
    assert_eq!(min, 8);
    c.elect(0);
    c.run(|_, _, _| true);
    let mut seq = 0u64;
    for (n, lazy) in [(min - 1, 0), (min, 1)] {
        let (slots, lazy_slots) = (
            c.replicas[0].stats().slots_proposed,
            c.replicas[0].stats().slots_lazy,
        );
        let seqs = seq + 1..=seq + n as u64;
        seq += n as u64;
        c.replicas[0].on_requests(c.now, sets_of_one_client(seqs));
        c.collect(0);
        assert_eq!(
            c.replicas[0].stats().slots_proposed,
            slots + 1,
            "{n} commands"
        );
        assert_eq!(
            c.replicas[0].stats().slots_lazy,
            lazy_slots + lazy,
            "{n} commands"
        );
        c.run(|_, _, _| true);
        for t in seq + 1 - n as u64..=seq {
            assert_eq!(c.reply_of(t), Some(&ClientReply::Done(Reply::Ok)));
        }
    }
}
