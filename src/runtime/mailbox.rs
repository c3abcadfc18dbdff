//! A connection's mailbox for what the log delivers to it (published messages, key
//! changes): any shard of the node may put into it, without waiting and without a lock on
//! its path; the connection takes from it and writes to its client.
//!
//! It is bounded in bytes: what was put and not yet written to the socket. A subscriber
//! that falls that far behind is cut off (the mailbox refuses everything from then on and
//! the connection closes), as Redis's `client-output-buffer-limit pubsub` does, so a slow
//! reader never holds back the shard that applies the log.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_channel::{mpsc, oneshot};

use crate::protocol::watch::Change;

/// Bytes a subscriber may have waiting (put, not yet written to its socket), at most:
/// Redis's hard `client-output-buffer-limit` for pub/sub clients.
pub const MAILBOX_BYTES_MAX: usize = 32 << 20;

/// What a connection is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Push {
    /// A message of a channel the connection subscribed to.
    Message {
        /// The channel.
        channel: Bytes,
        /// The message.
        message: Bytes,
    },
    /// A message of a channel matching a pattern the connection subscribed to.
    PMessage {
        /// The pattern.
        pattern: Bytes,
        /// The channel.
        channel: Bytes,
        /// The message.
        message: Bytes,
    },
    /// A watched key changed.
    Change(Change),
    /// A watch lost changes (this replica installed a snapshot): it ends here.
    Lost(String),
}

impl Push {
    /// Bytes it takes, roughly, once encoded.
    pub fn size_bytes(&self) -> usize {
        const OVERHEAD_BYTES: usize = 48;
        OVERHEAD_BYTES
            + match self {
                Push::Message { channel, message } => channel.len() + message.len(),
                Push::PMessage {
                    pattern,
                    channel,
                    message,
                } => pattern.len() + channel.len() + message.len(),
                Push::Change(c) => c.key.len(),
                Push::Lost(why) => why.len(),
            }
    }
}

struct Shared {
    queued_bytes: AtomicUsize,
    bytes_max: usize,
    overflowed: AtomicBool,
    /// Fired once, on overflow: the connection stops whatever it waits for and closes.
    on_overflow: Mutex<Option<oneshot::Sender<()>>>,
}

/// The sending side: cheap to clone, sent to any shard.
#[derive(Clone)]
pub struct Mailbox {
    tx: mpsc::UnboundedSender<Push>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field(
                "queued_bytes",
                &self.shared.queued_bytes.load(Ordering::Relaxed),
            )
            .finish()
    }
}

/// The connection's side.
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Push>,
    shared: Arc<Shared>,
    overflow: oneshot::Receiver<()>,
}

/// A mailbox holding at most `bytes_max` bytes not yet written.
pub fn mailbox(bytes_max: usize) -> (Mailbox, Inbox) {
    let (tx, rx) = mpsc::unbounded();
    let (fire, overflow) = oneshot::channel();
    let shared = Arc::new(Shared {
        queued_bytes: AtomicUsize::new(0),
        bytes_max,
        overflowed: AtomicBool::new(false),
        on_overflow: Mutex::new(Some(fire)),
    });
    (
        Mailbox {
            tx,
            shared: shared.clone(),
        },
        Inbox {
            rx,
            shared,
            overflow,
        },
    )
}

impl Mailbox {
    /// Puts `push` in; false if the connection is gone or was cut off (now or before): the
    /// sender should forget this mailbox.
    pub fn put(&self, push: Push) -> bool {
        let s = &self.shared;
        if s.overflowed.load(Ordering::Relaxed) || self.tx.is_closed() {
            return false;
        }
        let size = push.size_bytes();
        let before = s.queued_bytes.fetch_add(size, Ordering::Relaxed);
        if before + size > s.bytes_max {
            self.cut_off();
            return false;
        }
        self.tx.unbounded_send(push).is_ok()
    }

    /// Cuts the connection off: it takes nothing more and closes (it fell too far behind,
    /// or missed messages it can no longer get).
    pub fn cut_off(&self) {
        let s = &self.shared;
        s.overflowed.store(true, Ordering::Relaxed);
        self.tx.close_channel();
        if let Some(fire) = s.on_overflow.lock().ok().and_then(|mut f| f.take()) {
            let _ = fire.send(());
        }
    }

    /// Whether two handles name one mailbox.
    pub fn same(&self, other: &Mailbox) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Inbox {
    /// The next push, waiting for one; `None` once cut off or every sender is gone.
    pub async fn next(&mut self) -> Option<Push> {
        use futures_lite::StreamExt;
        if self.overflowed() {
            return None;
        }
        self.rx.next().await
    }

    /// The next push if one is waiting.
    pub fn try_next(&mut self) -> Option<Push> {
        if self.overflowed() {
            return None;
        }
        self.rx.try_recv().ok()
    }

    /// The client has been sent `bytes` of what was put (as [`Push::size_bytes`] counts).
    pub fn written(&self, bytes: usize) {
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Whether the connection fell too far behind and was cut off.
    pub fn overflowed(&self) -> bool {
        self.shared.overflowed.load(Ordering::Relaxed)
    }

    /// Ready once the connection is cut off (never otherwise).
    pub async fn cut_off(&mut self) {
        if (&mut self.overflow).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: usize) -> Push {
        Push::Message {
            channel: Bytes::from_static(b"c"),
            message: Bytes::from(vec![b'x'; n]),
        }
    }

    #[test]
    fn delivers_in_order_and_counts_what_was_written() {
        let (mb, mut inbox) = mailbox(1 << 20);
        assert!(mb.put(msg(1)));
        assert!(mb.put(msg(2)));
        assert_eq!(inbox.try_next(), Some(msg(1)));
        assert_eq!(inbox.try_next(), Some(msg(2)));
        assert_eq!(inbox.try_next(), None);
        inbox.written(msg(1).size_bytes() + msg(2).size_bytes());
        assert_eq!(mb.shared.queued_bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_reader_that_falls_behind_by_more_than_the_bound_is_cut_off() {
        let one = msg(100).size_bytes();
        let (mb, mut inbox) = mailbox(3 * one);
        for _ in 0..3 {
            assert!(mb.put(msg(100)));
        }
        // Taken from the mailbox but not yet written to the socket still counts.
        assert!(inbox.try_next().is_some());
        assert!(!mb.put(msg(100)), "a fourth is past the bound");
        assert!(inbox.overflowed());
        assert_eq!(inbox.try_next(), None, "nothing more once cut off");
        assert!(!mb.put(msg(1)), "and nothing is taken after");
        futures_lite::future::block_on(inbox.cut_off());
    }

    #[test]
    fn writing_makes_room_again() {
        let one = msg(10).size_bytes();
        let (mb, mut inbox) = mailbox(2 * one);
        for _ in 0..10 {
            assert!(mb.put(msg(10)));
            assert!(inbox.try_next().is_some());
            inbox.written(one);
        }
        assert!(!inbox.overflowed());
    }

    #[test]
    fn a_closed_connection_refuses_pushes() {
        let (mb, inbox) = mailbox(1 << 20);
        drop(inbox);
        assert!(!mb.put(msg(1)));
    }
}
