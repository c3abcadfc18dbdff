//! Snapshots and log compaction: the state machine stands in for the log before it.
//!
//! A replica that asks for slots its peer compacted gets the peer's state machine instead,
//! in chunks of about `snapshot_chunk_bytes_max` bytes, so a state of any size crosses in
//! bounded frames:
//! - The sender freezes its state at its applied index once (an export: the keys and
//!   values are shared, not copied) and serves chunks of it to any peer that asks, until
//!   nobody has asked for [`SNAPSHOT_IDLE_MS`] or the log no longer continues it.
//! - The receiver pulls: it asks for each next chunk (`SnapshotChunkRequest`) when the
//!   previous one arrived, so one chunk per transfer is in flight and neither side queues
//!   more than that. A lost chunk is asked for again after two heartbeats; a duplicate or
//!   out-of-order one is ignored (its offset is not the next expected).
//! - Every chunk repeats its transfer's header (slot, item counts, digest); the receiver
//!   stages one transfer at a time, checks that keys (in `KvState`'s export order) and
//!   session ids strictly increase
//!   and that the counts add up, and installs only when every item arrived and the xxh3
//!   digest over all of them matches. Anything else drops the staged state.
//! - A transfer restarts from chunk 0 when the sender no longer has that state, when the
//!   receiver hears of a new leader (other than the sender), or after no progress for
//!   [`SNAPSHOT_STALL_TIMEOUTS`] election timeouts; the usual catch-up request starts
//!   the next one.

use super::{LogEntry, Replica, Role};
use crate::protocol::kv::{BuiltState, KvState};
use crate::protocol::message::{Message, Snapshot, SnapshotChunk, batch_memory_bytes};
use crate::protocol::outbox::{Action, ClientReply};
use crate::protocol::transfer::{
    Freeze, InstallBuild, InstallBuilt, Installing, Pending, SNAPSHOT_IDLE_MS,
    SNAPSHOT_STALL_TIMEOUTS, SnapshotIn, SnapshotOut, TransferBuild, chunk_is_well_formed,
};
use crate::protocol::types::{NANOS_PER_MS, Nanos, ReplicaId, Slot};
use crate::protocol::waiting;

/// A new frozen state is built at most this often (building one walks the whole map).
const SNAPSHOT_BUILD_MS: Nanos = 1_000;
/// A replica asks the driver for a snapshot (which compacts the log) once the key and
/// value bytes applied since the last compaction reach half the bytes stored, and at
/// least this many: the log then holds at most about half the state's size beyond the
/// retained slots, and the cost of snapshots stays proportional to what was written.
pub const SNAPSHOT_LOG_BYTES_MIN: u64 = 32 << 20;

/// Snapshot transfers of one replica, both ways: at most one frozen state to send and
/// one state being received.
#[derive(Default)]
pub(super) struct Transfers {
    out: Option<SnapshotOut>,
    incoming: Option<SnapshotIn>,
    built_at: Option<Nanos>,
    /// A frozen state being built by the driver, and who waits for it.
    pending: Pending,
    /// A received state being built by the driver before it is installed.
    installing: Installing,
    /// `Kv::written_bytes` at the last compaction or snapshot request.
    written_bytes_mark: u64,
}

impl Replica {
    /// The state at the applied index, with this acceptor's promise and its accepted
    /// entries after it: enough to replace every record written so far.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(self.kv.export())
    }

    /// [`Replica::snapshot`] with the state machine's state `kv`, taken now.
    pub(crate) fn snapshot_with(&self, kv: KvState) -> Snapshot {
        Snapshot {
            last_included: self.applied,
            promised: self.promised,
            kv,
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
        self.recount_applied_log_bytes();
        self.transfers.written_bytes_mark = self.kv.written_bytes();
    }

    /// Drops the oldest applied entries from memory while they hold more than
    /// `log_retain_bytes` (`batch_memory_bytes`), as a compaction would (peers that need them
    /// get a snapshot), but keeps every slot after a state being sent (the receiver
    /// continues from there) and every entry whose own record is not yet durable.
    pub(super) fn trim_applied_log(&mut self) {
        let limit = self.cfg.log_retain_bytes;
        if limit == 0 || self.applied_log_bytes <= limit {
            return;
        }
        let upto = match &self.transfers.out {
            Some(o) => o.last_included.min(self.applied),
            None => self.applied,
        };
        while self.applied_log_bytes > limit {
            let Some(first) = self.log.first_entry() else {
                break;
            };
            if *first.key() > upto || first.get().persist_id > self.durable_id {
                break;
            }
            let slot = *first.key();
            let entry = first.remove();
            self.applied_log_bytes = self
                .applied_log_bytes
                .saturating_sub(batch_memory_bytes(&entry.batch));
            self.log_base = slot;
            self.stats.log_slots_trimmed += 1;
        }
    }

    /// Counts `applied_log_bytes` afresh (after the log changed wholesale).
    pub(super) fn recount_applied_log_bytes(&mut self) {
        self.applied_log_bytes = self
            .log
            .range(..=self.applied)
            .map(|(_, e)| batch_memory_bytes(&e.batch))
            .sum();
    }

    /// Memory of the applied entries held, estimated (`batch_memory_bytes`).
    pub fn applied_log_bytes(&self) -> u64 {
        self.applied_log_bytes
    }

    /// Asks the driver for a snapshot once the log grew by [`SNAPSHOT_LOG_BYTES_MIN`] or half
    /// the stored bytes, whichever is more, since the last compaction: slot counts alone
    /// do not bound the log's memory, since a slot holds up to `batch_max` commands. The
    /// first ask after start comes this replica's share early (`outbox::stagger`), so
    /// the replicas do not all snapshot at once.
    fn maybe_ask_snapshot(&mut self) {
        let grown = self.kv.written_bytes() - self.transfers.written_bytes_mark;
        let threshold = SNAPSHOT_LOG_BYTES_MIN.max(self.kv.stored_bytes() / 2);
        let early = if self.transfers.written_bytes_mark == 0 {
            crate::protocol::outbox::stagger(threshold, self.id, self.cfg.replicas)
        } else {
            0
        };
        if grown + early >= threshold {
            self.transfers.written_bytes_mark = self.kv.written_bytes();
            self.outbox.push(Action::SaveSnapshot);
        }
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

    /// Items of a snapshot being received so far, and in all, if one is.
    pub fn snapshot_receiving(&self) -> Option<(u64, u64)> {
        let t = self.transfers.incoming.as_ref()?;
        Some((t.received, t.items_total))
    }

    /// A peer needs slots this replica compacted: start a transfer with chunk 0 of a
    /// frozen state the log continues (freezing one, at most once per
    /// [`SNAPSHOT_BUILD_MS`]).
    pub(super) fn send_snapshot(&mut self, now: Nanos, to: ReplicaId) {
        let usable = self
            .transfers
            .out
            .as_ref()
            .is_some_and(|o| o.last_included >= self.log_base);
        let heartbeat = self.heartbeat_interval();
        let serving = self
            .transfers
            .out
            .as_ref()
            .and_then(|o| o.served_to[to.index()])
            .is_some_and(|t| now < t + heartbeat);
        if usable && serving {
            // Catch-up requests the peer sent before our first chunk reached it (they
            // queue up while a large state is frozen): its transfer is under way.
            self.stats.messages_ignored += 1;
            return;
        }
        if !usable {
            if self.transfers.pending.wait_for_build(to) {
                self.stats.messages_ignored += 1;
                return;
            }
            if self
                .transfers
                .built_at
                .is_some_and(|t| now < t + SNAPSHOT_BUILD_MS * NANOS_PER_MS)
            {
                self.stats.messages_ignored += 1;
                return;
            }
            let pending = &mut self.transfers.pending;
            let built = match pending.freeze_or_queue(to, self.applied, &mut self.kv, now) {
                Freeze::Built(out) => Some(*out),
                Freeze::Queued => None,
                Freeze::Busy => {
                    self.stats.messages_ignored += 1;
                    return;
                }
            };
            self.transfers.built_at = Some(now);
            let Some(out) = built else {
                return;
            };
            self.transfers.out = Some(out);
        }
        self.stats.snapshots_sent += 1;
        self.send_snapshot_chunk(now, to, 0);
    }

    /// Builds transfers off the driver's executor from now on: a peer's need for one
    /// hands the driver a [`TransferBuild`] ([`Replica::take_transfer_build`]) to give
    /// back built ([`Replica::on_transfer_built`]).
    pub fn set_offload_transfers(&mut self, on: bool) {
        self.transfers.pending.offload = on;
        self.transfers.installing.offload = on;
    }

    /// Whether a peer waits for a transfer that a snapshot's freeze held back: the
    /// driver begins no snapshot meanwhile (see `transfer::Pending::wanted`).
    pub fn transfer_wanted(&self, now: Nanos) -> bool {
        self.transfers.pending.wanted(now)
    }

    /// Whether a transfer handed out to be built has not come back yet.
    pub fn transfer_building(&self) -> bool {
        self.transfers.pending.is_building()
    }

    /// A transfer to build off the executor, if one is wanted.
    pub fn take_transfer_build(&mut self) -> Option<TransferBuild> {
        self.transfers.pending.to_take.take()
    }

    /// Whether a received state handed out to be built has not come back yet.
    pub fn install_building(&self) -> bool {
        self.transfers.installing.is_building()
    }

    /// A received state to build off the executor before it is installed, if one is
    /// waiting (with [`Replica::set_offload_transfers`]).
    pub fn take_install_build(&mut self) -> Option<InstallBuild> {
        self.transfers.installing.take()
    }

    /// A state [`Replica::take_install_build`] handed out comes back built: installed,
    /// unless the log caught this replica up meanwhile.
    pub fn on_install_built(&mut self, now: Nanos, built: InstallBuilt) {
        self.transfers.installing.finish();
        if built.last_included <= self.chosen_through {
            self.kv.discard_built(built.state);
        } else {
            self.install_snapshot(now, built.last_included, built.state);
        }
        self.finish_step(now);
    }

    /// A transfer handed out could not be built: the peers that asked ask again.
    pub fn on_transfer_abandoned(&mut self) {
        self.transfers.pending.finish();
    }

    /// A transfer [`Replica::take_transfer_build`] handed out comes back built: chunk 0 to
    /// every peer that asked meanwhile, if the log still continues it (otherwise they ask
    /// again and get a newer one).
    pub fn on_transfer_built(&mut self, now: Nanos, out: SnapshotOut) {
        let waiters = self.transfers.pending.finish();
        if out.last_included < self.log_base {
            return;
        }
        self.transfers.out = Some(out);
        for to in waiters {
            self.stats.snapshots_sent += 1;
            self.send_snapshot_chunk(now, to, 0);
        }
    }

    fn send_snapshot_chunk(&mut self, now: Nanos, to: ReplicaId, offset: u64) {
        let bytes_max = self.cfg.snapshot_chunk_bytes_max;
        let Some(out) = &mut self.transfers.out else {
            return;
        };
        let chunk = out.serve(now, to, offset, bytes_max);
        self.stats.snapshot_chunks_sent += 1;
        self.send(
            to,
            Message::InstallSnapshot {
                chunk: Box::new(chunk),
            },
        );
    }

    /// A peer receiving our snapshot asks for the chunk after `offset` items.
    pub(super) fn on_snapshot_chunk_request(
        &mut self,
        now: Nanos,
        from: ReplicaId,
        last_included: Slot,
        offset: u64,
    ) {
        match &self.transfers.out {
            Some(o) if o.last_included == last_included => {
                if offset < o.items_total() {
                    self.send_snapshot_chunk(now, from, offset);
                } else {
                    // A retransmitted request after the last chunk.
                    self.stats.messages_ignored += 1;
                }
            }
            // That state is gone here: the peer starts over with the current one.
            _ if last_included <= self.applied => self.send_snapshot(now, from),
            _ => self.stats.messages_ignored += 1,
        }
    }

    /// A chunk of a peer's state machine arrives: stage it, ask for the next one, and
    /// install the state once it is complete and its digest matches.
    pub(super) fn on_snapshot_chunk(&mut self, now: Nanos, from: ReplicaId, chunk: SnapshotChunk) {
        if chunk.last_included <= self.chosen_through
            || !chunk_is_well_formed(&chunk)
            || self.transfers.installing.is_building()
        {
            self.stats.messages_ignored += 1;
            return;
        }
        let current = self
            .transfers
            .incoming
            .as_ref()
            .is_some_and(|t| t.is_transfer_of(from, &chunk));
        if !current {
            // Only a first chunk starts a transfer, and only one newer than the one in
            // progress (or from the same sender, which restarted): a late duplicate of an
            // old first chunk must not reset progress.
            let replaces = self
                .transfers
                .incoming
                .as_ref()
                .is_none_or(|t| t.from == from || t.last_included < chunk.last_included);
            if chunk.offset != 0 || !replaces {
                self.stats.messages_ignored += 1;
                return;
            }
            self.transfers.incoming = Some(SnapshotIn::start(from, self.leader, &chunk, now));
        }
        let Some(t) = &mut self.transfers.incoming else {
            unreachable!("a transfer was found or started above");
        };
        if chunk.offset != t.received {
            // A duplicate, or a chunk overtaken by a retransmission.
            self.stats.messages_ignored += 1;
            return;
        }
        if !t.append(chunk) {
            self.stats.snapshot_transfers_abandoned += 1;
            self.transfers.incoming = None;
            return;
        }
        t.progress_at = now;
        if t.received < t.items_total {
            t.requested_at = now;
            let (last_included, offset) = (t.last_included, t.received);
            self.send(
                from,
                Message::SnapshotChunkRequest {
                    last_included,
                    offset,
                },
            );
            return;
        }
        let Some(t) = self.transfers.incoming.take() else {
            unreachable!("checked above");
        };
        let at = t.last_included;
        let Some(state) = t.finish() else {
            self.stats.snapshot_transfers_abandoned += 1;
            return;
        };
        let installing = &mut self.transfers.installing;
        if let Some(built) = installing.build_or_queue((at, 0), from, &self.kv, state) {
            self.install_snapshot(now, at, built.state);
        }
    }

    /// Timers of snapshots: asks for one when the log grew enough, drops an idle frozen
    /// state, asks again for a lost chunk, abandons a stalled transfer. True while a
    /// transfer is still in progress or being installed (then the usual catch-up request
    /// would only start another one).
    pub(super) fn snapshot_tick(&mut self, now: Nanos) -> bool {
        self.maybe_ask_snapshot();
        if self
            .transfers
            .out
            .as_ref()
            .is_some_and(|o| now >= o.served_at + SNAPSHOT_IDLE_MS * NANOS_PER_MS)
        {
            self.transfers.out = None;
        }
        let stall = SNAPSHOT_STALL_TIMEOUTS * self.cfg.election_timeout_ms * NANOS_PER_MS;
        let retry = 2 * self.heartbeat_interval();
        let Some(t) = &mut self.transfers.incoming else {
            return self.transfers.installing.is_building();
        };
        if t.last_included <= self.chosen_through {
            // The log caught this replica up meanwhile.
            self.transfers.incoming = None;
            return false;
        }
        let new_leader = self
            .leader
            .is_some_and(|l| Some(l) != t.leader && l != t.from && l != self.id);
        if new_leader || now >= t.progress_at + stall {
            self.stats.snapshot_transfers_abandoned += 1;
            self.transfers.incoming = None;
            return false;
        }
        if now >= t.requested_at + retry {
            t.requested_at = now;
            let (to, last_included, offset) = (t.from, t.last_included, t.received);
            self.send(
                to,
                Message::SnapshotChunkRequest {
                    last_included,
                    offset,
                },
            );
        }
        true
    }

    /// A peer's state machine at a slot beyond our commit index, complete and checked:
    /// take it.
    fn install_snapshot(&mut self, now: Nanos, at: Slot, state: BuiltState) {
        assert!(at > self.chosen_through);
        self.stats.snapshots_installed += 1;
        self.kv.import_built(state);
        self.log = self.log.split_off(&(at + 1));
        self.log_base = at;
        self.chosen_through = at;
        self.applied = at;
        self.applied_log_bytes = 0;
        self.commit_heard = self.commit_heard.max(at);
        if let Role::Leader(l) = &mut self.role {
            l.in_flight = l.in_flight.split_off(&(at + 1));
            l.next_slot = l.next_slot.max(at + 1);
        }
        // Requests proposed here and applied inside the snapshot: their replies are in the
        // sessions the snapshot carried.
        for (token, reply) in waiting::take_kept(&mut self.waiting, &self.kv) {
            self.reply(token, ClientReply::Done(reply));
        }
        self.answer_forwards_inside_snapshot();
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
