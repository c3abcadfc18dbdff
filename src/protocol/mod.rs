//! The sans-IO protocol core: Multi-Paxos, Raft and the KV state machine.
//!
//! No glommio, no clock, no sockets, no files, no threads, no unseeded randomness. Inputs
//! carry `now`; effects leave through an outbox of [`outbox::Action`]s. The same code runs
//! under the glommio runtime and under the deterministic simulator.

pub mod blocking;
pub mod client;
pub mod clock;
pub mod clock_check;
pub mod command;
pub mod consensus;
pub mod digest;
pub mod expiry;
pub mod glob;
pub mod item;
pub mod kv;
pub mod lease;
pub mod list;
pub mod merkle;
pub mod message;
pub mod outbox;
pub mod paxos;
pub mod pending;
pub mod raft;
pub mod reply_buf;
pub mod shared_bytes;
pub mod stale;
pub mod transfer;
pub mod types;
pub mod waiting;
pub mod watch;

pub use consensus::{Bugs, Consensus, ConsensusSnapshot, Core};
pub use kv::{Command, Kv, Reply, Request};
pub use message::{Batch, Message, Record, Snapshot};
pub use outbox::{Action, ClientReply};
pub use paxos::{Replica, Stats};
pub use types::{Ballot, ClientId, MapHasher, Nanos, PersistId, ReplicaId, Slot, Token};
