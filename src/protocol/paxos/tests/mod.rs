//! The core's scenarios, with message delivery under the test's control: the hand-driven
//! cluster here, the cases by concern in the files beside it.

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
    /// Per replica: lazy-sync checks it asked the driver for (`Action::CheckLazySync`).
    lazy_checks: Vec<usize>,
    /// Per replica: the records it asked to be written lazily.
    lazy_records: Vec<Vec<Record>>,
    /// Per replica: the records whose sync it asked to start after the step's sends.
    after_sends_records: Vec<Vec<Record>>,
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
    fn persist(&mut self, id: PersistId, record: Record, sync: SyncStart) {
        match sync {
            SyncStart::Lazy => self.c.lazy_records[self.i].push(record.clone()),
            SyncStart::AfterSends => self.c.after_sends_records[self.i].push(record.clone()),
            SyncStart::Now => {}
        }
        self.c.unsynced[self.i].push((id, record));
    }
    fn check_lazy_sync(&mut self, _after: Nanos) {
        self.c.lazy_checks[self.i] += 1;
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
            lazy_checks: vec![0; n],
            lazy_records: vec![Vec::new(); n],
            after_sends_records: vec![Vec::new(); n],
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

    /// Delivers the messages on the wire that pass `filter` once (others stay), syncing
    /// nobody.
    fn deliver(&mut self, filter: impl Fn(ReplicaId, ReplicaId, &Message) -> bool) {
        let (go, stay): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wire)
            .into_iter()
            .partition(|(f, t, m)| filter(*f, *t, m));
        self.wire = stay;
        for (from, to, msg) in go {
            self.replicas[to.index()].on_message(self.now, from, msg);
            self.collect(to.index());
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

    /// Starts every replica, then waits out the start-up amnesia of the lease modes, in
    /// which nobody promises anyone.
    fn wait_out_startup_amnesia(&mut self) {
        for i in 0..self.replicas.len() {
            self.replicas[i].on_tick(self.now);
            self.collect(i);
        }
        self.wire.clear();
        self.now += 1_000 * MS;
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

/// One client's requests `SET k{seq} v` for `seqs`, each with its seq as its token: what
/// one step of a pipelining client hands `Replica::on_requests`.
fn sets_of_one_client(seqs: std::ops::RangeInclusive<u64>) -> Vec<(Token, Request)> {
    seqs.map(|seq| {
        let req = Request {
            client: 1,
            seq,
            ack_floor: 1,
            cmd: set(&format!("k{seq}"), "v"),
        };
        (seq, req)
    })
    .collect()
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

/// Early learning: a follower answers its forward from its accept and the leader's vote.
mod early;
/// Lazy leader sync: a lone slot chosen by the followers' votes.
mod lazy;
/// Size limits: commands, batches and records that must fit the WAL.
mod limits;
/// Recovery after lost records: a `Chosen` mark alone vouches for no value.
mod lost_records;
/// Reads served away from the log: digest reads and leader leases.
mod reads;
/// Storage faults: a replica that lost synced records recovers them before it votes.
mod recovery;
/// Replication: writes, elections, catch-up, retries, restarts and batching.
mod replication;
/// Snapshots: transfer in chunks, corruption, compaction and trimming of the log.
mod snapshots;
/// A data directory replaced by an older copy: detected from what peers saw.
mod stale;
/// Storage that cannot write: a leader with a full disk steps down.
mod storage_full;
