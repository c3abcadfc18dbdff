//! What the core asks its driver to do: the only way it affects the world.

use super::kv::Reply;
use super::message::{Message, Record};
use super::types::{PersistId, ReplicaId, Token};

/// One thing for the driver (runtime or simulator) to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a message to a peer.
    Send {
        /// The peer.
        to: ReplicaId,
        /// The message.
        msg: Message,
    },
    /// Append a record to the log. Once records up to `id` are durable, the driver calls
    /// `Replica::on_persisted(id)`; messages that depend on them are held until then.
    Persist {
        /// Consecutive from 1.
        id: PersistId,
        /// What to write.
        record: Record,
    },
    /// The state machine jumped ahead (a snapshot was installed): save a snapshot now, so
    /// recovery does not need the log this replica never had.
    SaveSnapshot,
    /// Answer a client request.
    Reply {
        /// The token that came with the request.
        token: Token,
        /// The answer.
        reply: ClientReply,
    },
}

/// The core's answer to a client request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClientReply {
    /// The command was chosen and applied.
    Done(Reply),
    /// This replica does not lead the group; `leader` is its best guess. The request may
    /// still take effect if it was proposed before; a retry with the same session and
    /// sequence number takes effect at most once.
    NotLeader {
        /// Who leads, if known.
        leader: Option<ReplicaId>,
    },
    /// The leader's proposal queue is full; retry later.
    Busy,
    /// The command is larger than any replica can log; it was not proposed.
    TooLarge {
        /// Its size (an upper bound of its encoding).
        bytes: usize,
        /// [`crate::limits::COMMAND_BYTES_MAX`].
        bytes_max: usize,
    },
}
