//! Chunked transfer of a state machine between replicas, shared by Multi-Paxos
//! (`paxos/snapshot.rs`) and Raft (`raft/snapshot.rs`).
//!
//! The sender freezes its state once ([`SnapshotOut::freeze`]: sorted, digest computed) and
//! serves bounded chunks of it ([`SnapshotChunk`], about `snapshot_chunk_bytes_max` bytes
//! each); every chunk repeats the transfer's header. The receiver stages one transfer at a
//! time ([`SnapshotIn`]), checks that keys (in `KvState`'s export order), session ids and
//! deadline keys strictly increase and that the counts add up, and takes the state only
//! when every item arrived and the xxh3 digest over all of them matches
//! ([`SnapshotIn::finish`]). How chunks are asked for and retried is the protocol's.

use std::hash::Hash;

use bytes::Bytes;
use xxhash_rust::xxh3::Xxh3Default;

use super::kv::{BuiltState, Item, Kv, KvState, Session, export_order};
use super::message::SnapshotChunk;
use super::types::{ClientId, NANOS_PER_MS, Nanos, ReplicaId, Slot};

/// A frozen state nobody asked a chunk of for this long is dropped (it pins old values).
pub const SNAPSHOT_IDLE_MS: Nanos = 5_000;
/// A transfer with no new chunk for this many election timeouts is abandoned.
pub const SNAPSHOT_STALL_TIMEOUTS: u64 = 4;
/// Bytes counted per entry on top of its key and value (the version and framing).
const ENTRY_OVERHEAD_BYTES: usize = 16;
/// Bytes counted per session on top of [`Session::size_bytes`] (its id).
const SESSION_ID_BYTES: usize = 8;
/// Bytes counted per deadline on top of its key (the time and framing).
const DEADLINE_OVERHEAD_BYTES: usize = 16;

/// A state frozen for sending, served chunk by chunk.
pub struct SnapshotOut {
    /// Every slot up to here is applied in the state.
    pub(crate) last_included: Slot,
    state: KvState,
    digest: u64,
    /// When a chunk of it was last sent, to anyone.
    pub(crate) served_at: Nanos,
    /// When a chunk of it was last sent to each peer.
    pub(crate) served_to: [Option<Nanos>; crate::config::REPLICAS_MAX],
}

impl SnapshotOut {
    fn entries_total(&self) -> u64 {
        self.state.entries.len() as u64
    }

    fn sessions_total(&self) -> u64 {
        self.state.sessions.len() as u64
    }

    pub(crate) fn items_total(&self) -> u64 {
        self.entries_total() + self.sessions_total() + self.state.deadlines.len() as u64
    }

    /// The items from `offset` on, about `bytes_max` of them (at least one).
    pub(crate) fn chunk(&self, offset: u64, bytes_max: usize) -> SnapshotChunk {
        let entries_total = self.entries_total();
        let sessions_end = entries_total + self.sessions_total();
        let items_total = self.items_total();
        let mut chunk = SnapshotChunk {
            last_included: self.last_included,
            items_total,
            entries_total,
            digest: self.digest,
            offset,
            entries: Vec::new(),
            sessions: Vec::new(),
            sessions_total: self.sessions_total(),
            log_time: self.state.log_time,
            deadlines: Vec::new(),
        };
        let mut at = offset;
        let mut bytes = 0;
        while at < items_total {
            let size = if at < entries_total {
                self.state.entries[at as usize].payload_len() + ENTRY_OVERHEAD_BYTES
            } else if at < sessions_end {
                let (_, s) = &self.state.sessions[(at - entries_total) as usize];
                s.size_bytes() + SESSION_ID_BYTES
            } else {
                let (k, _) = &self.state.deadlines[(at - sessions_end) as usize];
                k.len() + DEADLINE_OVERHEAD_BYTES
            };
            if bytes > 0 && bytes + size > bytes_max {
                break;
            }
            bytes += size;
            if at < entries_total {
                chunk.entries.push(self.state.entries[at as usize].clone());
            } else if at < sessions_end {
                let i = (at - entries_total) as usize;
                chunk.sessions.push(self.state.sessions[i].clone());
            } else {
                let i = (at - sessions_end) as usize;
                chunk.deadlines.push(self.state.deadlines[i].clone());
            }
            at += 1;
        }
        chunk
    }
}

/// A state being received, staged until every chunk is in.
pub(crate) struct SnapshotIn {
    pub(crate) from: ReplicaId,
    /// Who this replica believed led when the transfer started.
    pub(crate) leader: Option<ReplicaId>,
    pub(crate) last_included: Slot,
    pub(crate) items_total: u64,
    entries_total: u64,
    digest: u64,
    /// Over the items received so far, in order.
    hasher: Xxh3Default,
    pub(crate) received: u64,
    entries: Vec<Item>,
    sessions: Vec<(ClientId, Session)>,
    sessions_total: u64,
    log_time: u64,
    deadlines: Vec<(Bytes, u64)>,
    pub(crate) requested_at: Nanos,
    pub(crate) progress_at: Nanos,
}

impl SnapshotIn {
    pub(crate) fn is_transfer_of(&self, from: ReplicaId, c: &SnapshotChunk) -> bool {
        self.from == from
            && self.last_included == c.last_included
            && self.items_total == c.items_total
            && self.entries_total == c.entries_total
            && self.sessions_total == c.sessions_total
            && self.log_time == c.log_time
            && self.digest == c.digest
    }

    /// Appends a chunk at `received`; false if it breaks the order of keys or ids.
    pub(crate) fn append(&mut self, chunk: SnapshotChunk) -> bool {
        for item in chunk.entries {
            let key = item.key();
            let after_last = self.entries.last().is_none_or(|last| {
                (export_order(last.key()), last.key()) < (export_order(key), key)
            });
            if !after_last {
                return false;
            }
            hash_item(&mut self.hasher, &item);
            self.entries.push(item);
        }
        for (c, s) in chunk.sessions {
            if self.sessions.last().is_some_and(|(last, _)| *last >= c) {
                return false;
            }
            hash_session(&mut self.hasher, c, &s);
            self.sessions.push((c, s));
        }
        for (k, at) in chunk.deadlines {
            if self.deadlines.last().is_some_and(|(last, _)| *last >= k) {
                return false;
            }
            hash_deadline(&mut self.hasher, &k, at);
            self.deadlines.push((k, at));
        }
        self.received =
            self.entries.len() as u64 + self.sessions.len() as u64 + self.deadlines.len() as u64;
        true
    }
}

/// A state exported for sending whose sort and digest ([`SnapshotOut::freeze`]) are still
/// to be done: ~0.15 s at 1M keys on this project's test machine, which a driver that
/// asked for it (`Consensus::set_offload_transfers`) does off its executor and hands back.
/// Its entries are frozen in the map until the driver shares them
/// ([`TransferBuild::frozen`]).
pub struct TransferBuild {
    last_included: Slot,
    state: KvState,
    frozen: bool,
}

impl TransferBuild {
    /// True while the state's entries are still frozen in the replica's map
    /// (`Kv::export_begin`, begun in the step that asked for the transfer; every build
    /// is handed out so): the driver shares them a part at a time (`Kv::export_step`),
    /// as a snapshot's, and gives them to [`TransferBuild::set_entries`] before it
    /// builds. Exporting 1M keys in one step took ~18 ms; 2M, mid-growth, stalled a
    /// leader 43-59 ms (results/install-offload-20261206/).
    pub fn frozen(&self) -> bool {
        self.frozen
    }

    /// The entries the freeze handed out (`Kv::export_end`).
    pub fn set_entries(&mut self, entries: Vec<Item>) {
        self.state.entries = entries;
        self.frozen = false;
    }

    /// The transfer, frozen (sorted, digest computed); `now` is when it was first served.
    pub fn build(self, now: Nanos) -> SnapshotOut {
        debug_assert!(!self.frozen, "a transfer built before its entries were set");
        SnapshotOut::freeze(self.last_included, self.state, now)
    }
}

/// A received state, complete and checked, whose map and Merkle tree
/// ([`KvState::build`]) are still to be built: ~75 ms per million keys on this project's
/// test machine, which a driver that asked for it (`Consensus::set_offload_transfers`)
/// does off its executor and hands back; the replica installs it then.
pub struct InstallBuild {
    /// Every slot up to here is applied in the state.
    pub(crate) last_included: Slot,
    /// The term of the entry at `last_included` (Raft; 0 for Multi-Paxos).
    pub(crate) last_term: u64,
    /// Who sent it.
    pub(crate) from: ReplicaId,
    merkle_depth: u8,
    state: KvState,
}

impl InstallBuild {
    /// The state made ready to install.
    pub fn build(self) -> InstallBuilt {
        InstallBuilt {
            last_included: self.last_included,
            last_term: self.last_term,
            from: self.from,
            state: self.state.build(self.merkle_depth),
        }
    }
}

/// An [`InstallBuild`], built.
pub struct InstallBuilt {
    pub(crate) last_included: Slot,
    pub(crate) last_term: u64,
    pub(crate) from: ReplicaId,
    pub(crate) state: BuiltState,
}

/// A receiver's install of a transfer: built in the step that completed it, or handed
/// to the driver to build off its executor.
#[derive(Default)]
pub(crate) struct Installing {
    /// The driver builds installs off its executor ([`InstallBuild`]).
    pub(crate) offload: bool,
    /// A build handed out (or waiting to be taken), not yet back.
    building: bool,
    /// The build to hand out, until the driver takes it.
    to_take: Option<InstallBuild>,
}

impl Installing {
    /// A transfer of `state` (applied through `last_included`) arrived whole from
    /// `from`: `Some` of it built, to install at once, unless the driver builds it;
    /// otherwise it is queued for the driver, and the replica waits for it
    /// ([`Installing::is_building`]).
    pub(crate) fn build_or_queue(
        &mut self,
        (last_included, last_term): (Slot, u64),
        from: ReplicaId,
        kv: &Kv,
        state: KvState,
    ) -> Option<InstallBuilt> {
        let build = InstallBuild {
            last_included,
            last_term,
            from,
            merkle_depth: kv.merkle().depth(),
            state,
        };
        if !self.offload {
            return Some(build.build());
        }
        self.building = true;
        self.to_take = Some(build);
        None
    }

    /// Whether an install is being built (handed out, not yet back): chunks and new
    /// transfers wait for it.
    pub(crate) fn is_building(&self) -> bool {
        self.building
    }

    /// The build to hand the driver, if one is queued.
    pub(crate) fn take(&mut self) -> Option<InstallBuild> {
        self.to_take.take()
    }

    /// A build came back.
    pub(crate) fn finish(&mut self) {
        self.building = false;
    }
}

/// How long after a transfer found a snapshot's freeze running ([`Freeze::Busy`]) the
/// next snapshot waits for it to begin ([`Pending::wanted`]): longer than the peer takes to
/// ask again (a Multi-Paxos catch-up request every heartbeat; a Raft leader's
/// retransmission, at most 1.6 s apart with the default heartbeat), short enough that a
/// peer that asks no more holds snapshots back only briefly.
pub(crate) const TRANSFER_WANTED_MS: Nanos = 2_000;

/// What [`Pending::freeze_or_queue`] did with a peer's need for a transfer.
pub(crate) enum Freeze {
    /// Built in the step (no driver builds transfers): serve it.
    Built(Box<SnapshotOut>),
    /// Handed to the driver to build; the peer gets chunk 0 once it is back.
    Queued,
    /// Nothing started: a snapshot's freeze of the map runs (the peer asks again).
    Busy,
}

/// A sender's transfer being built off the executor: who asked for it meanwhile.
#[derive(Default)]
pub(crate) struct Pending {
    /// The driver builds transfers off its executor ([`TransferBuild`]); otherwise they
    /// are built at once, in the step that needs one.
    pub(crate) offload: bool,
    /// A build handed out (or waiting to be taken), of the state at this slot.
    pub(crate) building: Option<Slot>,
    /// The build to hand out, until the driver takes it.
    pub(crate) to_take: Option<TransferBuild>,
    /// Peers that asked for chunk 0 while it was built: they get it once it is.
    pub(crate) waiters: [bool; crate::config::REPLICAS_MAX],
    /// Until when a transfer that found a snapshot's freeze running is wanted.
    wanted_until: Option<Nanos>,
}

impl Pending {
    /// True if a build is under way: `to`, which needs a transfer, gets chunk 0 once it
    /// is back.
    pub(crate) fn wait_for_build(&mut self, to: ReplicaId) -> bool {
        if self.building.is_some() {
            self.waiters[to.index()] = true;
        }
        self.building.is_some()
    }

    /// A peer needs a new transfer of the state of `kv` (applied through `last_included`)
    /// and none is being built: built at once unless the driver builds it; otherwise the
    /// build is queued for the driver, and `to` gets chunk 0 once it is built. The
    /// driver's build freezes the map's items to share them a part at a time
    /// (`Kv::export_begin`). While a snapshot's freeze runs, none starts: the map holds
    /// one freeze, and exporting every item at once instead stopped the shard for all
    /// of them (~18 ms at 1M keys); the peer asks again, and the next snapshot waits for
    /// its transfer ([`Pending::wanted`]).
    pub(crate) fn freeze_or_queue(
        &mut self,
        to: ReplicaId,
        last_included: Slot,
        kv: &mut Kv,
        now: Nanos,
    ) -> Freeze {
        if !self.offload {
            return Freeze::Built(Box::new(SnapshotOut::freeze(
                last_included,
                kv.export(),
                now,
            )));
        }
        if kv.exporting() {
            self.wanted_until = Some(now + TRANSFER_WANTED_MS * NANOS_PER_MS);
            return Freeze::Busy;
        }
        self.wanted_until = None;
        self.waiters[to.index()] = true;
        self.building = Some(last_included);
        self.to_take = Some(TransferBuild {
            last_included,
            state: kv.export_begin(),
            frozen: true,
        });
        Freeze::Queued
    }

    /// Whether a peer needs a transfer that found a snapshot's freeze running and has not
    /// begun since: the driver's next snapshot waits for it, so snapshots taken back to
    /// back cannot keep the transfer from ever starting (until [`TRANSFER_WANTED_MS`]
    /// after the last such request).
    pub(crate) fn wanted(&self, now: Nanos) -> bool {
        self.wanted_until.is_some_and(|t| now < t)
    }

    /// Whether a build is under way (asked for, not yet handed back).
    pub(crate) fn is_building(&self) -> bool {
        self.building.is_some()
    }

    /// A build came back: the peers that asked for it meanwhile (each once).
    pub(crate) fn finish(&mut self) -> Vec<ReplicaId> {
        self.building = None;
        let waiters = std::mem::take(&mut self.waiters);
        (0..waiters.len())
            .filter(|&i| waiters[i])
            .map(|i| ReplicaId(i as u8))
            .collect()
    }
}

impl SnapshotOut {
    /// Freezes `state`, applied through `last_included`, for sending (sorted into the
    /// order chunks carry it, its digest computed once).
    pub(crate) fn freeze(last_included: Slot, mut state: KvState, now: Nanos) -> SnapshotOut {
        state.sort();
        let digest = state_digest(&state);
        SnapshotOut {
            last_included,
            state,
            digest,
            served_at: now,
            served_to: [None; crate::config::REPLICAS_MAX],
        }
    }

    /// The chunk at `offset` for `to`, noting when it was served.
    pub(crate) fn serve(
        &mut self,
        now: Nanos,
        to: ReplicaId,
        offset: u64,
        bytes_max: usize,
    ) -> SnapshotChunk {
        self.served_at = now;
        self.served_to[to.index()] = Some(now);
        self.chunk(offset, bytes_max)
    }
}

impl SnapshotIn {
    /// A transfer from `from` starting with its first chunk `chunk` (not yet appended).
    pub(crate) fn start(
        from: ReplicaId,
        leader: Option<ReplicaId>,
        chunk: &SnapshotChunk,
        now: Nanos,
    ) -> SnapshotIn {
        SnapshotIn {
            from,
            leader,
            last_included: chunk.last_included,
            items_total: chunk.items_total,
            entries_total: chunk.entries_total,
            digest: chunk.digest,
            hasher: {
                // The digest covers the log's time first (see `state_digest`).
                let mut h = Xxh3Default::new();
                chunk.log_time.hash(&mut h);
                h
            },
            received: 0,
            entries: Vec::new(),
            sessions: Vec::new(),
            sessions_total: chunk.sessions_total,
            log_time: chunk.log_time,
            deadlines: Vec::new(),
            requested_at: now,
            progress_at: now,
        }
    }

    /// The whole state, once every item arrived, if its digest matches.
    pub(crate) fn finish(self) -> Option<KvState> {
        if self.received < self.items_total || self.hasher.digest() != self.digest {
            return None;
        }
        Some(KvState {
            entries: self.entries,
            sessions: self.sessions,
            deadlines: self.deadlines,
            log_time: self.log_time,
        })
    }
}

fn hash_item(h: &mut Xxh3Default, item: &Item) {
    item.key().hash(h);
    item.value().hash(h);
    // A list by its hash of the elements (the receiver's is computed from what it decoded).
    if let Some(l) = item.list() {
        l.value_hash().hash(h);
    }
    item.version().hash(h);
    item.kind().hash(h);
}

fn hash_session(h: &mut Xxh3Default, id: ClientId, session: &Session) {
    id.hash(h);
    session.hash(h);
}

fn hash_deadline(h: &mut Xxh3Default, key: &[u8], at: u64) {
    key.hash(h);
    at.hash(h);
}

/// xxh3 over the log's time and every item of a state, in the order chunks carry them.
pub(crate) fn state_digest(state: &KvState) -> u64 {
    let mut h = Xxh3Default::new();
    state.log_time.hash(&mut h);
    for item in &state.entries {
        hash_item(&mut h, item);
    }
    for (c, s) in &state.sessions {
        hash_session(&mut h, *c, s);
    }
    for (k, at) in &state.deadlines {
        hash_deadline(&mut h, k, *at);
    }
    h.digest()
}

/// A chunk whose counts are consistent with its own header (it may still belong to no
/// transfer the receiver knows).
pub(crate) fn chunk_is_well_formed(c: &SnapshotChunk) -> bool {
    let n = c.entries.len() as u64 + c.sessions.len() as u64 + c.deadlines.len() as u64;
    let Some(end) = c.offset.checked_add(n) else {
        return false;
    };
    let Some(sessions_end) = c.entries_total.checked_add(c.sessions_total) else {
        return false;
    };
    // Each kind's part of the chunk is where the header puts that kind.
    let within = |from: u64, to: u64| to.clamp(c.offset, end) - from.clamp(c.offset, end);
    sessions_end <= c.items_total
        && end <= c.items_total
        && (n > 0 || c.items_total == 0)
        && c.entries.len() as u64 == within(0, c.entries_total)
        && c.sessions.len() as u64 == within(c.entries_total, sessions_end)
}
