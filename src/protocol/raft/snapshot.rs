//! InstallSnapshot in chunks: a follower whose next entry the leader compacted gets the
//! leader's state machine in bounded chunks (`snapshot_chunk_bytes_max`, with offsets, as
//! in the Raft paper's InstallSnapshot), so a state larger than a peer frame still crosses.
//! The chunk format, the staging and the digest check are Multi-Paxos's
//! (`protocol::transfer`); the flow is Raft's:
//!
//! - The leader freezes its state at its applied index once (with that entry's term) and
//!   sends chunk 0 of it; it keeps serving that state while its log continues it (its
//!   compacted base is not past it).
//! - The follower pulls: it asks for each next chunk (`SnapshotChunkRequest`) when the
//!   previous one arrived, so each transfer has one chunk in flight. The leader counts a
//!   request as the follower's answer (no retransmission while the transfer progresses).
//! - A lost chunk or request stalls the transfer; after the usual append retransmission
//!   time the leader sends chunk 0 again, and a follower that already staged part of that
//!   transfer asks for the chunk after what it holds. A chunk of another transfer at
//!   offset 0 (a newer state, or another leader) restarts staging from the start; a
//!   transfer without progress for `SNAPSHOT_STALL_TIMEOUTS` election timeouts is dropped.
//! - Once every item arrived and the digest matches, the follower installs the state (see
//!   `follower.rs`) and answers `InstallSnapshotReply`; a chunk that breaks the order of
//!   keys, or a digest that does not match, drops what was staged.

use super::{Msg, Replica, Role};
use crate::protocol::message::SnapshotChunk;
use crate::protocol::transfer::{
    Freeze, InstallBuild, InstallBuilt, SNAPSHOT_IDLE_MS, SNAPSHOT_STALL_TIMEOUTS, SnapshotIn,
    SnapshotOut, TransferBuild, chunk_is_well_formed,
};
use crate::protocol::types::{NANOS_PER_MS, Nanos, ReplicaId, Slot};

/// A state being received, and the term of the entry it ends at.
pub(super) struct Incoming {
    transfer: SnapshotIn,
    last_term: u64,
}

/// A state frozen by the leader for sending, and the term of the entry it ends at.
pub(super) struct Outgoing {
    transfer: SnapshotOut,
    last_term: u64,
}

impl Replica {
    /// Sends `to` chunk 0 of our state machine (frozen now unless the frozen one is still
    /// continued by our log): the entries it lacks were compacted.
    pub(super) fn send_snapshot(&mut self, now: Nanos, to: ReplicaId) {
        let usable = self
            .snapshot_out
            .as_ref()
            .is_some_and(|o| o.transfer.last_included >= self.log.base());
        let Role::Leader(l) = &mut self.role else {
            return;
        };
        let p = &mut l.progress[to.index()];
        p.snapshot_sent = true;
        p.sent_at = now;
        if !usable {
            let last_term = self
                .log
                .term_at(self.applied)
                .expect("applied is at or after the base");
            let pending = &mut self.snapshot_pending;
            // Busy (a snapshot's freeze runs): the transfer counts as sent, and the
            // retransmission timer asks for it again.
            let built = if pending.wait_for_build(to) {
                None
            } else {
                match pending.freeze_or_queue(to, self.applied, &mut self.kv, now) {
                    Freeze::Built(out) => Some(*out),
                    Freeze::Queued | Freeze::Busy => None,
                }
            };
            let Some(transfer) = built else {
                return;
            };
            self.snapshot_out = Some(Outgoing {
                transfer,
                last_term,
            });
        }
        self.stats.snapshots_sent += 1;
        self.send_snapshot_chunk(now, to, 0);
    }

    /// Whether a follower waits for a transfer that a snapshot's freeze held back (see
    /// [`crate::protocol::paxos::Replica::transfer_wanted`]).
    pub fn transfer_wanted(&self, now: Nanos) -> bool {
        self.snapshot_pending.wanted(now)
    }

    /// Builds transfers off the driver's executor from now on (see
    /// [`crate::protocol::paxos::Replica::set_offload_transfers`]).
    pub fn set_offload_transfers(&mut self, on: bool) {
        self.snapshot_pending.offload = on;
        self.installing.offload = on;
    }

    /// A received state to build off the executor before it is installed, if one is
    /// waiting (see [`crate::protocol::paxos::Replica::take_install_build`]).
    pub fn take_install_build(&mut self) -> Option<InstallBuild> {
        self.installing.take()
    }

    /// A state handed out comes back built: installed (`follower.rs`), unless this
    /// follower's commit index passed it meanwhile, and answered either way. A replica
    /// elected meanwhile drops it: its log holds every committed entry (the election
    /// rule), and the state holds only committed ones.
    pub fn on_install_built(&mut self, now: Nanos, built: InstallBuilt) {
        self.installing.finish();
        if matches!(self.role, Role::Leader(_)) {
            self.kv.discard_built(built.state);
        } else {
            let last = (built.last_included, built.last_term);
            self.install_snapshot(built.from, last, built.state);
        }
        self.finish_step(now);
    }

    /// A transfer to build off the executor, if one is wanted.
    pub fn take_transfer_build(&mut self) -> Option<TransferBuild> {
        self.snapshot_pending.to_take.take()
    }

    /// A transfer handed out could not be built: the followers that asked get it when
    /// their retransmission time asks again.
    pub fn on_transfer_abandoned(&mut self) {
        self.snapshot_pending.finish();
    }

    /// A transfer handed out comes back built: chunk 0 to every follower that asked
    /// meanwhile, if this replica still leads and its log still continues the state.
    pub fn on_transfer_built(&mut self, now: Nanos, transfer: SnapshotOut) {
        let waiters = self.snapshot_pending.finish();
        if !matches!(self.role, Role::Leader(_)) || transfer.last_included < self.log.base() {
            return;
        }
        let Some(last_term) = self.log.term_at(transfer.last_included) else {
            return;
        };
        self.snapshot_out = Some(Outgoing {
            transfer,
            last_term,
        });
        for to in waiters {
            self.stats.snapshots_sent += 1;
            self.send_snapshot_chunk(now, to, 0);
        }
    }

    fn send_snapshot_chunk(&mut self, now: Nanos, to: ReplicaId, offset: u64) {
        let bytes_max = self.cfg.snapshot_chunk_bytes_max;
        let term = self.term;
        let Some(out) = &mut self.snapshot_out else {
            return;
        };
        let chunk = out.transfer.serve(now, to, offset, bytes_max);
        let last_term = out.last_term;
        self.stats.snapshot_chunks_sent += 1;
        self.send(
            to,
            Msg::InstallSnapshot {
                term,
                last_term,
                chunk: Box::new(chunk),
            },
        );
    }

    /// A follower receiving our snapshot asks for the chunk at `offset`.
    pub(super) fn on_snapshot_chunk_request(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        term: u64,
        last_included: Slot,
        offset: u64,
    ) {
        if term > self.term {
            self.become_follower(now, term, None);
            return;
        }
        let current = self.term;
        let Role::Leader(l) = &mut self.role else {
            self.stats.messages_ignored += 1;
            return;
        };
        if term < current {
            return;
        }
        let p = &mut l.progress[from.index()];
        if !p.snapshot_sent {
            self.stats.messages_ignored += 1; // Finished, or given up for appends.
            return;
        }
        // The transfer progresses: no retransmission meanwhile.
        p.acked_at = now;
        p.sent_at = now;
        p.retransmits = 0;
        let serving = self
            .snapshot_out
            .as_ref()
            .filter(|o| o.transfer.last_included == last_included)
            .map(|o| o.transfer.items_total());
        match serving {
            Some(items) if offset < items => self.send_snapshot_chunk(now, from, offset),
            Some(_) => self.stats.messages_ignored += 1,
            // That state is gone here: start over with the current one.
            None => self.send_snapshot(now, from),
        }
    }

    /// A chunk of the leader's state at `chunk.last_included` (whose entry is of
    /// `last_term`): stage it, ask for the next one, install once complete and checked.
    pub(super) fn on_snapshot_chunk(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        term: u64,
        last_term: u64,
        chunk: SnapshotChunk,
    ) {
        if term < self.term {
            let term = self.term;
            let last_index = 0;
            self.send(from, Msg::InstallSnapshotReply { term, last_index });
            return;
        }
        self.heard_leader(now, term, from);
        if chunk.last_included <= self.commit {
            // We hold that much already: say so (once durable, like any acknowledgement).
            let (term, last_index) = (self.term, self.commit);
            self.send_when_durable(from, Msg::InstallSnapshotReply { term, last_index });
            return;
        }
        if !chunk_is_well_formed(&chunk) || self.installing.is_building() {
            self.stats.messages_ignored += 1;
            return;
        }
        let current = self
            .snapshot_in
            .as_ref()
            .is_some_and(|t| t.transfer.is_transfer_of(from, &chunk) && t.last_term == last_term);
        if !current {
            // Only a first chunk starts a transfer, and a late duplicate of an older one
            // from the same leader must not reset progress.
            let replaces = self.snapshot_in.as_ref().is_none_or(|t| {
                t.transfer.from != from || t.transfer.last_included <= chunk.last_included
            });
            if chunk.offset != 0 || !replaces {
                self.stats.messages_ignored += 1;
                return;
            }
            let transfer = SnapshotIn::start(from, Some(from), &chunk, now);
            self.snapshot_in = Some(Incoming {
                transfer,
                last_term,
            });
        }
        let Some(t) = &mut self.snapshot_in else {
            unreachable!("a transfer was found or started above");
        };
        let t = &mut t.transfer;
        if chunk.offset != t.received {
            if chunk.offset == 0 {
                // The leader started this state again (a chunk or a request was lost):
                // continue after what is staged.
                t.requested_at = now;
                let (last_included, offset) = (t.last_included, t.received);
                self.request_chunk(from, last_included, offset);
            } else {
                self.stats.messages_ignored += 1; // A duplicate.
            }
            return;
        }
        if !t.append(chunk) {
            self.stats.snapshot_transfers_abandoned += 1;
            self.snapshot_in = None;
            return;
        }
        t.progress_at = now;
        if t.received < t.items_total {
            t.requested_at = now;
            let (last_included, offset) = (t.last_included, t.received);
            self.request_chunk(from, last_included, offset);
            return;
        }
        let Some(t) = self.snapshot_in.take() else {
            unreachable!("checked above");
        };
        let last = (t.transfer.last_included, t.last_term);
        let Some(state) = t.transfer.finish() else {
            self.stats.snapshot_transfers_abandoned += 1;
            return;
        };
        if let Some(built) = self.installing.build_or_queue(last, from, &self.kv, state) {
            self.install_snapshot(from, last, built.state);
        }
    }

    fn request_chunk(&mut self, to: ReplicaId, last_included: Slot, offset: u64) {
        let term = self.term;
        self.send(
            to,
            Msg::SnapshotChunkRequest {
                term,
                last_included,
                offset,
            },
        );
    }

    /// A leader's tick: drops a frozen state nobody asked a chunk of for a while (it
    /// pins old values).
    pub(super) fn snapshot_out_tick(&mut self, now: Nanos) {
        let idle = SNAPSHOT_IDLE_MS * NANOS_PER_MS;
        if self
            .snapshot_out
            .as_ref()
            .is_some_and(|o| now >= o.transfer.served_at + idle)
        {
            self.snapshot_out = None;
        }
    }

    /// The index the state being sent ends at, if one is: the log after it stays in
    /// memory (the follower continues from there).
    pub(super) fn snapshot_out_at(&self) -> Option<Slot> {
        self.snapshot_pending
            .building
            .or_else(|| self.snapshot_out.as_ref().map(|o| o.transfer.last_included))
    }

    /// A follower's tick: drops a transfer that stopped progressing or that the log
    /// overtook, and any state frozen while it led.
    pub(super) fn snapshot_in_tick(&mut self, now: Nanos) {
        self.snapshot_out = None;
        let stall = SNAPSHOT_STALL_TIMEOUTS * self.cfg.election_timeout_ms * NANOS_PER_MS;
        let Some(t) = &self.snapshot_in else {
            return;
        };
        if t.transfer.last_included <= self.commit {
            self.snapshot_in = None;
        } else if now >= t.transfer.progress_at + stall {
            self.stats.snapshot_transfers_abandoned += 1;
            self.snapshot_in = None;
        }
    }

    /// Items of a snapshot being received so far, and in all, if one is.
    pub fn snapshot_receiving(&self) -> Option<(u64, u64)> {
        let t = &self.snapshot_in.as_ref()?.transfer;
        Some((t.received, t.items_total))
    }
}
