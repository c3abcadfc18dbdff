//! The classic cases, with message delivery under the test's control.

use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::protocol::kv::{Command, Reply};
use crate::protocol::message::SnapshotChunk;

const MS: Nanos = NANOS_PER_MS;

/// A hand-driven cluster: messages wait in `wire` until the test delivers them.
struct Cluster {
    replicas: Vec<Replica>,
    /// Up, or crashed (its messages are dropped).
    up: Vec<bool>,
    wire: Vec<(ReplicaId, ReplicaId, Message)>,
    /// Per replica: durable records, and records waiting for a sync.
    durable: Vec<Vec<Record>>,
    unsynced: Vec<Vec<(PersistId, Record)>>,
    replies: Vec<(Token, ClientReply)>,
    /// Per replica: snapshots it asked the driver for.
    snapshots_asked: Vec<usize>,
    now: Nanos,
}

/// Replica `i`'s effects, collected into the cluster's lists.
struct Collected<'a> {
    c: &'a mut Cluster,
    i: usize,
}

impl crate::protocol::outbox::Effects for Collected<'_> {
    fn send(&mut self, to: ReplicaId, msg: Message) {
        self.c.wire.push((ReplicaId(self.i as u8), to, msg));
    }
    fn persist(&mut self, id: PersistId, record: Record) {
        self.c.unsynced[self.i].push((id, record));
    }
    fn reply(&mut self, token: Token, reply: ClientReply) {
        self.c.replies.push((token, reply));
    }
    fn save_snapshot(&mut self) {
        self.c.snapshots_asked[self.i] += 1;
    }
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        Cluster::with_reads(n, crate::config::ReadMode::Log)
    }

    fn with_reads(n: usize, read_mode: crate::config::ReadMode) -> Cluster {
        let cfg = ProtocolConfig {
            replicas: n,
            catchup_chunk_max: 16,
            read_mode,
            ..ProtocolConfig::default()
        };
        Cluster {
            replicas: (0..n)
                .map(|i| Replica::new(cfg.clone(), ReplicaId(i as u8), i as u64))
                .collect(),
            up: vec![true; n],
            wire: Vec::new(),
            durable: vec![Vec::new(); n],
            unsynced: vec![Vec::new(); n],
            replies: Vec::new(),
            snapshots_asked: vec![0; n],
            now: 0,
        }
    }

    fn collect(&mut self, i: usize) {
        let actions: Vec<Action> = self.replicas[i].drain().collect();
        crate::protocol::outbox::dispatch(actions, false, &mut Collected { c: self, i });
        self.replicas[i].check_invariants();
    }

    fn sync(&mut self, i: usize) {
        if let Some(&(last, _)) = self.unsynced[i].last() {
            let records = std::mem::take(&mut self.unsynced[i]);
            self.durable[i].extend(records.into_iter().map(|(_, r)| r));
            self.replicas[i].on_persisted(self.now, last);
            self.collect(i);
        }
    }

    fn sync_all(&mut self) {
        for i in 0..self.replicas.len() {
            if self.up[i] {
                self.sync(i);
            }
        }
    }

    /// Delivers every message passing `filter` (others stay on the wire), syncing disks,
    /// until nothing moves.
    fn run(&mut self, filter: impl Fn(ReplicaId, ReplicaId, &Message) -> bool) {
        for _ in 0..10_000 {
            self.sync_all();
            let wire = std::mem::take(&mut self.wire);
            let (go, stay): (Vec<_>, Vec<_>) =
                wire.into_iter().partition(|(f, t, m)| filter(*f, *t, m));
            self.wire = stay;
            if go.is_empty() {
                return;
            }
            for (from, to, msg) in go {
                if self.up[to.index()] && self.up[from.index()] {
                    self.replicas[to.index()].on_message(self.now, from, msg);
                    self.collect(to.index());
                }
            }
        }
        panic!("messages never settled");
    }

    fn elect(&mut self, i: usize) {
        self.replicas[i].start_election(self.now);
        self.replicas[i].finish_step(self.now);
        self.collect(i);
        self.run(|_, _, _| true);
        assert!(self.replicas[i].leading().is_some(), "r{i} should lead");
    }

    fn request(&mut self, at: usize, token: Token, client: u64, seq: u64, cmd: Command) {
        let req = Request {
            client,
            seq,
            ack_floor: seq,
            cmd,
        };
        self.replicas[at].on_request(self.now, token, req);
        self.collect(at);
    }

    fn crash(&mut self, i: usize) {
        self.up[i] = false;
        self.unsynced[i].clear();
        self.wire
            .retain(|(f, t, _)| f.index() != i && t.index() != i);
    }

    fn restart(&mut self, i: usize) {
        let cfg = self.replicas[i].cfg.clone();
        self.replicas[i] = Replica::recover(
            cfg,
            ReplicaId(i as u8),
            99,
            None,
            self.durable[i].clone(),
            false,
        );
        self.up[i] = true;
    }

    fn reply_of(&self, token: Token) -> Option<&ClientReply> {
        self.replies
            .iter()
            .rev()
            .find(|(t, _)| *t == token)
            .map(|(_, r)| r)
    }
}

fn set(k: &str, v: &str) -> Command {
    Command::Set(Bytes::from(k.to_string()), Bytes::from(v.to_string()))
}

fn get(k: &str) -> Command {
    Command::Get(Bytes::from(k.to_string()))
}

fn value(c: &Cluster, i: usize, k: &str) -> Option<Bytes> {
    c.replicas[i]
        .kv()
        .get(k.as_bytes())
        .map(crate::protocol::kv::Item::value_bytes)
}

#[test]
fn write_is_applied_everywhere_and_answered_once_chosen() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.request(0, 1, 1, 1, set("a", "1"));
    assert!(
        c.reply_of(1).is_none(),
        "no answer before a quorum accepted"
    );
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(1), Some(&ClientReply::Done(Reply::Ok)));
    // Followers apply once the next heartbeat carries the commit index.
    c.now += 100 * MS;
    c.replicas[0].on_tick(c.now);
    c.collect(0);
    c.run(|_, _, _| true);
    for i in 0..3 {
        assert_eq!(value(&c, i, "a"), Some(Bytes::from("1")), "replica {i}");
    }
}

#[test]
fn non_leader_names_the_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.request(2, 7, 1, 1, get("a"));
    assert_eq!(
        c.reply_of(7),
        Some(&ClientReply::NotLeader {
            leader: Some(ReplicaId(1))
        })
    );
}

#[test]
fn accepted_is_never_sent_before_the_accept_is_durable() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.request(0, 1, 1, 1, set("a", "1"));
    // Deliver the accept to r1 but do not sync r1's disk.
    let accepts: Vec<_> = c
        .wire
        .drain(..)
        .filter(|(_, t, _)| t.index() == 1)
        .collect();
    assert!(!accepts.is_empty());
    for (from, _, msg) in accepts {
        c.replicas[1].on_message(c.now, from, msg);
        c.collect(1);
    }
    assert!(
        !c.wire
            .iter()
            .any(|(f, _, m)| f.index() == 1 && matches!(m, Message::Accepted { .. })),
        "r1 answered before its record was durable"
    );
    assert!(!c.unsynced[1].is_empty());
    c.sync(1);
    assert!(
        c.wire
            .iter()
            .any(|(f, _, m)| f.index() == 1 && matches!(m, Message::Accepted { .. }))
    );
}

#[test]
fn value_accepted_by_a_minority_survives_leader_failure() {
    // r0 leads and proposes; only r1 accepts (with r0 itself that is a quorum, so the value
    // may have been chosen); r0 fails before anyone learns it. The next leader must keep it.
    let mut c = Cluster::new(3);
    c.elect(0);
    c.request(0, 1, 1, 1, set("a", "minority"));
    c.sync(0);
    c.run(|from, to, m| {
        from.index() == 0 && to.index() == 1 && matches!(m, Message::Accept { .. })
    });
    c.sync(1);
    c.crash(0);
    c.wire.clear();
    // r2 (which never saw the value) becomes leader with r1's promise.
    c.elect(2);
    c.request(2, 2, 2, 1, get("a"));
    c.run(|_, _, _| true);
    assert_eq!(
        c.reply_of(2),
        Some(&ClientReply::Done(Reply::Value(Some(Bytes::from(
            "minority"
        )))))
    );
}

#[test]
fn dueling_proposers_agree() {
    let mut c = Cluster::new(3);
    // Both start elections at once; messages interleave.
    c.replicas[0].start_election(c.now);
    c.replicas[0].finish_step(c.now);
    c.collect(0);
    c.replicas[1].start_election(c.now);
    c.replicas[1].finish_step(c.now);
    c.collect(1);
    c.run(|_, _, _| true);
    let leaders: Vec<_> = (0..3)
        .filter(|&i| c.replicas[i].leading().is_some())
        .collect();
    assert!(
        leaders.len() <= 1,
        "two leaders after the duel: {leaders:?}"
    );
    // Whoever wins (or a retry) gets writes through, and both agree afterwards.
    let winner = match leaders.first() {
        Some(&w) => w,
        None => {
            c.now += 10 * MS;
            c.elect(1);
            1
        }
    };
    c.request(winner, 1, 1, 1, set("k", "v"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(1), Some(&ClientReply::Done(Reply::Ok)));
    // The loser now proposes with a higher ballot; the old leader must step down.
    let loser = 1 - winner.min(1);
    c.now += 10 * MS;
    c.elect(loser);
    assert!(
        c.replicas[winner].leading().is_none(),
        "old leader kept leading"
    );
    c.request(loser, 2, 1, 2, get("k"));
    c.run(|_, _, _| true);
    assert_eq!(
        c.reply_of(2),
        Some(&ClientReply::Done(Reply::Value(Some(Bytes::from("v")))))
    );
}

#[test]
fn follower_far_behind_catches_up_in_chunks() {
    let mut c = Cluster::new(3);
    c.elect(0);
    // r2 hears nothing while 300 writes are chosen.
    for i in 0..300u64 {
        c.request(0, i + 1, 1, i + 1, set(&format!("k{i}"), &format!("v{i}")));
        c.run(|_, to, _| to.index() != 2);
    }
    c.wire.retain(|(_, to, _)| to.index() != 2);
    assert_eq!(c.replicas[2].commit_index(), 0);
    // A heartbeat reveals the commit index; r2 asks for the rest, chunk by chunk.
    c.now += 100 * MS;
    c.replicas[0].on_tick(c.now);
    c.collect(0);
    let mut catchups = 0;
    for _ in 0..1000 {
        c.sync_all();
        if c.wire.is_empty() {
            break;
        }
        let (from, to, msg) = c.wire.remove(0);
        if let Message::CatchUp { entries, .. } = &msg {
            assert!(entries.len() <= 16, "chunk over catchup_chunk_max");
            catchups += 1;
        }
        c.replicas[to.index()].on_message(c.now, from, msg);
        c.collect(to.index());
    }
    let leader_commit = c.replicas[0].commit_index();
    assert!(leader_commit >= 300);
    assert_eq!(c.replicas[2].commit_index(), leader_commit);
    assert!(catchups >= 300 / 16, "only {catchups} catch-up chunks");
    assert_eq!(c.replicas[2].kv().digest(), c.replicas[0].kv().digest());
}

#[test]
fn retried_write_takes_effect_once_across_a_leader_change() {
    let mut c = Cluster::new(3);
    c.elect(0);
    c.request(0, 1, 9, 1, Command::Del(vec![Bytes::from("x")]));
    c.request(0, 2, 9, 2, set("x", "1"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(2), Some(&ClientReply::Done(Reply::Ok)));
    // Another client deletes x; then client 9 retries seq 2 at a new leader.
    c.request(0, 3, 5, 1, Command::Del(vec![Bytes::from("x")]));
    c.run(|_, _, _| true);
    c.now += 10 * MS;
    c.elect(1);
    c.request(1, 4, 9, 2, set("x", "1"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(4), Some(&ClientReply::Done(Reply::Ok)));
    assert_eq!(value(&c, 1, "x"), None, "the retry was applied twice");
}

#[test]
fn restart_recovers_promise_and_accepted_values() {
    let mut c = Cluster::new(3);
    c.elect(0);
    for i in 0..10u64 {
        c.request(0, i + 1, 1, i + 1, set("k", &i.to_string()));
    }
    c.run(|_, _, _| true);
    c.now += 100 * MS;
    c.replicas[0].on_tick(c.now);
    c.collect(0);
    c.run(|_, _, _| true);
    let promised = c.replicas[1].promised();
    c.crash(1);
    c.restart(1);
    assert_eq!(c.replicas[1].promised(), promised);
    assert!(c.replicas[1].commit_index() > 0, "commit index survived");
    // A stale leader at a lower ballot is refused by the restarted acceptor.
    let stale = Ballot {
        round: 0,
        node: ReplicaId(2),
    };
    c.replicas[1].on_message(
        c.now,
        ReplicaId(2),
        Message::Accept {
            ballot: stale,
            slot: 1,
            batch: Arc::from(vec![Request::noop()]),
            commit: 0,
        },
    );
    let out: Vec<_> = c.replicas[1].drain().collect();
    assert!(out.iter().any(|a| matches!(
        a,
        Action::Send {
            msg: Message::Reject { .. },
            ..
        }
    )));
}

#[test]
fn pipeline_and_batch_limits_hold() {
    let mut c = Cluster::new(3);
    c.replicas[0].cfg.pipeline_depth = 2;
    c.replicas[0].cfg.batch_max = 4;
    c.elect(0);
    let before = c.replicas[0].stats().slots_proposed;
    for i in 0..20u64 {
        c.request(0, i + 1, 1, i + 1, set("k", "v"));
    }
    // Nothing delivered: at most 2 slots in flight, each with at most 4 commands.
    let accepts: Vec<usize> = c
        .wire
        .iter()
        .filter_map(|(_, to, m)| match m {
            Message::Accept { batch, .. } if to.index() == 1 => Some(batch.len()),
            _ => None,
        })
        .collect();
    assert_eq!(c.replicas[0].stats().slots_proposed - before, 2);
    assert!(accepts.iter().all(|&n| n <= 4), "{accepts:?}");
    c.run(|_, _, _| true);
    for i in 0..20u64 {
        assert_eq!(c.reply_of(i + 1), Some(&ClientReply::Done(Reply::Ok)));
    }
    assert_eq!(c.replicas[0].stats().commands_proposed, 20);
}

/// Elects r0, writes a=1 and lets every replica apply it.
fn written_everywhere(mode: crate::config::ReadMode) -> Cluster {
    let mut c = Cluster::with_reads(3, mode);
    c.elect(0);
    c.request(0, 1, 1, 1, set("a", "1"));
    c.run(|_, _, _| true);
    c.now += 100 * MS;
    c.replicas[0].on_tick(c.now);
    c.collect(0);
    c.run(|_, _, _| true);
    for i in 0..3 {
        assert_eq!(value(&c, i, "a"), Some(Bytes::from("1")));
    }
    c
}

fn damage(c: &mut Cluster, i: usize, k: &str, v: &str) {
    let entry = crate::protocol::kv::Entry {
        value: Bytes::from(v.to_string()),
        version: 0,
        kind: crate::protocol::item::Kind::String,
    };
    c.replicas[i]
        .kv_mut()
        .force_local(Bytes::from(k.to_string()), entry);
}

#[test]
fn digest_read_at_a_damaged_replica_answers_the_committed_value_and_repairs_it() {
    let mut c = written_everywhere(crate::config::ReadMode::Digest);
    damage(&mut c, 1, "a", "bad");
    c.request(1, 9, 2, 1, get("a"));
    c.run(|_, _, _| true);
    assert_eq!(
        c.reply_of(9),
        Some(&ClientReply::Done(Reply::Value(Some(Bytes::from("1")))))
    );
    assert_eq!(value(&c, 1, "a"), Some(Bytes::from("1")), "repaired");
    let st = c.replicas[1].stats();
    assert_eq!((st.digest_mismatches, st.read_fetches), (1, 1));
    assert!(st.read_repairs >= 1);
}

#[test]
fn digest_read_repairs_a_damaged_peer_before_answering() {
    let mut c = written_everywhere(crate::config::ReadMode::Digest);
    damage(&mut c, 1, "a", "bad");
    // Only r1 reports, so the read sees the damaged copy.
    c.request(0, 9, 2, 1, get("a"));
    c.run(|_, to, _| to.index() != 2);
    assert_eq!(
        c.reply_of(9),
        Some(&ClientReply::Done(Reply::Value(Some(Bytes::from("1")))))
    );
    assert_eq!(value(&c, 1, "a"), Some(Bytes::from("1")), "r1 repaired");
    assert_eq!(c.replicas[1].stats().repairs_installed, 1);
    assert!(
        c.replies.iter().filter(|(t, _)| *t == 9).count() == 1,
        "answered once"
    );
}

#[test]
fn a_replica_that_granted_a_leader_lease_promises_nobody_else() {
    let mut c = Cluster::with_reads(3, crate::config::ReadMode::LeaderLease);
    // Time stands still while messages fly here, so no clock rate can be measured
    // (`clock_check` has its own tests): trust the clocks, as the simulator's runs of
    // this rule do not need to.
    for r in &mut c.replicas {
        r.set_bugs(Bugs {
            trust_clocks: true,
            ..Bugs::default()
        });
    }
    // Start, then wait out the start-up amnesia, in which nobody promises anyone.
    for i in 0..3 {
        c.replicas[i].on_tick(c.now);
        c.collect(i);
    }
    c.wire.clear();
    c.now += 1_000 * MS;
    c.elect(0);
    // The new leader asks for its lease at once; every replica grants it.
    c.run(|_, _, _| true);
    c.request(0, 5, 1, 1, get("a"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(5), Some(&ClientReply::Done(Reply::Value(None))));
    assert_eq!(
        c.replicas[0].stats().reads_local,
        1,
        "served from the lease"
    );
    // r1 gives up on the leader early: r2 granted r0 a lease and stays silent.
    c.replicas[1].start_election(c.now);
    c.replicas[1].finish_step(c.now);
    c.collect(1);
    assert!(c.replicas[1].leading().is_none());
    c.now += 10 * MS;
    let prepares = c.wire.len();
    c.run(|_, _, _| true);
    assert!(prepares == 0 || c.replicas[1].leading().is_none());
    // Once the grants ran out (lease plus drift allowance), an election succeeds.
    c.up[0] = false;
    c.now += 2 * c.replicas[1].cfg.lease_ms * MS;
    c.replicas[1].on_tick(c.now);
    c.collect(1);
    c.replicas[2].on_tick(c.now);
    c.collect(2);
    c.replicas[1].election_deadline = Some(c.now);
    c.replicas[1].on_tick(c.now);
    c.collect(1);
    c.run(|_, _, _| true);
    assert!(
        c.replicas[1].leading().is_some(),
        "r1 leads once the lease ended"
    );
}

/// A cluster whose snapshot chunks hold a few entries each; r2 misses `writes` writes
/// that r0 and r1 then compact out of their logs, so r2 can only catch up by snapshot.
/// Elects r0 and writes `writes` keys (`k000`, `k001`, … = `v0`, `v1`, …) through it while
/// r2 hears nothing.
fn write_with_r2_cut_off(c: &mut Cluster, writes: u64) {
    c.elect(0);
    for i in 0..writes {
        c.request(
            0,
            i + 1,
            1,
            i + 1,
            set(&format!("k{i:03}"), &format!("v{i}")),
        );
        c.run(|_, to, _| to.index() != 2);
    }
    c.wire.retain(|(_, to, _)| to.index() != 2);
}

fn lagging_behind_compacted_log(writes: u64) -> Cluster {
    let mut c = Cluster::new(3);
    for r in &mut c.replicas {
        r.cfg.snapshot_chunk_bytes_max = 64;
    }
    write_with_r2_cut_off(&mut c, writes);
    for i in 0..2 {
        let applied = c.replicas[i].applied_index();
        c.replicas[i].compact(applied);
    }
    // r1 may lag r0 by the last slot, whose commit it hears with the next message.
    assert!(c.replicas[2].commit_index() + writes / 2 < c.replicas[0].log_base());
    assert!(c.replicas[2].commit_index() + writes / 2 < c.replicas[1].log_base());
    c
}

/// Delivers messages oldest first; `tamper` sees each and says how many copies to
/// deliver (0 drops it). When nothing is on the wire, time passes and every replica
/// ticks. Stops once `done` holds; returns the snapshot chunks seen as (from, chunk).
fn pump(
    c: &mut Cluster,
    mut tamper: impl FnMut(ReplicaId, ReplicaId, &mut Message) -> usize,
    mut done: impl FnMut(&Cluster) -> bool,
) -> Vec<(ReplicaId, SnapshotChunk)> {
    let mut chunks = Vec::new();
    for _ in 0..20_000 {
        if done(c) {
            return chunks;
        }
        c.sync_all();
        if c.wire.is_empty() {
            c.now += 10 * MS;
            for i in 0..c.replicas.len() {
                if c.up[i] {
                    c.replicas[i].on_tick(c.now);
                    c.collect(i);
                }
            }
            continue;
        }
        let (from, to, mut msg) = c.wire.remove(0);
        let copies = tamper(from, to, &mut msg);
        if let Message::InstallSnapshot { chunk } = &msg {
            chunks.push((from, (**chunk).clone()));
        }
        for _ in 0..copies {
            if c.up[to.index()] && c.up[from.index()] {
                c.replicas[to.index()].on_message(c.now, from, msg.clone());
                c.collect(to.index());
            }
        }
    }
    panic!("the cluster never reached the expected state");
}

fn caught_up(c: &Cluster) -> bool {
    c.replicas[2].commit_index() >= c.replicas[0].commit_index()
        && c.replicas[2].kv().digest() == c.replicas[0].kv().digest()
}

#[test]
fn snapshot_crosses_in_chunks_despite_loss_and_duplicates() {
    let mut c = lagging_behind_compacted_log(100);
    let mut seen = 0;
    let mut saw_partial = false;
    let chunks = pump(
        &mut c,
        |_, to, msg| {
            let Message::InstallSnapshot { .. } = msg else {
                return 1;
            };
            assert_eq!(to, ReplicaId(2));
            seen += 1;
            match seen {
                3 => 0,     // lost: r2 must ask again
                5 | 6 => 2, // duplicated
                _ => 1,
            }
        },
        |c| {
            // Halfway, r2 holds staged items but has installed nothing.
            if let Some((got, total)) = c.replicas[2].snapshot_receiving()
                && got > total / 2
            {
                saw_partial = true;
                assert_eq!(c.replicas[2].kv().len(), 0, "partial state installed");
            }
            caught_up(c)
        },
    );
    assert!(saw_partial, "never saw a transfer half done");
    let r2 = c.replicas[2].stats();
    assert_eq!(r2.snapshots_installed, 1);
    assert_eq!(r2.snapshot_transfers_abandoned, 0);
    // 100 entries of ~24 bytes in 64-byte chunks, plus a session.
    assert!(chunks.len() >= 100 / 3, "only {} chunks", chunks.len());
    for (_, chunk) in &chunks {
        let bytes: usize = chunk.entries.iter().map(|i| i.payload_len() + 16).sum();
        assert!(
            bytes <= 64 || chunk.entries.len() == 1,
            "chunk of {bytes} bytes"
        );
    }
    assert_eq!(c.replicas[2].snapshot_receiving(), None);
    // The sessions came too: a retry of the last write is answered from memory.
    assert!(c.replicas[2].kv().cached_reply(1, 100).is_some());
}

#[test]
fn corrupt_snapshot_is_never_installed_and_the_transfer_restarts() {
    let mut c = lagging_behind_compacted_log(40);
    let mut corrupted = false;
    let mut installed_corrupt = false;
    pump(
        &mut c,
        |_, _, msg| {
            if let Message::InstallSnapshot { chunk } = msg
                && chunk.offset > 0
                && !chunk.entries.is_empty()
                && !corrupted
            {
                corrupted = true;
                let item = &chunk.entries[0];
                chunk.entries[0] =
                    crate::protocol::kv::Item::new(item.key(), b"bit rot", item.version());
            }
            1
        },
        |c| {
            installed_corrupt |= c.replicas[2].kv().iter().any(|i| i.value() == b"bit rot");
            caught_up(c)
        },
    );
    assert!(corrupted);
    assert!(
        !installed_corrupt,
        "a state failing its digest was installed"
    );
    let r2 = c.replicas[2].stats();
    assert_eq!(r2.snapshot_transfers_abandoned, 1);
    assert_eq!(r2.snapshots_installed, 1);
}

#[test]
fn snapshot_transfer_restarts_from_the_new_leader() {
    let mut c = lagging_behind_compacted_log(60);
    // Heartbeats start r2's transfer from r0; stop after a few chunks.
    let mut chunks_from_r0 = 0;
    pump(
        &mut c,
        |from, _, msg| {
            if matches!(msg, Message::InstallSnapshot { .. }) && from == ReplicaId(0) {
                chunks_from_r0 += 1;
            }
            1
        },
        |c| {
            c.replicas[2]
                .snapshot_receiving()
                .is_some_and(|(got, _)| got >= 6)
        },
    );
    // r1 takes over while r2 is cut off; r0's chunks in flight are lost.
    c.replicas[1].start_election(c.now);
    c.replicas[1].finish_step(c.now);
    c.collect(1);
    c.wire.retain(|(f, t, _)| f.index() != 2 && t.index() != 2);
    c.run(|f, t, _| f.index() != 2 && t.index() != 2);
    assert!(c.replicas[1].leading().is_some());
    c.wire.retain(|(f, t, _)| f.index() != 2 && t.index() != 2);
    let chunks = pump(&mut c, |_, _, _| 1, caught_up);
    assert!(chunks_from_r0 >= 2);
    assert!(
        chunks
            .iter()
            .any(|(from, c)| *from == ReplicaId(1) && c.offset == 0),
        "the new leader never started a transfer"
    );
    let r2 = c.replicas[2].stats();
    assert_eq!(r2.snapshot_transfers_abandoned, 1);
    assert_eq!(r2.snapshots_installed, 1);
    assert_eq!(c.replicas[2].kv().digest(), c.replicas[1].kv().digest());
}

/// A millisecond passes and every replica ticks (the driver's timer).
fn tick_all(c: &mut Cluster) {
    c.now += MS;
    for i in 0..c.replicas.len() {
        c.replicas[i].on_tick(c.now);
        c.collect(i);
    }
}

#[test]
fn log_growth_asks_for_a_snapshot_and_compaction_resets_it() {
    let mut c = Cluster::new(3);
    c.elect(0);
    let value = "x".repeat(1 << 20);
    let min_mib = super::snapshot::SNAPSHOT_LOG_BYTES_MIN >> 20;
    let mut asked_at = None;
    for i in 0..min_mib + 4 {
        c.request(0, i + 1, 1, i + 1, set(&format!("k{i}"), &value));
        c.run(|_, _, _| true);
        tick_all(&mut c);
        if asked_at.is_none() && c.snapshots_asked[0] > 0 {
            asked_at = Some(i + 1);
        }
    }
    // Stored bytes stay under twice the minimum, so the minimum is the threshold.
    let asked_at = asked_at.expect("no snapshot asked for");
    assert!(
        (min_mib - 1..=min_mib + 1).contains(&asked_at),
        "asked after {asked_at} MiB"
    );
    assert_eq!(c.snapshots_asked[0], 1, "asked again without new growth");
    for r in 0..3 {
        assert!(c.snapshots_asked[r] <= 1);
    }
    let applied = c.replicas[0].applied_index();
    c.replicas[0].compact(applied);
    c.request(0, 999, 1, min_mib + 5, set("small", "v"));
    c.run(|_, _, _| true);
    tick_all(&mut c);
    assert_eq!(c.snapshots_asked[0], 1);
}

#[test]
fn malformed_snapshot_chunks_are_dropped_without_staging() {
    let mut c = Cluster::new(3);
    c.elect(0);
    let entry = |k: &str| crate::protocol::kv::Item::new(k.as_bytes(), b"v", 1);
    let good = SnapshotChunk {
        last_included: 50,
        items_total: 2,
        entries_total: 2,
        digest: 0,
        offset: 0,
        entries: vec![entry("a"), entry("b")],
        sessions: Vec::new(),
        sessions_total: 0,
        log_time: 0,
        deadlines: Vec::new(),
    };
    let deadline = |k: &str| (bytes::Bytes::copy_from_slice(k.as_bytes()), 7);
    let bad = [
        SnapshotChunk {
            sessions_total: 1,
            ..good.clone()
        },
        SnapshotChunk {
            items_total: 4,
            entries: vec![entry("a"), entry("b")],
            deadlines: vec![deadline("b"), deadline("a")],
            ..good.clone()
        },
        SnapshotChunk {
            offset: u64::MAX,
            ..good.clone()
        },
        SnapshotChunk {
            entries_total: 3,
            ..good.clone()
        },
        SnapshotChunk {
            items_total: 1,
            entries_total: 1,
            ..good.clone()
        },
        SnapshotChunk {
            entries: Vec::new(),
            ..good.clone()
        },
        SnapshotChunk {
            entries: vec![entry("b"), entry("a")],
            ..good.clone()
        },
        SnapshotChunk {
            entries: vec![entry("a"), entry("a")],
            ..good.clone()
        },
    ];
    let r2 = ReplicaId(2);
    for chunk in bad {
        c.replicas[2].on_message(
            c.now,
            ReplicaId(1),
            Message::InstallSnapshot {
                chunk: Box::new(chunk),
            },
        );
        c.collect(r2.index());
        assert_eq!(c.replicas[2].snapshot_receiving(), None);
    }
    // Well formed, but its digest is wrong: staged, then dropped, never installed.
    c.replicas[2].on_message(
        c.now,
        ReplicaId(1),
        Message::InstallSnapshot {
            chunk: Box::new(good),
        },
    );
    c.collect(r2.index());
    assert_eq!(c.replicas[2].snapshot_receiving(), None);
    assert_eq!(c.replicas[2].kv().len(), 0);
    assert_eq!(c.replicas[2].stats().snapshots_installed, 0);
    // Two chunks out of key order (entries, deadlines) and the bad digest.
    assert_eq!(c.replicas[2].stats().snapshot_transfers_abandoned, 4);
}

#[test]
fn applied_log_is_trimmed_to_its_byte_bound_and_a_lagger_gets_a_snapshot() {
    for bound in [0, 100] {
        let mut c = Cluster::new(3);
        for r in &mut c.replicas {
            r.cfg.log_retain_bytes = bound;
        }
        write_with_r2_cut_off(&mut c, 100);
        let r0 = &c.replicas[0];
        if bound == 0 {
            assert_eq!(r0.log_base(), 0, "nothing trimmed without a bound");
            assert_eq!(r0.stats().log_slots_trimmed, 0);
            continue;
        }
        // Each write holds 6-7 bytes of key and value: about 15 of them fit.
        assert!(
            r0.applied_log_bytes() <= bound,
            "{}",
            r0.applied_log_bytes()
        );
        assert!(r0.log_len() <= 20, "{} entries kept", r0.log_len());
        assert!(r0.log_base() >= 80, "log base {}", r0.log_base());
        assert_eq!(r0.stats().log_slots_trimmed, r0.log_base());
        pump(&mut c, |_, _, _| 1, caught_up);
        assert!(c.replicas[2].stats().snapshots_installed >= 1);
    }
}

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

#[test]
fn a_heartbeat_below_the_promise_deposes_its_sender() {
    // r0 leads ballot 1; r1 then promises r2's higher ballot, which r0 never hears of.
    let mut c = Cluster::new(3);
    c.elect(0);
    let old = c.replicas[0].leading().expect("r0 leads");
    let higher = Ballot {
        round: old.round + 1,
        node: ReplicaId(2),
    };
    let prepare = Message::Prepare {
        ballot: higher,
        from_slot: 1,
    };
    c.replicas[1].on_message(c.now, ReplicaId(2), prepare);
    c.collect(1);
    c.sync(1);
    c.wire.clear();
    // r0's heartbeat reaches r1, which answers with its promise: r0 steps down.
    let heartbeat = Message::Commit {
        ballot: old,
        commit: 0,
    };
    c.replicas[1].on_message(c.now, ReplicaId(0), heartbeat);
    c.collect(1);
    assert!(
        c.wire.iter().any(|(f, t, m)| f.index() == 1
            && t.index() == 0
            && matches!(m, Message::Reject { promised } if *promised == higher)),
        "{:?}",
        c.wire
    );
    c.run(|_, _, _| true);
    assert!(
        c.replicas[0].leading().is_none(),
        "r0 learned it was deposed"
    );
}

/// Size limits: commands, batches and records that must fit the WAL.
mod limits;
mod storage_full;
