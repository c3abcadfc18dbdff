//! Snapshots and log compaction: the state machine stands in for the log before it.

use std::sync::Arc;

use super::{LogEntry, Replica, Role};
use crate::protocol::message::{Message, Snapshot};
use crate::protocol::outbox::{Action, ClientReply};
use crate::protocol::types::{NANOS_PER_MS, Nanos, ReplicaId, Slot};

/// A peer gets a snapshot at most this often (building one copies the whole state).
const SNAPSHOT_RESEND_MS: Nanos = 1_000;

impl Replica {
    /// The state at the applied index, with this acceptor's promise and its accepted
    /// entries after it: enough to replace every record written so far.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            last_included: self.applied,
            promised: self.promised,
            kv: self.kv.export(),
            tail: self
                .log
                .range(self.applied + 1..)
                .map(|(slot, e)| (*slot, e.ballot, e.batch.clone(), e.chosen))
                .collect(),
        }
    }

    /// Forgets log entries up to `upto` (at most the applied index). Peers that need them
    /// later get a snapshot instead.
    pub fn compact(&mut self, upto: Slot) {
        let upto = upto.min(self.applied);
        if upto <= self.log_base {
            return;
        }
        self.log = self.log.split_off(&(upto + 1));
        self.log_base = upto;
    }

    /// The root of the state machine's Merkle tree, after rehashing only dirty paths.
    pub fn merkle_root(&mut self) -> u64 {
        self.kv.merkle_mut().rebuild_incremental();
        self.kv.merkle().root()
    }

    /// The state machine, for anti-entropy repair, which installs only versions this
    /// replica has applied past (`merkle::repair_verdict`), and for debug commands.
    pub fn kv_mut(&mut self) -> &mut crate::protocol::Kv {
        &mut self.kv
    }

    /// Slots up to here exist only in the state machine.
    pub fn log_base(&self) -> Slot {
        self.log_base
    }

    /// Entries held in memory.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    pub(super) fn send_snapshot(&mut self, now: Nanos, to: ReplicaId) {
        let last = &mut self.snapshot_sent_at[to.index()];
        if last.is_some_and(|t| now < t + SNAPSHOT_RESEND_MS * NANOS_PER_MS) {
            return;
        }
        *last = Some(now);
        self.stats.snapshots_sent += 1;
        let snapshot = Snapshot {
            last_included: self.applied,
            promised: self.promised,
            kv: self.kv.export(),
            tail: Vec::new(),
        };
        self.send(
            to,
            Message::InstallSnapshot {
                snapshot: Arc::new(snapshot),
            },
        );
    }

    /// A peer's state machine at a slot beyond our commit index: take it.
    pub(super) fn on_install_snapshot(&mut self, now: Nanos, snap: &Snapshot) {
        if snap.last_included <= self.chosen_through {
            self.stats.messages_ignored += 1;
            return;
        }
        let at = snap.last_included;
        self.stats.snapshots_installed += 1;
        self.kv.import(snap.kv.clone());
        self.log = self.log.split_off(&(at + 1));
        self.log_base = at;
        self.chosen_through = at;
        self.applied = at;
        self.commit_heard = self.commit_heard.max(at);
        if let Role::Leader(l) = &mut self.role {
            l.in_flight = l.in_flight.split_off(&(at + 1));
            l.next_slot = l.next_slot.max(at + 1);
        }
        if let Some(trace) = &mut self.applied_trace {
            // The checker compares applied batches slot by slot; a snapshot skips them.
            trace.clear();
        }
        // Requests proposed here and applied inside the snapshot: their replies are in the
        // sessions the snapshot carried.
        let done: Vec<_> = self
            .waiting
            .iter()
            .filter_map(|(&(client, seq), &token)| {
                self.kv
                    .cached_reply(client, seq)
                    .map(|r| ((client, seq), token, r.clone()))
            })
            .collect();
        for (key, token, reply) in done {
            self.waiting.remove(&key);
            self.reply(token, ClientReply::Done(reply));
        }
        self.rebuild_pending();
        self.outbox.push(Action::SaveSnapshot);
        self.advance_chosen(now);
        self.maybe_request_catchup(now);
    }

    /// Rebuilds the state a snapshot describes (recovery).
    pub(super) fn restore(&mut self, snap: Snapshot) {
        self.kv.import(snap.kv);
        self.promised = self.promised.max(snap.promised);
        self.applied = snap.last_included;
        self.chosen_through = snap.last_included;
        self.log_base = snap.last_included;
        for (slot, ballot, batch, chosen) in snap.tail {
            self.log.insert(
                slot,
                LogEntry {
                    ballot,
                    batch,
                    chosen,
                    persist_id: 0,
                },
            );
        }
    }
}
