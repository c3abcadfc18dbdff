//! Peer messages and the records the core persists.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use bytes::Bytes;

use super::digest::View;
use super::kv::{Entry, Item, KvState, Request, Session};
use super::types::{Ballot, ClientId, Nanos, Slot};

/// The commands of one slot. Shared, so sending it to every follower copies nothing.
pub type Batch = Arc<[Request]>;

/// What a request held in the log costs in memory beyond its keys and values, roughly:
/// the `Request` itself and two allocations' headers and rounding (a follower decodes
/// each key and value into a buffer of its own; on a leader they share its clients' read
/// buffers, which they keep alive).
pub const REQUEST_MEMORY_OVERHEAD_BYTES: u64 = std::mem::size_of::<Request>() as u64 + 64;

/// The memory a log entry's batch holds, estimated: its keys and values plus a fixed cost
/// per request. What `log_retain_bytes` bounds. Counting keys and values alone let a log
/// of small writes (SETs of a few bytes) hold ten times its bound: 8 MiB of keys and
/// values in 441k entries took ~60 MB on a follower and ~85 MB on the leader.
pub fn batch_memory_bytes(batch: &Batch) -> u64 {
    batch
        .iter()
        .map(|r| r.cmd.payload_bytes() as u64 + REQUEST_MEMORY_OVERHEAD_BYTES)
        .sum()
}

/// A message between replicas of one group. Stale or unexpected messages are dropped and
/// counted, never an error: the network may lose, repeat and reorder anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Candidate → all: phase 1a for every slot from `from_slot` on.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The candidate's first slot not known chosen.
        from_slot: Slot,
    },
    /// Acceptor → candidate: phase 1b, sent once the promise is durable.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// Every slot up to here is chosen and known to this acceptor: the candidate
        /// learns those by catch-up instead of proposing them again.
        chosen_through: Slot,
        /// What this acceptor accepted after both the prepare's `from_slot` and
        /// `chosen_through`: the window where values may be unchosen.
        entries: Vec<(Slot, Ballot, Batch)>,
    },
    /// Acceptor → proposer: it promised a higher ballot; the proposer steps down.
    Reject {
        /// The ballot the acceptor promised.
        promised: Ballot,
    },
    /// Leader → followers: phase 2a for one slot, with the leader's commit index.
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
        /// Its value.
        batch: Batch,
        /// Every slot up to here is chosen.
        commit: Slot,
    },
    /// Acceptor → leader: phase 2b, sent once the accept is durable.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
        /// Quorum-lease mode: replicas this acceptor granted a lease that may still run.
        /// The slot commits only once each of them accepted it too, or `lease_left` passed.
        holders: u8,
        /// The longest of those leases left, on the acceptor's clock.
        lease_left: Nanos,
    },
    /// Leader → followers: heartbeat with the commit index.
    Commit {
        /// The leader's ballot.
        ballot: Ballot,
        /// Every slot up to here is chosen.
        commit: Slot,
    },
    /// A follower missing chosen slots → the leader.
    CatchUpRequest {
        /// The first slot the follower lacks.
        from_slot: Slot,
    },
    /// The sender compacted the slots the receiver asked for: its state machine instead,
    /// one bounded chunk at a time (the receiver asks for each next one).
    InstallSnapshot {
        /// Part of the sender's state at `chunk.last_included`.
        chunk: Box<SnapshotChunk>,
    },
    /// Chosen slots, in order, in a bounded chunk.
    CatchUp {
        /// Consecutive chosen slots.
        entries: Vec<(Slot, Batch)>,
        /// The sender's commit index.
        commit: Slot,
    },
    /// Lease holder → every replica (itself included), each heartbeat: grant me a lease.
    /// In leader-lease mode the leader asks, under its ballot.
    LeaseRequest {
        /// Matches the grant to the request (and so to its send time).
        seq: u64,
        /// The requester's ballot (leader-lease mode: granted only if it is the one promised).
        ballot: Ballot,
    },
    /// Grantor → holder: granted for `lease_ms` from when the request arrived.
    LeaseGrant {
        /// The request's sequence number.
        seq: u64,
        /// The highest slot the grantor had accepted: the holder answers only once it
        /// applied every slot up to here.
        fence: Slot,
    },
    /// Reader → replicas: report on these keys (digest and quorum reads), with the
    /// entries themselves if `full`.
    ReadQuery {
        /// The reader's id for this read.
        id: u64,
        /// The keys, in the command's order.
        keys: Vec<Bytes>,
        /// Send the entries, not only digests.
        full: bool,
    },
    /// Replica → reader: its report.
    ReadReport {
        /// The read's id.
        id: u64,
        /// Digests, versions, pending writes, applied index (and entries if asked).
        view: View,
    },
    /// Reader → a replica whose copy is older than the one it applied past: install these.
    ReadRepair {
        /// The read's id.
        id: u64,
        /// Committed entries; installed only over older versions.
        entries: Vec<(Bytes, Entry)>,
    },
    /// Replica → reader: the repair was applied (or was not needed).
    ReadRepaired {
        /// The read's id.
        id: u64,
    },
    /// A replica receiving a snapshot → its sender: the next chunk, after `offset` items
    /// (sent again if the chunk does not come; a stale request restarts the transfer).
    SnapshotChunkRequest {
        /// The transfer: the slot of the state being sent.
        last_included: Slot,
        /// Items (entries, then sessions) received so far.
        offset: u64,
    },
    /// A replica whose storage lost records → every other replica: what have you promised,
    /// and, if you lead, how far have you proposed? (It votes again only once it knows.)
    RecoveryQuery,
    /// Answer to `RecoveryQuery`.
    RecoveryReport {
        /// The highest ballot the sender promised.
        promised: Ballot,
        /// The sender is itself recovering lost records (its promise may be among them).
        recovering: bool,
        /// If the sender leads: its ballot and the highest slot it proposed.
        leading: Option<(Ballot, Slot)>,
    },
    /// A Raft message (`protocol::raft`); Multi-Paxos replicas drop it.
    Raft(super::raft::Msg),
    /// Replica → peer: my clock reads `sent` (lease modes; see `protocol::clock_check`).
    ClockProbe {
        /// The sender's time when it sent the probe.
        sent: Nanos,
    },
    /// Peer → prober: your probe, and my clock when it arrived.
    ClockEcho {
        /// The probe's `sent`.
        sent: Nanos,
        /// The echoing replica's time.
        at: Nanos,
    },
    /// A Multi-Paxos replica that restarted → every other replica, before it promises or
    /// accepts anything: what did you see me hold durably? (`protocol/stale.rs`: a data
    /// directory replaced by an older copy of itself shows as less than that.)
    RestartQuery,
    /// Answer to `RestartQuery`, from the sender's memory (empty after it restarted).
    RestartReport {
        /// The highest ballot the asker promised us (`Ballot::ZERO`: none seen).
        promised: Ballot,
        /// The highest slot it acknowledged accepting to us, and at which ballot.
        accepted: Option<(Slot, Ballot)>,
    },
}

impl Message {
    /// Messages that exist only to serve reads (digest and quorum reads, repairs).
    pub fn is_read_traffic(&self) -> bool {
        matches!(
            self,
            Message::ReadQuery { .. }
                | Message::ReadReport { .. }
                | Message::ReadRepair { .. }
                | Message::ReadRepaired { .. }
        )
    }

    /// Messages that keep leases alive.
    pub fn is_lease_traffic(&self) -> bool {
        matches!(
            self,
            Message::LeaseRequest { .. }
                | Message::LeaseGrant { .. }
                | Message::ClockProbe { .. }
                | Message::ClockEcho { .. }
        )
    }
}

/// A bounded part of a replica's state machine at `last_included`. The whole state is a
/// sequence of items, the entries (in `KvState`'s order), the sessions (by id), then the
/// keys' deadlines (by key); a
/// chunk carries the items from `offset` on. Every chunk repeats the transfer's header
/// (`last_included`, `items_total`, `entries_total`, `digest`), so the receiver can tell
/// a chunk of another transfer and never mixes two.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// Every slot up to here is applied in the state being sent.
    pub last_included: Slot,
    /// Items in the whole state: entries then sessions.
    pub items_total: u64,
    /// Entries in the whole state (they come first).
    pub entries_total: u64,
    /// xxh3 over every item in order, checked before the state is installed.
    pub digest: u64,
    /// The position of the first item of this chunk.
    pub offset: u64,
    /// Entries from `offset` on, if `offset < entries_total`.
    pub entries: Vec<Item>,
    /// Sessions after the entries.
    pub sessions: Vec<(ClientId, Session)>,
    /// Sessions in the whole state (they come after the entries).
    pub sessions_total: u64,
    /// The log's time in the state (unix ms).
    pub log_time: u64,
    /// Keys' deadlines after the sessions, by key.
    pub deadlines: Vec<(Bytes, u64)>,
}
/// What the core asks the runtime to write to its log before it relies on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// The acceptor promised this ballot.
    Promise {
        /// The ballot.
        ballot: Ballot,
    },
    /// The acceptor accepted `batch` for `slot` at `ballot` (this implies a promise).
    Accept {
        /// The ballot.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
        /// The value.
        batch: Batch,
    },
    /// A chosen value learned through catch-up.
    Learned {
        /// The slot.
        slot: Slot,
        /// Its chosen value.
        batch: Batch,
    },
    /// Every slot up to `through` is chosen, with the values this log holds for them.
    Chosen {
        /// The commit index.
        through: Slot,
    },
    /// A Raft record (`protocol::raft`); Multi-Paxos replicas skip it.
    Raft(super::raft::RaftRecord),
    /// The restart check found this storage older than what peers saw the replica
    /// acknowledge (`paxos/stale.rs`): recovery makes it a learner again until it caught
    /// up through slot `seen_through` at least. The snapshot that ends that catch-up
    /// drops it with the records before it. Last, so older records keep their encoding.
    StaleData {
        /// The highest slot its records or a peer's report named when it was found.
        seen_through: Slot,
    },
}

/// A replica's state at an applied slot: what recovery and lagging followers start from
/// instead of the log before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every slot up to here is applied in `kv`.
    pub last_included: Slot,
    /// The acceptor's promise when it was taken.
    pub promised: Ballot,
    /// The state machine.
    pub kv: KvState,
    /// Accepted entries after `last_included` (slot, ballot, value, known chosen): the
    /// acceptor's votes, which must survive the log they came from.
    pub tail: Vec<(Slot, Ballot, Batch, bool)>,
}
