//! The size limits a client command meets on its way from the socket to the disk, in one
//! place, with the relations between them checked at compile time.
//!
//! A command is decoded by the front end, proposed in a batch, encoded as a WAL record on
//! every replica and as a peer frame to every follower. If any stage accepted more than a
//! later stage can hold, the command would be replicated and then fail to persist on every
//! replica at once. So each stage's limit is derived from the next one's:
//!
//! ```text
//! command (COMMAND_BYTES_MAX) + request and record overhead  ≤ WAL_RECORD_BYTES_MAX
//! 4 × COMMAND_BYTES_MAX (see its doc: time, not only room)     ≤ PEER_FRAME_BYTES_MAX
//! WAL_RECORD_BYTES_MAX + WAL record header                    ≤ WAL pending and segment room
//! one batch (≤ WAL record) + message and frame overhead       ≤ PEER_FRAME_BYTES_MAX
//! ```
//!
//! Sizes of commands are upper bounds of their postcard encoding
//! ([`crate::protocol::kv::Command::encoded_bytes_max`]), never exact: the core has no
//! encoder, and a bound that only grows with the data is all the limits need.

/// Largest varint postcard writes (a `u64` or `usize`): the per-length overhead.
pub const VARINT_BYTES_MAX: usize = 10;

/// Bytes one key or value adds to a command's encoding beyond its own bytes: its length.
pub const ITEM_OVERHEAD_BYTES: usize = VARINT_BYTES_MAX;

/// Bytes a command adds beyond its items: variant tag (≤ 5) and one list length.
pub const COMMAND_OVERHEAD_BYTES: usize = 5 + VARINT_BYTES_MAX;

/// Bytes a request adds beyond its command: client, sequence number and ack floor.
pub const REQUEST_OVERHEAD_BYTES: usize = 3 * VARINT_BYTES_MAX;

/// Bytes a WAL record (`Record::Accept` or `Record::Learned`) adds beyond its batch's
/// requests: variant tag, ballot (round and node), slot, and the batch's length; rounded
/// up generously.
pub const RECORD_OVERHEAD_BYTES: usize = 64;

/// Bytes a peer frame adds beyond one batch: frame header (length, checksum), the
/// `PeerMsg` and `Message` tags, ballot, slot, commit index and lengths; rounded up.
pub const FRAME_OVERHEAD_BYTES: usize = 256;

/// Largest WAL record payload a node writes or accepts. A record is one slot's batch.
pub const WAL_RECORD_BYTES_MAX: usize = (32 << 20) - 64;

/// Bytes a WAL may hold waiting for a sync (`WalOptions::pending_bytes_max` default): one
/// record of the largest size and its header must fit (checked in `runtime::wal`, which
/// knows the header).
pub const WAL_PENDING_BYTES_MAX: usize = 32 << 20;

/// Largest encoded client command (upper bound of its encoding, see
/// [`crate::protocol::kv::Command::encoded_bytes_max`]): 16 MiB, half of what a WAL record
/// could hold, for three reasons:
///
/// - Time. On its way through a 3-replica group a command is copied, checksummed and
///   written some twenty times (decoded, forwarded, encoded as a record and as an accept
///   per follower, received, logged, applied). A command of the record limit (32 MiB)
///   took longer than the 5 s request timeout on a 2-core machine running the three
///   replicas beside other work, and replicas that far behind start elections whose new
///   leader logs it again; the client saw `TIMEOUT` and the group stalled for seconds.
///   A 16 MiB command is answered within the timeout there.
/// - Room. An accept of the largest command is about a quarter of a peer frame and of a
///   peer send queue (`PEER_FRAME_BYTES_MAX`), so a heartbeat or another accept queued
///   behind it is not dropped for lack of room.
/// - A batch of it and smaller commands still fits a WAL record.
pub const COMMAND_BYTES_MAX: usize = 16 << 20;

/// Largest `batch_bytes_max`: a batch of requests whose encoded bounds sum to it is
/// exactly the largest WAL record.
pub const BATCH_BYTES_LIMIT: usize = WAL_RECORD_BYTES_MAX - RECORD_OVERHEAD_BYTES;

/// Largest peer frame (header included) a shard sends or accepts.
pub const PEER_FRAME_BYTES_MAX: usize = 64 << 20;

/// Encoded batch bytes per catch-up message, at most (a single larger batch still gets a
/// message of its own): several slots per frame, and never beyond a frame.
pub const CATCHUP_BYTES_MAX: usize = PEER_FRAME_BYTES_MAX / 2 - FRAME_OVERHEAD_BYTES;

// A command at the limit, alone in a batch, fits a WAL record.
const _: () = assert!(
    COMMAND_BYTES_MAX + REQUEST_OVERHEAD_BYTES + RECORD_OVERHEAD_BYTES <= WAL_RECORD_BYTES_MAX
);
// The largest command is at most a quarter of a peer frame, and so of a send queue (the
// node sizes its send queues to one frame): an accept of it leaves room behind it.
const _: () = assert!(4 * COMMAND_BYTES_MAX <= PEER_FRAME_BYTES_MAX);
// The largest batch is the largest record.
const _: () = assert!(BATCH_BYTES_LIMIT + RECORD_OVERHEAD_BYTES <= WAL_RECORD_BYTES_MAX);
// An Accept carrying the largest batch crosses in one frame, and so does a Forward of the
// largest command.
const _: () = assert!(WAL_RECORD_BYTES_MAX + FRAME_OVERHEAD_BYTES <= PEER_FRAME_BYTES_MAX);
// A catch-up chunk at its byte limit fits one frame (a chunk of one larger batch is an
// Accept-sized frame, checked above).
const _: () = assert!(CATCHUP_BYTES_MAX + FRAME_OVERHEAD_BYTES <= PEER_FRAME_BYTES_MAX);
