//! The outgoing half: one queue and one dialer/writer task per peer.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWriteExt};
use glommio::net::TcpStream;
use serde::Serialize;

use super::accept::{RecvBuf, read_handshake_frame};
use super::{DIAL_TIMEOUT_MS, HELLO_TIMEOUT_MS, Shared, TransportConfig, WRITE_STALL_TIMEOUT_MS};
use crate::wire::auth::{self, Challenge, Proof, Side};
use crate::wire::frame::{self, Hello, PROTOCOL_VERSION};

/// One peer's outgoing queue, shared by `send` (which fills it) and the writer (which
/// empties it).
pub(super) struct OutLink {
    addr: SocketAddr,
    /// Encoded frames waiting for the writer, at most `send_queue_bytes_max` bytes.
    queue: RefCell<Vec<u8>>,
    /// Frames in `queue`, so drops and sends can be counted in frames.
    queue_frames: Cell<u64>,
    /// True while a connection is up; sends made while it is false are dropped.
    connected: Cell<bool>,
    /// The writer parks here when the queue is empty.
    writer_waker: Cell<Option<Waker>>,
    /// Set when the peer dialed us while this link was down: it is up again, so the
    /// dialer's backoff wait ends at once (a restarted replica hears its peers within a
    /// round trip, not after their longest backoff).
    peer_is_up: Cell<bool>,
    /// The dialer parks here during its backoff wait.
    backoff_waker: Cell<Option<Waker>>,
}

impl OutLink {
    pub(super) fn new(addr: SocketAddr) -> OutLink {
        OutLink {
            addr,
            queue: RefCell::new(Vec::new()),
            queue_frames: Cell::new(0),
            connected: Cell::new(false),
            writer_waker: Cell::new(None),
            peer_is_up: Cell::new(false),
            backoff_waker: Cell::new(None),
        }
    }

    /// The peer's connection to us passed its handshake: if this link is down, redial now.
    pub(super) fn peer_dialed_us(&self) {
        if self.connected.get() {
            return;
        }
        self.peer_is_up.set(true);
        if let Some(waker) = self.backoff_waker.take() {
            waker.wake();
        }
    }

    /// Waits `ms`, or less if the peer dials us meanwhile.
    async fn backoff(&self, ms: u64) {
        let peer_up = poll_fn(|cx| {
            if self.peer_is_up.replace(false) {
                return Poll::Ready(());
            }
            self.backoff_waker.set(Some(cx.waker().clone()));
            Poll::Pending
        });
        futures_lite::future::or(glommio::timer::sleep(Duration::from_millis(ms)), peer_up).await;
        self.backoff_waker.set(None);
    }

    pub(super) fn queued_bytes(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Encodes `msg` at the end of the queue, or drops and counts it.
    pub(super) fn enqueue<M: Serialize>(&self, shared: &Shared<M>, to: u8, msg: &M) {
        // Encoding in place and undoing it on overflow is cheaper than sizing the message
        // first: overflow is the rare case.
        self.push(shared, to, |queue| frame::encode(msg, queue).is_ok());
    }

    /// Appends a frame `wire::frame::encode` made (the same bytes go to several peers),
    /// or drops and counts it.
    pub(super) fn enqueue_frame<M>(&self, shared: &Shared<M>, to: u8, encoded: &[u8]) {
        self.push(shared, to, |queue| {
            queue.extend_from_slice(encoded);
            true
        });
    }

    /// Appends one frame with `write` (false: it did not encode), then drops it again if
    /// it is over the frame limit or the queue's, counting why.
    fn push<M>(&self, shared: &Shared<M>, to: u8, write: impl FnOnce(&mut Vec<u8>) -> bool) {
        if !self.connected.get() {
            shared.bump(to, |s| s.drops_down += 1);
            return;
        }
        let cfg = &shared.cfg;
        let mut queue = self.queue.borrow_mut();
        let before = queue.len();
        let encoded = write(&mut queue);
        let frame_bytes = queue.len() - before;
        if !encoded || frame_bytes > cfg.frame_bytes_max {
            queue.truncate(before);
            shared.bump(to, |s| s.drops_unencodable += 1);
            return;
        }
        if queue.len() > cfg.send_queue_bytes_max {
            queue.truncate(before);
            shared.bump(to, |s| s.drops_queue_full += 1);
            return;
        }
        drop(queue);
        self.queue_frames.set(self.queue_frames.get() + 1);
        // Only the empty → non-empty transition needs a wakeup; otherwise the writer is
        // already awake or about to take this frame with the rest.
        if before == 0
            && let Some(waker) = self.writer_waker.take()
        {
            waker.wake();
        }
    }

    /// Empties the queue, returning how many frames it held.
    fn discard_queue(&self) -> u64 {
        self.queue.borrow_mut().clear();
        self.queue_frames.replace(0)
    }
}

/// The dialer/writer task for `peer`: connect, pump the queue until the connection fails,
/// wait, redial. Runs until cancelled.
pub(super) async fn run<M>(shared: Rc<Shared<M>>, peer: u8) {
    let Some(Some(link)) = shared.links.get(usize::from(peer)) else {
        return;
    };
    let cfg = &shared.cfg;
    let mut backoff_ms = cfg.reconnect_backoff_min_ms;
    let mut dial_failures_in_a_row: u64 = 0;
    // The batch being written; swapped with the queue so `send` keeps appending meanwhile.
    let mut batch: Vec<u8> = Vec::new();
    loop {
        match dial(cfg, link.addr, peer).await {
            Ok(mut stream) => {
                debug_assert_eq!(link.queued_bytes(), 0, "sends are dropped while down");
                link.connected.set(true);
                link.peer_is_up.set(false);
                shared.bump(peer, |s| {
                    s.connected = true;
                    s.connects += 1;
                    if s.connects > 1 {
                        s.reconnects += 1;
                    }
                });
                if dial_failures_in_a_row > 0 {
                    shared.log(format_args!(
                        "connected to replica {peer} at {} after {dial_failures_in_a_row} failed dials",
                        link.addr
                    ));
                }
                dial_failures_in_a_row = 0;
                let connected_at = Instant::now();
                let reason = pump(&shared, link, peer, &mut stream, &mut batch).await;
                // Back to the shortest wait only after a connection that held: a peer that
                // accepts and at once closes (it refuses our Hello) must not be redialed in
                // a tight loop.
                if connected_at.elapsed() >= Duration::from_millis(cfg.reconnect_backoff_max_ms) {
                    backoff_ms = cfg.reconnect_backoff_min_ms;
                }
                link.connected.set(false);
                // Frames queued for a dead connection go with it: the next connection
                // starts fresh, and Paxos retransmits what matters.
                let lost = link.discard_queue();
                shared.bump(peer, |s| {
                    s.connected = false;
                    s.drops_disconnect += lost;
                });
                shared.log(format_args!(
                    "link to replica {peer} at {} closed: {reason}; {lost} queued frames dropped",
                    link.addr
                ));
            }
            Err(e) => {
                shared.bump(peer, |s| s.dial_failures += 1);
                // One line per outage, not one per retry.
                if dial_failures_in_a_row == 0 {
                    shared.log(format_args!(
                        "cannot reach replica {peer} at {}: {e}; retrying with backoff up to {} ms",
                        link.addr, cfg.reconnect_backoff_max_ms
                    ));
                }
                dial_failures_in_a_row += 1;
            }
        }
        link.backoff(backoff_ms).await;
        backoff_ms = backoff_ms
            .saturating_mul(2)
            .min(cfg.reconnect_backoff_max_ms);
    }
}

/// Connects, sets the socket options and runs the dialer's side of the handshake (see
/// [`crate::wire::auth`]): our Hello, the acceptor's Challenge (checked), our Proof.
async fn dial(cfg: &TransportConfig, addr: SocketAddr, peer: u8) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(addr, Duration::from_millis(DIAL_TIMEOUT_MS))
        .await
        .map_err(io::Error::from)?;
    // Batching is done here, by the writer; Nagle would only add latency on top.
    stream.set_nodelay(true).map_err(io::Error::from)?;
    stream
        .set_write_timeout(Some(Duration::from_millis(WRITE_STALL_TIMEOUT_MS)))
        .map_err(io::Error::from)?;
    set_tcp_user_timeout(&stream, WRITE_STALL_TIMEOUT_MS)?;
    let hello = Hello {
        cluster_id: cfg.cluster_id,
        from_replica: cfg.me,
        shard: cfg.shard,
        protocol_version: PROTOCOL_VERSION,
        nonce: rand::random(),
    };
    let mut out = Vec::new();
    frame::encode(&hello, &mut out).map_err(io::Error::other)?;
    stream.write_all(&out).await?;
    stream
        .set_read_timeout(Some(Duration::from_millis(HELLO_TIMEOUT_MS)))
        .map_err(io::Error::from)?;
    let mut buf = RecvBuf::new();
    let challenge: Challenge = read_handshake_frame(&mut stream, &mut buf, "Challenge")
        .await
        .map_err(|closed| io::Error::other(format!("handshake: {closed}")))?;
    let key = cfg.cluster_key.as_ref();
    auth::check_tag(
        key,
        Side::Acceptor,
        &hello,
        peer,
        &challenge.nonce,
        challenge.tag.as_ref(),
    )
    .map_err(|reason| io::Error::other(format!("handshake: {reason}")))?;
    let proof = Proof {
        tag: key.map(|key| key.tag(Side::Dialer, &hello, peer, &challenge.nonce)),
    };
    out.clear();
    frame::encode(&proof, &mut out).map_err(io::Error::other)?;
    stream.write_all(&out).await?;
    stream.set_read_timeout(None).map_err(io::Error::from)?;
    Ok(stream)
}

/// Makes the kernel abort the connection when sent data stays unacknowledged this long. The
/// write timeout only fires once the socket buffer is full; a peer host that vanished
/// without a FIN would otherwise hold a few queued frames for the ~15 minutes of TCP's
/// default retransmission schedule before the link noticed.
fn set_tcp_user_timeout(stream: &TcpStream, timeout_ms: u64) -> io::Result<()> {
    let value = libc::c_uint::try_from(timeout_ms).unwrap_or(libc::c_uint::MAX);
    // SAFETY: setsockopt reads `size_of::<c_uint>()` bytes from a live local and touches
    // nothing else; the fd belongs to `stream`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What `pump` saw that ended the connection.
enum Closed {
    /// The peer closed its end (it stopped, or refused our Hello).
    ByPeer,
    /// The peer wrote to us, which this protocol never does.
    UnexpectedBytes,
    /// A read or write failed.
    Io(io::Error),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::ByPeer => write!(f, "peer closed the connection"),
            Closed::UnexpectedBytes => write!(f, "peer sent bytes on a write-only link"),
            Closed::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Writes everything queued for the peer, one write call per batch, until the connection
/// fails.
async fn pump<M>(
    shared: &Shared<M>,
    link: &OutLink,
    peer: u8,
    stream: &mut TcpStream,
    batch: &mut Vec<u8>,
) -> Closed {
    loop {
        let ready = poll_fn(|cx| {
            if !link.queue.borrow().is_empty() {
                return Poll::Ready(Ok(()));
            }
            // While idle, watch the socket too: the peer closing its end (it stopped or
            // restarted) shows up as end-of-file now, not at our next write.
            let mut probe = [0u8; 1];
            match Pin::new(&mut *stream).poll_read(cx, &mut probe) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(Closed::ByPeer)),
                Poll::Ready(Ok(_)) => return Poll::Ready(Err(Closed::UnexpectedBytes)),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Closed::Io(e))),
                Poll::Pending => {}
            }
            link.writer_waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
        if let Err(closed) = ready {
            return closed;
        }
        debug_assert!(batch.is_empty());
        std::mem::swap(&mut *link.queue.borrow_mut(), batch);
        let frames = link.queue_frames.replace(0);
        debug_assert!(frames > 0);
        let result = stream.write_all(batch).await;
        let bytes = batch.len() as u64;
        batch.clear();
        if let Err(e) = result {
            shared.bump(peer, |s| s.drops_disconnect += frames);
            return Closed::Io(e);
        }
        shared.bump(peer, |s| {
            s.frames_sent += frames;
            s.bytes_sent += bytes;
            s.writes += 1;
        });
    }
}
