//! The incoming half: the listener, the handshake and one reader task per connection.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use serde::de::DeserializeOwned;

use super::{
    ACCEPT_ERROR_BACKOFF_MS, CONNS_INCOMING_MAX, HELLO_TIMEOUT_MS, READ_CHUNK_BYTES, Shared,
    TransportConfig, add,
};
use crate::wire::auth::{self, Challenge, Nonce, Proof, Side};
use crate::wire::frame::{
    self, FRAME_HEADER_BYTES, FrameError, HELLO_FRAME_BYTES_MAX, Hello, PROTOCOL_VERSION,
};

/// Connections a listener queues before they are accepted.
const BACKLOG: i32 = 1024;

/// A glommio listener on `addr`, bound here rather than by `glommio::net::TcpListener::bind`,
/// which sets SO_REUSEPORT only. Always SO_REUSEADDR, so a listener binds while connections
/// of an earlier one on that port sit in TIME_WAIT (a node restarted after kill -9; a test
/// picking a port a finished test used). SO_REUSEPORT only with `share_port`: the client
/// port, on which every shard of a node listens and the kernel spreads connections. A peer
/// port must not be shared, or a second node misconfigured onto it would bind without error
/// and silently receive half the connections.
pub(crate) fn bind_listener(addr: SocketAddr, share_port: bool) -> io::Result<TcpListener> {
    let socket = reusable_socket(addr)?;
    if share_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    // Left in blocking mode, exactly as glommio's own bind leaves it: glommio sets
    // O_NONBLOCK around its own accept attempt and otherwise hands accepts to io_uring.
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket that `into_raw_fd` just released, so
    // the glommio listener becomes its only owner and closes it exactly once.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

/// Fails with `AddrInUse` if some listener already holds `addr`, a node's shared client
/// listener included: SO_REUSEPORT would let a second node bind beside it without error
/// and take half its clients. A socket bound with SO_REUSEADDR alone conflicts with any
/// listening socket on the port and with none in TIME_WAIT; it is closed again at once.
/// Called before the shards bind, so a node's own listeners are not yet there.
pub(crate) fn check_port_free(addr: SocketAddr) -> io::Result<()> {
    reusable_socket(addr)?.bind(&addr.into())
}

/// A TCP socket for `addr`'s family with SO_REUSEADDR set, not yet bound.
fn reusable_socket(addr: SocketAddr) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// Accepts connections until cancelled, one reader task each.
pub(super) async fn accept_loop<M: DeserializeOwned + 'static>(
    shared: Rc<Shared<M>>,
    listener: TcpListener,
) {
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                shared.log(format_args!("accept failed: {e}"));
                glommio::timer::sleep(Duration::from_millis(ACCEPT_ERROR_BACKOFF_MS)).await;
                continue;
            }
        };
        add(&shared.conns_accepted, 1);
        if shared.readers.borrow().len() >= CONNS_INCOMING_MAX {
            add(&shared.conns_rejected, 1);
            shared.log(format_args!(
                "closing connection from {}: {CONNS_INCOMING_MAX} incoming connections already open",
                peer_name(&stream)
            ));
            continue;
        }
        let conn_id = shared.next_conn_id.get();
        shared.next_conn_id.set(conn_id + 1);
        let task = glommio::spawn_local(read_conn(shared.clone(), stream, conn_id)).detach();
        // The reader has not run yet (we have not yielded), so it is registered before it
        // can finish and unregister itself.
        shared.readers.borrow_mut().insert(conn_id, task);
    }
}

fn peer_name(stream: &TcpStream) -> String {
    match stream.peer_addr() {
        Ok(addr) => addr.to_string(),
        Err(_) => "an unknown address".into(),
    }
}

/// Why a connection was closed (an incoming one, or a dial during its handshake).
pub(super) enum Closed {
    /// Before or during the handshake.
    Rejected(String),
    /// A frame after the handshake failed to decode.
    Frame(FrameError),
    /// The peer closed its end.
    Eof,
    /// A read failed.
    Io(io::Error),
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::Rejected(reason) => write!(f, "rejected: {reason}"),
            Closed::Frame(e) => write!(f, "bad frame: {e}"),
            Closed::Eof => write!(f, "closed by peer"),
            Closed::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Unregisters a reader however it ends, including by cancellation (when no code after
/// an `.await` runs, but destructors do).
struct ReaderGuard<M> {
    shared: Rc<Shared<M>>,
    conn_id: u64,
    /// Set once the Hello is accepted.
    from: Option<u8>,
}

impl<M> Drop for ReaderGuard<M> {
    fn drop(&mut self) {
        let shared = &*self.shared;
        // try_borrow: a destructor must not panic. No borrow of these is ever held across an
        // await, so it always succeeds in practice; if `stop` already took the map, the
        // entry is simply gone.
        if let Ok(mut readers) = shared.readers.try_borrow_mut() {
            readers.remove(&self.conn_id);
        }
        if let (Some(from), Ok(mut by_peer)) = (self.from, shared.incoming_by_peer.try_borrow_mut())
            && let Some(slot) = by_peer.get_mut(usize::from(from))
            && *slot == Some(self.conn_id)
        {
            *slot = None;
            shared.bump(from, |s| s.incoming_connected = false);
        }
    }
}

/// Serves one accepted connection until it closes, then logs why.
async fn read_conn<M: DeserializeOwned + 'static>(
    shared: Rc<Shared<M>>,
    mut stream: TcpStream,
    conn_id: u64,
) {
    let mut guard = ReaderGuard {
        shared: shared.clone(),
        conn_id,
        from: None,
    };
    let mut buf = RecvBuf::new();
    let closed = match handshake(&shared, &mut stream, &mut buf).await {
        Err(closed) => {
            add(&shared.conns_rejected, 1);
            closed
        }
        Ok(from) => {
            guard.from = Some(from);
            adopt(&shared, from, conn_id);
            let closed = read_frames(&shared, from, &mut stream, &mut buf).await;
            if matches!(closed, Closed::Frame(_)) {
                add(&shared.conns_frame_errors, 1);
            }
            closed
        }
    };
    let who = match guard.from {
        Some(from) => format!("replica {from} ({})", peer_name(&stream)),
        None => peer_name(&stream),
    };
    // A peer restarting is routine; everything else is worth a line.
    if !matches!(closed, Closed::Eof) {
        shared.log(format_args!(
            "incoming connection from {who} closed: {closed}"
        ));
    }
}

/// Reads one handshake frame (a few bytes at most, [`HELLO_FRAME_BYTES_MAX`]).
pub(super) async fn read_handshake_frame<T: DeserializeOwned>(
    stream: &mut TcpStream,
    buf: &mut RecvBuf,
    what: &str,
) -> Result<T, Closed> {
    loop {
        match frame::decode::<T>(buf.data(), HELLO_FRAME_BYTES_MAX) {
            Ok(Some((value, used))) => {
                buf.consume(used);
                return Ok(value);
            }
            Ok(None) => buf.fill(stream, HELLO_FRAME_BYTES_MAX).await?,
            Err(e) => return Err(Closed::Rejected(format!("bad {what}: {e}"))),
        }
    }
}

/// Runs the acceptor's side of the handshake (see [`crate::wire::auth`]): reads and checks
/// the Hello, answers with our Challenge, checks the dialer's Proof. Returns the peer's
/// replica id.
async fn handshake<M>(
    shared: &Shared<M>,
    stream: &mut TcpStream,
    buf: &mut RecvBuf,
) -> Result<u8, Closed> {
    let cfg = &shared.cfg;
    // A connection that never speaks must not hold one of the CONNS_INCOMING_MAX places.
    stream
        .set_read_timeout(Some(Duration::from_millis(HELLO_TIMEOUT_MS)))
        .map_err(|e| Closed::Io(e.into()))?;
    let hello: Hello = read_handshake_frame(stream, buf, "Hello").await?;
    check_hello(cfg, &hello)?;
    let nonce: Nonce = rand::random();
    let challenge = Challenge {
        nonce,
        tag: cfg
            .cluster_key
            .as_ref()
            .map(|key| key.tag(Side::Acceptor, &hello, cfg.me, &nonce)),
    };
    let mut out = Vec::new();
    frame::encode(&challenge, &mut out)
        .map_err(|e| Closed::Rejected(format!("Challenge does not encode: {e}")))?;
    stream.write_all(&out).await.map_err(Closed::Io)?;
    // A dialer that finds our proof wrong (another key, or none) closes here: say so.
    let proof: Proof = match read_handshake_frame(stream, buf, "Proof").await {
        Err(Closed::Eof) => {
            return Err(Closed::Rejected(format!(
                "claims to be replica {}: closed before its Proof (our cluster key proof did \
                 not satisfy it: its key differs, or it has none)",
                hello.from_replica
            )));
        }
        other => other?,
    };
    auth::check_tag(
        cfg.cluster_key.as_ref(),
        Side::Dialer,
        &hello,
        cfg.me,
        &nonce,
        proof.tag.as_ref(),
    )
    .map_err(|reason| {
        Closed::Rejected(format!(
            "claims to be replica {}: {reason}",
            hello.from_replica
        ))
    })?;
    stream
        .set_read_timeout(None)
        .map_err(|e| Closed::Io(e.into()))?;
    Ok(hello.from_replica)
}

/// Checks that a Hello names our cluster, our shard, our protocol version and a peer.
fn check_hello(cfg: &TransportConfig, hello: &Hello) -> Result<(), Closed> {
    if hello.cluster_id != cfg.cluster_id {
        return Err(Closed::Rejected(format!(
            "cluster_id {:#x}, ours is {:#x}",
            hello.cluster_id, cfg.cluster_id
        )));
    }
    if hello.shard != cfg.shard {
        return Err(Closed::Rejected(format!(
            "shard {}, this listener serves shard {}",
            hello.shard, cfg.shard
        )));
    }
    if hello.protocol_version != PROTOCOL_VERSION {
        return Err(Closed::Rejected(format!(
            "protocol version {}, ours is {PROTOCOL_VERSION}",
            hello.protocol_version
        )));
    }
    let known = matches!(
        cfg.peers.get(usize::from(hello.from_replica)),
        Some(Some(_))
    );
    if !known || hello.from_replica == cfg.me {
        return Err(Closed::Rejected(format!(
            "replica {} is not a peer of replica {}",
            hello.from_replica, cfg.me
        )));
    }
    Ok(())
}

/// Makes `conn_id` the connection from `from`. A peer keeps one connection to us, so an
/// older one is stale (the peer restarted, or the old socket is half-open): close it. Only
/// a connection that completed the handshake gets here: with a cluster key, a stranger
/// naming `from` never replaces its link.
fn adopt<M>(shared: &Shared<M>, from: u8, conn_id: u64) {
    let old = shared
        .incoming_by_peer
        .borrow_mut()
        .get_mut(usize::from(from))
        .and_then(|slot| slot.replace(conn_id));
    if let Some(old) = old {
        let task = shared.readers.borrow_mut().remove(&old);
        if let Some(task) = task {
            task.cancel();
        }
    }
    shared.bump(from, |s| s.incoming_connected = true);
    if let Some(Some(link)) = shared.links.get(usize::from(from)) {
        link.peer_dialed_us();
    }
}

/// Decodes frames until the connection closes or a frame is bad.
async fn read_frames<M: DeserializeOwned>(
    shared: &Shared<M>,
    from: u8,
    stream: &mut TcpStream,
    buf: &mut RecvBuf,
) -> Closed {
    let frame_bytes_max = shared.cfg.frame_bytes_max;
    loop {
        let mut frames: u64 = 0;
        let mut bytes: u64 = 0;
        let result = loop {
            match frame::decode::<M>(buf.data(), frame_bytes_max) {
                Ok(Some((msg, used))) => {
                    (shared.on_message)(from, msg, &buf.data()[FRAME_HEADER_BYTES..used]);
                    buf.consume(used);
                    frames += 1;
                    bytes += used as u64;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(Closed::Frame(e)),
            }
        };
        shared.bump(from, |s| {
            s.frames_received += frames;
            s.bytes_received += bytes;
        });
        if frames > 0 {
            (shared.on_drained)(from);
        }
        if let Err(closed) = result {
            return closed;
        }
        glommio::yield_if_needed().await;
        if let Err(closed) = buf.fill(stream, frame_bytes_max).await {
            return closed;
        }
    }
}

/// A read buffer: bytes `start..end` of `data` are received and not yet decoded.
pub(super) struct RecvBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl RecvBuf {
    pub(super) fn new() -> RecvBuf {
        RecvBuf {
            data: vec![0; READ_CHUNK_BYTES],
            start: 0,
            end: 0,
        }
    }

    fn data(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads once, after making room for at least the rest of the next frame (whose size
    /// is known once its header is in) or a read chunk, whichever is more.
    async fn fill(&mut self, stream: &mut TcpStream, frame_bytes_max: usize) -> Result<(), Closed> {
        let pending = self.end - self.start;
        // An oversized length is refused here, before the buffer grows for it.
        let frame_bytes = frame::frame_len(self.data(), frame_bytes_max)
            .map_err(Closed::Frame)?
            .unwrap_or(0);
        let free_min = frame_bytes
            .saturating_sub(pending)
            .max(READ_CHUNK_BYTES / 2);
        if self.data.len() - self.end < free_min {
            self.data.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
            if self.data.len() - self.end < free_min {
                self.data
                    .resize(self.end + free_min.max(READ_CHUNK_BYTES), 0);
            }
        }
        let n = stream
            .read(&mut self.data[self.end..])
            .await
            .map_err(Closed::Io)?;
        if n == 0 {
            return Err(Closed::Eof);
        }
        self.end += n;
        Ok(())
    }
}
