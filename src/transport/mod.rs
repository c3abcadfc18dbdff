//! Peer TCP links between shard i of every replica.
//!
//! One [`Transport`] serves one shard inside one glommio executor (single-threaded, so
//! shared state is `Rc` + `Cell`/`RefCell`, never a lock). Links are one-way: to send to a
//! peer we dial it and only write; what the peer sends us arrives on the connection it
//! dialed to our listener. That keeps each connection's job simple (a writer never reads
//! frames, a reader never writes) and gives per-link FIFO order for free.
//!
//! - Outgoing (`link.rs`): per peer, a queue of encoded frames and a writer task. `send`
//!   encodes straight into the queue and returns; the writer wakes when the queue turns
//!   non-empty, takes all of it and writes it in one call. Everything sent while the writer
//!   was busy or not yet scheduled therefore shares a write (DESIGN §6: one message per
//!   write caps near 250k msgs/s, 16 per write gives 15×).
//! - Incoming (`accept.rs`): an accept loop; each connection must open with a
//!   [`Hello`](crate::wire::frame::Hello) naming our cluster, our shard and a known peer,
//!   and complete the handshake of [`crate::wire::auth`] (the only bytes an acceptor ever
//!   writes, and a dialer ever reads, are its `Challenge`): with a cluster key, both sides
//!   prove they hold it, and a connection that fails is closed and logged before it can
//!   replace the link of the replica it names. It then carries frames that are decoded
//!   in bulk and handed to `on_message`.
//! - Failure: a peer that is down, slow or unreachable never blocks anything. Sends to it
//!   are dropped and counted (Paxos retransmits); the writer redials with exponential
//!   backoff, and a new connection starts with an empty queue. A peer whose connection to
//!   us passes its handshake is up again: the writer's backoff wait ends and it redials at
//!   once, so a restarted replica hears every peer within a round trip (its restart check
//!   waits for their reports), not after their longest backoff.
//!
//! Memory per peer is bounded: the queue holds at most `send_queue_bytes_max`, plus the one
//! batch being written (also at most that); a reader buffers at most one frame
//! (`frame_bytes_max`) plus a read chunk.
//!
//! glommio executors and memlock (measured here, tests/transport_executor_memlock.rs):
//! glommio refuses to start an executor when RLIMIT_MEMLOCK is below 512 KiB, and registers
//! `io_memory` (10 MiB by default) with each of its three io_uring rings for DMA file I/O.
//! The limit here is 8 MiB, yet `LocalExecutorBuilder::default()` starts and registers
//! fine (VmPin grows by 30 MiB = 3 × 10 MiB): we run as root with CAP_IPC_LOCK, which
//! exempts io_uring from memlock accounting. Without that capability the registration
//! would fail; glommio then logs a warning and carries on without registered buffers
//! (slower DMA file I/O, nothing else). Sockets never use that memory, so no smaller
//! `io_memory` is needed to start; executors that do no file I/O (tests, benches) may
//! still pass `.io_memory(512 * 1024)` to avoid pinning 30 MiB each.

mod accept;
mod link;

pub(crate) use accept::{bind_listener, check_port_free};

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;

use glommio::task::JoinHandle;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::auth::ClusterKey;
use crate::wire::frame::{self, FRAME_HEADER_BYTES};

/// Settings for one shard's peer links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Every frame's Hello carries it; connections from another cluster are refused.
    pub cluster_id: u64,
    /// The shared secret both ends of every connection must prove they hold (see
    /// [`crate::wire::auth`]); `None`: anyone who reaches the peer port and knows the
    /// cluster id may pose as a replica.
    pub cluster_key: Option<ClusterKey>,
    /// Our replica id (an index into `peers`).
    pub me: u8,
    /// The shard (Paxos group) this transport serves; peers must dial the same shard.
    pub shard: u16,
    /// This shard's peer address. Port 0 picks a free port; see [`Transport::local_addr`].
    pub listen: SocketAddr,
    /// Peer addresses by replica id; `None` for `me` (and for ids not in the cluster).
    pub peers: Vec<Option<SocketAddr>>,
    /// Largest frame accepted or sent, header included.
    pub frame_bytes_max: usize,
    /// Bytes that may wait in one peer's outgoing queue; a send beyond it is dropped.
    pub send_queue_bytes_max: usize,
    /// First wait before redialing a peer; doubles after each failed dial.
    pub reconnect_backoff_min_ms: u64,
    /// Ceiling of the redial wait.
    pub reconnect_backoff_max_ms: u64,
}

impl TransportConfig {
    /// Checks the settings and the relations between limits.
    pub fn validate(&self) -> Result<(), TransportError> {
        let fail = |reason: String| Err(TransportError::Config(reason));
        if self.peers.len() > usize::from(u8::MAX) + 1 {
            return fail(format!(
                "{} peers, at most 256 replica ids",
                self.peers.len()
            ));
        }
        match self.peers.get(usize::from(self.me)) {
            None => return fail(format!("me = {} is not an index of peers", self.me)),
            Some(Some(addr)) => {
                return fail(format!("peers[me = {}] is {addr}, must be None", self.me));
            }
            Some(None) => {}
        }
        if self.frame_bytes_max <= FRAME_HEADER_BYTES {
            return fail(format!(
                "frame_bytes_max = {} leaves no room for a payload after the {FRAME_HEADER_BYTES}-byte header",
                self.frame_bytes_max
            ));
        }
        if self.frame_bytes_max > FRAME_HEADER_BYTES + frame::FRAME_PAYLOAD_BYTES_MAX {
            return fail(format!(
                "frame_bytes_max = {} exceeds what a u32 length can describe",
                self.frame_bytes_max
            ));
        }
        // Otherwise a frame that is valid on the wire could never be queued.
        if self.send_queue_bytes_max < self.frame_bytes_max {
            return fail(format!(
                "send_queue_bytes_max = {} is below frame_bytes_max = {}",
                self.send_queue_bytes_max, self.frame_bytes_max
            ));
        }
        if self.reconnect_backoff_min_ms == 0 {
            return fail(
                "reconnect_backoff_min_ms = 0 would redial a dead peer in a busy loop".into(),
            );
        }
        if self.reconnect_backoff_min_ms > self.reconnect_backoff_max_ms {
            return fail(format!(
                "reconnect_backoff_min_ms = {} exceeds reconnect_backoff_max_ms = {}",
                self.reconnect_backoff_min_ms, self.reconnect_backoff_max_ms
            ));
        }
        Ok(())
    }
}

/// Why a transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The configuration is inconsistent.
    #[error("invalid transport config: {0}")]
    Config(String),
    /// The peer port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Counters for the links with one peer. Frame and byte counts include nothing dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Our outgoing connection is up: sends are queued rather than dropped.
    pub connected: bool,
    /// The peer's connection to us has passed its Hello and is open.
    pub incoming_connected: bool,
    /// Frames handed to the socket.
    pub frames_sent: u64,
    /// Bytes handed to the socket (headers included, Hello excluded).
    pub bytes_sent: u64,
    /// Write calls that carried those frames; `frames_sent / writes` is the batching factor.
    pub writes: u64,
    /// Frames received and passed to `on_message`.
    pub frames_received: u64,
    /// Bytes of those frames, headers included.
    pub bytes_received: u64,
    /// Sends dropped because the outgoing connection was down.
    pub drops_down: u64,
    /// Sends dropped because the queue was at `send_queue_bytes_max`.
    pub drops_queue_full: u64,
    /// Queued or in-flight frames lost when the connection failed.
    pub drops_disconnect: u64,
    /// Sends dropped because the message did not encode or exceeded `frame_bytes_max`.
    pub drops_unencodable: u64,
    /// Outgoing connections established (Hello written).
    pub connects: u64,
    /// Of those, the ones after the first: how often the link was re-established.
    pub reconnects: u64,
    /// Dials that failed (refused, timed out, Hello not written).
    pub dial_failures: u64,
}

/// A snapshot of a transport's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Per replica id, same indexing as `TransportConfig::peers`; `me` stays all zero.
    pub peers: Vec<PeerStats>,
    /// Connections accepted on the listener.
    pub conns_accepted: u64,
    /// Connections closed at the handshake: bad Hello, unknown peer, wrong cluster or
    /// shard, timeout, or over the incoming connection limit.
    pub conns_rejected: u64,
    /// Connections closed after the handshake because a frame failed to decode.
    pub conns_frame_errors: u64,
    /// Sends to a replica id that is `me` or has no address.
    pub drops_unknown_peer: u64,
}

/// Longest a dial may take before it counts as failed.
const DIAL_TIMEOUT_MS: u64 = 2_000;
/// Longest a write may make no progress before the connection is abandoned: a peer that
/// stopped reading must not hold its batch (and memory) forever.
const WRITE_STALL_TIMEOUT_MS: u64 = 10_000;
/// Longest an accepted connection may take to deliver its Hello and its Proof, and a dialer
/// waits for the Challenge.
const HELLO_TIMEOUT_MS: u64 = 5_000;
/// Incoming connections open at once (handshaking or established); more are closed at once.
const CONNS_INCOMING_MAX: usize = 64;
/// Wait after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF_MS: u64 = 100;
/// A reader's buffer starts at this size and always has this much free before a read, so
/// one read call brings in many small frames.
const READ_CHUNK_BYTES: usize = 64 * 1024;

const _: () = assert!(frame::HELLO_FRAME_BYTES_MAX < READ_CHUNK_BYTES);
const _: () = assert!(DIAL_TIMEOUT_MS > 0 && WRITE_STALL_TIMEOUT_MS > 0 && HELLO_TIMEOUT_MS > 0);

/// State shared by the transport handle and its tasks (all on one executor).
struct Shared<M> {
    cfg: TransportConfig,
    /// Outgoing links by replica id; `None` for me and for ids without an address.
    links: Vec<Option<link::OutLink>>,
    /// Per replica id; updated with get/set so no borrow is ever held across a callback.
    stats: Vec<Cell<PeerStats>>,
    conns_accepted: Cell<u64>,
    conns_rejected: Cell<u64>,
    conns_frame_errors: Cell<u64>,
    drops_unknown_peer: Cell<u64>,
    /// Reader tasks by connection id, so `stop` can cancel them.
    readers: RefCell<HashMap<u64, JoinHandle<()>>>,
    /// The connection id currently accepted from each replica; a newer one replaces it.
    incoming_by_peer: RefCell<Vec<Option<u64>>>,
    next_conn_id: Cell<u64>,
    on_message: Box<OnMessage<M>>,
    on_drained: Box<dyn Fn(u8)>,
}

impl<M> Shared<M> {
    fn bump(&self, peer: u8, f: impl FnOnce(&mut PeerStats)) {
        if let Some(cell) = self.stats.get(usize::from(peer)) {
            let mut s = cell.get();
            f(&mut s);
            cell.set(s);
        }
    }

    fn log(&self, args: fmt::Arguments<'_>) {
        eprintln!(
            "corepax transport replica {} shard {}: {args}",
            self.cfg.me, self.cfg.shard
        );
    }
}

fn add(counter: &Cell<u64>, n: u64) {
    counter.set(counter.get() + n);
}

/// Peer links of one shard: see the module documentation.
pub struct Transport<M> {
    shared: Rc<Shared<M>>,
    local_addr: SocketAddr,
    /// The accept loop and the per-peer writers; cancelled on stop or drop.
    tasks: Vec<JoinHandle<()>>,
}

/// What a transport calls with each frame: the sender, the message, and the payload it
/// was decoded from.
type OnMessage<M> = dyn Fn(u8, M, &[u8]);

impl<M: Serialize + DeserializeOwned + 'static> Transport<M> {
    /// Binds, spawns the accept loop and one dialer/writer task per peer on the current
    /// glommio executor. `on_message(from, msg)` runs on that executor for every frame.
    pub async fn start(
        cfg: TransportConfig,
        on_message: impl Fn(u8, M) + 'static,
    ) -> Result<Transport<M>, TransportError> {
        Self::start_with_payload(cfg, move |from, msg, _| on_message(from, msg), |_| {}).await
    }

    /// [`Transport::start`], with `on_message(from, msg, payload)` also given the frame's
    /// payload, the bytes `msg` was decoded from (to keep parts of it as they came), and
    /// `on_drained(from)` called after each run of frames one read from `from` brought
    /// (every whole frame in the buffer handed over): a receiver can leave work its
    /// messages asked for until then, and do it once for them all.
    pub async fn start_with_payload(
        cfg: TransportConfig,
        on_message: impl Fn(u8, M, &[u8]) + 'static,
        on_drained: impl Fn(u8) + 'static,
    ) -> Result<Transport<M>, TransportError> {
        cfg.validate()?;
        let listener =
            accept::bind_listener(cfg.listen, false).map_err(|source| TransportError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TransportError::Bind {
                addr: cfg.listen,
                source: source.into(),
            })?;
        let links = cfg
            .peers
            .iter()
            .map(|addr| addr.map(link::OutLink::new))
            .collect();
        let shared = Rc::new(Shared {
            stats: vec![Cell::new(PeerStats::default()); cfg.peers.len()],
            incoming_by_peer: RefCell::new(vec![None; cfg.peers.len()]),
            links,
            cfg,
            conns_accepted: Cell::new(0),
            conns_rejected: Cell::new(0),
            conns_frame_errors: Cell::new(0),
            drops_unknown_peer: Cell::new(0),
            readers: RefCell::new(HashMap::new()),
            next_conn_id: Cell::new(0),
            on_message: Box::new(on_message),
            on_drained: Box::new(on_drained),
        });
        let mut tasks =
            vec![glommio::spawn_local(accept::accept_loop(shared.clone(), listener)).detach()];
        for (peer, l) in shared.links.iter().enumerate() {
            if l.is_some() {
                // validate() bounds peers.len() to 256, so every index fits a u8.
                let peer = peer as u8;
                tasks.push(glommio::spawn_local(link::run(shared.clone(), peer)).detach());
            }
        }
        Ok(Transport {
            shared,
            local_addr,
            tasks,
        })
    }

    /// The address actually bound (differs from the config when it asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Encodes now into that peer's outgoing buffer; never blocks. If the peer's queue is
    /// over its byte limit or the peer is down, the message is dropped and counted (Paxos
    /// retransmits) — a dead peer never blocks the others.
    pub fn send(&self, to: u8, msg: &M) {
        let shared = &*self.shared;
        let Some(Some(l)) = shared.links.get(usize::from(to)) else {
            add(&shared.drops_unknown_peer, 1);
            return;
        };
        l.enqueue(shared, to, msg);
    }

    /// Sends a frame `wire::frame::encode` made of a message of this transport's type, as
    /// [`Transport::send`] does: a message for several peers is encoded once.
    pub fn send_frame(&self, to: u8, encoded: &[u8]) {
        let shared = &*self.shared;
        let Some(Some(l)) = shared.links.get(usize::from(to)) else {
            add(&shared.drops_unknown_peer, 1);
            return;
        };
        l.enqueue_frame(shared, to, encoded);
    }

    /// Bytes waiting in the outgoing queue to `to` (0 for unknown peers): lets a caller
    /// hold back before sends start being dropped.
    pub fn queued_bytes(&self, to: u8) -> usize {
        match self.shared.links.get(usize::from(to)) {
            Some(Some(l)) => l.queued_bytes(),
            _ => 0,
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TransportStats {
        let s = &*self.shared;
        TransportStats {
            peers: s.stats.iter().map(Cell::get).collect(),
            conns_accepted: s.conns_accepted.get(),
            conns_rejected: s.conns_rejected.get(),
            conns_frame_errors: s.conns_frame_errors.get(),
            drops_unknown_peer: s.drops_unknown_peer.get(),
        }
    }

    /// Closes the listener and every connection, and waits until all tasks are gone: when
    /// it returns the port is free and peers see their connections closed.
    pub async fn stop(mut self) {
        // The accept loop goes first so no new reader appears while the others are stopped.
        for task in std::mem::take(&mut self.tasks) {
            task.cancel();
            let _ = task.await;
        }
        let readers = std::mem::take(&mut *self.shared.readers.borrow_mut());
        for (_, task) in readers {
            task.cancel();
            let _ = task.await;
        }
    }
}

impl<M> Drop for Transport<M> {
    /// Without `stop`, tasks are still cancelled (they go away when the executor next runs).
    fn drop(&mut self) {
        for task in &self.tasks {
            task.cancel();
        }
        for task in self.shared.readers.borrow().values() {
            task.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> TransportConfig {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("literal address");
        TransportConfig {
            cluster_id: 1,
            cluster_key: None,
            me: 1,
            shard: 0,
            listen: "127.0.0.1:0".parse().expect("literal address"),
            peers: vec![Some(addr), None, Some(addr)],
            frame_bytes_max: 1024,
            send_queue_bytes_max: 4096,
            reconnect_backoff_min_ms: 10,
            reconnect_backoff_max_ms: 1000,
        }
    }

    fn rejects(change: impl FnOnce(&mut TransportConfig)) -> bool {
        let mut cfg = valid();
        change(&mut cfg);
        matches!(cfg.validate(), Err(TransportError::Config(_)))
    }

    #[test]
    fn validate_accepts_a_sane_config() {
        assert!(valid().validate().is_ok());
    }

    #[test]
    fn validate_rejects_each_broken_relation() {
        assert!(rejects(|c| c.me = 3), "me outside peers");
        assert!(rejects(|c| c.peers[1] = c.peers[0]), "an address for me");
        assert!(
            rejects(|c| c.peers = vec![None; 257]),
            "more than 256 replicas"
        );
        assert!(
            rejects(|c| c.frame_bytes_max = FRAME_HEADER_BYTES),
            "no payload room"
        );
        assert!(
            rejects(|c| c.send_queue_bytes_max = c.frame_bytes_max - 1),
            "queue below a frame"
        );
        assert!(rejects(|c| c.reconnect_backoff_min_ms = 0), "busy redial");
        assert!(rejects(|c| c.reconnect_backoff_max_ms = 5), "min above max");
    }
}
