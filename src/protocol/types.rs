//! Identifiers and units shared by the whole protocol core.

use serde::{Deserialize, Serialize};

/// A replica's index in the cluster, 0-based; equal to its position in the peer list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReplicaId(pub u8);

impl ReplicaId {
    /// The bit of this replica in a vote mask.
    pub fn bit(self) -> u8 {
        1 << self.0
    }

    /// Index into per-replica arrays.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// A Paxos ballot: ordered by round, then by node, so two proposers never share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ballot {
    /// Increases with every election attempt.
    pub round: u64,
    /// The proposer that owns this ballot.
    pub node: ReplicaId,
}

impl Ballot {
    /// Lower than every ballot a proposer uses (proposers start at round 1).
    pub const ZERO: Ballot = Ballot {
        round: 0,
        node: ReplicaId(0),
    };
}

impl std::fmt::Display for Ballot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.round, self.node.0)
    }
}

/// A position in the replicated log. The first slot is 1; 0 means "none".
pub type Slot = u64;

/// Time in nanoseconds, from a clock the caller owns (the core never reads one).
pub type Nanos = u64;

/// A client session, for exactly-once retries.
pub type ClientId = u64;

/// An opaque handle the runtime gives with a client request and gets back with its reply.
pub type Token = u64;

/// Numbers the records the core asks to persist, consecutively from 1.
pub type PersistId = u64;

/// Nanoseconds in a millisecond.
pub const NANOS_PER_MS: Nanos = 1_000_000;

/// Nanoseconds in a microsecond.
pub const NANOS_PER_US: Nanos = 1_000;

/// The hasher of the core's hash maps: foldhash with a fixed seed, so every replica and
/// every simulator run hashes alike. Several times cheaper than a streaming xxh3 per
/// lookup (the core bench spent a tenth of its time there). Keys come from clients, so a
/// fixed seed leaves the maps open to crafted collisions, as the xxh3 default secret did.
pub type MapHasher = foldhash::fast::FixedState;
