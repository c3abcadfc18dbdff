// corepax patch: sends queued on the ring instead of sent with a syscall each.

use crate::sys::{Source, SourceType};
use std::{
    io,
    os::unix::io::RawFd,
    task::{Context, Poll},
};

/// A send queued on the executor's main ring: it reaches the kernel with the ring's next
/// submission, in one `io_uring_enter` with every other send and I/O queued in the same
/// pass. One syscall then carries all of a pass's sends, and a thread woken by one of them
/// cannot preempt the sender before the others have gone (the kernel reschedules on the way
/// back to user space).
///
/// Sends queued on one socket may complete out of order if one has to wait for room in the
/// socket: keep at most one in flight per socket. Dropping a `QueuedSend` cancels it if it
/// has not completed; its buffer lives until the kernel is done with it.
#[derive(Debug)]
pub struct QueuedSend {
    source: Source,
}

impl QueuedSend {
    pub(crate) fn new(fd: RawFd, buf: Vec<u8>, start: usize) -> QueuedSend {
        let source = crate::executor().reactor().queued_send(fd, buf, start);
        QueuedSend { source }
    }

    /// The bytes the send took (all of `buf[start..]` unless it failed or the socket was
    /// shut down for writing), once it has completed.
    pub fn poll_sent(&self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match self.source.result() {
            Some(result) => Poll::Ready(result),
            None => {
                self.source.add_waiter_single(cx.waker());
                Poll::Pending
            }
        }
    }

    /// The buffer and start the send was made with, once it has completed (until then the
    /// kernel may still read the buffer: the send is handed back).
    pub fn into_buffer(self) -> Result<(Vec<u8>, usize), QueuedSend> {
        if self.source.result().is_none() {
            return Err(self);
        }
        match self.source.extract_source_type() {
            SourceType::SockSendVec(buf, start) => Ok((buf, start)),
            _ => unreachable!("a queued send's source holds its buffer"),
        }
    }
}
