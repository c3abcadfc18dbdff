//! What bounds a node's client connections: how many may be open
//! ([`ClientSlot`], `maxclients`), how much input they may hold together
//! ([`InputShare`], `client_input_bytes_max`), and what an idle one keeps ([`read_some`]:
//! no read buffer of its own, and its reply buffer released while it waits).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use futures_lite::AsyncRead;
use glommio::net::TcpStream;

use crate::wire::command::CommandDecoder;

/// Bytes read from a client per read call.
pub(super) const READ_BYTES: usize = 64 << 10;
/// A waiting connection keeps a reply buffer of at most this capacity.
pub(super) const IDLE_OUT_KEEP_BYTES: usize = 4 << 10;
/// A waiting connection keeps room for at most this many pipelined commands.
pub(super) const IDLE_PENDING_KEEP: usize = 64;

/// Client connections open in this process (one node per process), over all shards.
static CLIENTS_OPEN: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The shard's read buffer, shared by its connections: a read fills it and its bytes
    /// go to the connection's decoder before anything else runs on this executor, so no
    /// connection holds a read buffer while it waits.
    static READ_SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BYTES]);
    /// Bytes the decoders of this shard's connections hold (see [`InputShare`]).
    static INPUT_HELD: Cell<usize> = const { Cell::new(0) };
}

/// One of the node's `maxclients` places, given back when dropped.
pub(super) struct ClientSlot(());

impl ClientSlot {
    /// A place, or `None` when `maxclients` connections are open.
    pub(super) fn take(maxclients: usize) -> Option<ClientSlot> {
        let before = CLIENTS_OPEN.fetch_add(1, Ordering::Relaxed);
        if before >= maxclients {
            CLIENTS_OPEN.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(ClientSlot(()))
    }

    /// Connections open in this process.
    pub(super) fn open() -> usize {
        CLIENTS_OPEN.load(Ordering::Relaxed)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        CLIENTS_OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one connection's decoder holds, counted in its shard's total; the connection's
/// share is taken out of the total when it is dropped.
pub(super) struct InputShare {
    held: usize,
    /// This shard's part of `client_input_bytes_max`.
    limit: usize,
}

impl InputShare {
    pub(super) fn new(limit: usize) -> InputShare {
        InputShare { held: 0, limit }
    }

    /// Counts what `decoder` holds now, after a read. An error (to answer before closing)
    /// if this connection's input grew and the shard's connections together now hold more
    /// than the limit.
    pub(super) fn grown(&mut self, decoder: &CommandDecoder) -> Result<(), String> {
        let before = self.held;
        let total = self.set(decoder.held_bytes());
        if total > self.limit && self.held > before {
            return Err(format!(
                "ERR client input buffers of this shard hold {total} bytes, over its share of \
                 client_input_bytes_max ({} bytes): closing this connection, which holds {}",
                self.limit, self.held
            ));
        }
        Ok(())
    }

    /// Counts what `decoder` holds now, after commands were taken out of it.
    pub(super) fn taken(&mut self, decoder: &CommandDecoder) {
        self.set(decoder.held_bytes());
    }

    /// Sets this connection's count; returns the shard's total.
    fn set(&mut self, held: usize) -> usize {
        let total = INPUT_HELD.get() - self.held + held;
        INPUT_HELD.set(total);
        self.held = held;
        total
    }
}

impl Drop for InputShare {
    fn drop(&mut self) {
        INPUT_HELD.set(INPUT_HELD.get() - self.held);
    }
}

/// Reads what the client sent into `decoder`, through the shard's shared buffer. If the
/// client has sent nothing yet, `on_idle` runs once before waiting (to release buffers).
/// `Ok(0)` at end of stream.
pub(super) async fn read_some(
    stream: &mut TcpStream,
    decoder: &mut CommandDecoder,
    mut on_idle: impl FnMut(),
) -> io::Result<usize> {
    let mut idle = false;
    poll_fn(|cx| {
        // glommio reads a socket with a non-blocking recv into the buffer, or else waits
        // for readiness without it, so the buffer is used only inside this borrow.
        let ready =
            READ_SCRATCH.with_borrow_mut(|buf| match Pin::new(&mut *stream).poll_read(cx, buf) {
                Poll::Ready(Ok(n)) => {
                    decoder.feed(&buf[..n]);
                    Poll::Ready(Ok(n))
                }
                other => other,
            });
        if ready.is_pending() && !idle {
            idle = true;
            decoder.release_idle();
            on_idle();
        }
        ready
    })
    .await
}
