//! Writing a socket with sends queued on the executor's ring.
//!
//! A send syscall per connection costs the node twice over on a shared machine: the
//! syscall, and the reader it wakes (a client, a follower on the same core), which preempts
//! the node on the way back from that syscall. Before the next connection's reply goes,
//! the node has given its core away and back. Queued on glommio's ring instead, a pass's
//! sends (every client's replies, both accepts of a slot) reach the kernel in one
//! `io_uring_enter`, and the readers they wake run after all of them have gone.

use std::future::poll_fn;
use std::io;
use std::time::Duration;

use glommio::net::{QueuedSend, TcpStream};

/// One socket's queued sends, at most one in flight (a second could overtake the first
/// while that one waits for room in the socket).
pub(crate) struct QueuedWriter {
    in_flight: Option<QueuedSend>,
    /// The buffer of the last completed send, handed out by the next `send` so two buffers
    /// take turns; one larger than `spare_bytes_max` is freed instead.
    spare: Vec<u8>,
    spare_bytes_max: usize,
    /// How long a send may wait for room in the socket, once waited for, before the
    /// writer gives up on it (`TimedOut`); `None`: no limit.
    stall_max: Option<Duration>,
}

impl QueuedWriter {
    pub(crate) fn new(spare_bytes_max: usize, stall_max: Option<Duration>) -> QueuedWriter {
        QueuedWriter {
            in_flight: None,
            spare: Vec::new(),
            spare_bytes_max,
            stall_max,
        }
    }

    /// Queues `out`'s bytes after everything queued before, leaving `out` empty. It waits
    /// only for the send before (usually done: it went with the last pass), and returns
    /// that send's error if it failed.
    pub(crate) async fn send(&mut self, stream: &TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
        self.flush(stream).await?;
        if out.is_empty() {
            return Ok(());
        }
        let buf = std::mem::replace(out, std::mem::take(&mut self.spare));
        self.in_flight = Some(stream.send_queued(buf, 0));
        Ok(())
    }

    /// Waits until everything queued has been sent.
    pub(crate) async fn flush(&mut self, stream: &TcpStream) -> io::Result<()> {
        while let Some(send) = self.in_flight.as_ref() {
            let sent = poll_fn(|cx| send.poll_sent(cx));
            let sent = match self.stall_max {
                None => sent.await,
                // The timer is made only if the send has not completed when first asked:
                // the rare case, a reader that does not keep up. Given up, the send is
                // cancelled when the writer is dropped.
                Some(stall) => {
                    let stalled = async {
                        glommio::timer::sleep(stall).await;
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("a send made no progress for {} ms", stall.as_millis()),
                        ))
                    };
                    futures_lite::future::or(sent, stalled).await
                }
            };
            let send = self.in_flight.take().expect("a send is in flight");
            let (mut buf, start) = match send.into_buffer() {
                Ok(done) => done,
                Err(send) => {
                    // Given up on (the stall): it stays in flight until the writer goes.
                    self.in_flight = Some(send);
                    return Err(sent.err().unwrap_or_else(|| {
                        io::Error::other("a queued send reported a result before completing")
                    }));
                }
            };
            let end = start + sent?;
            if end < buf.len() {
                // MSG_WAITALL retries partial sends in the kernel: a short one means the
                // socket can take no more (shut down for writing). Send the rest: that
                // reports why.
                if end == start {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                self.in_flight = Some(stream.send_queued(buf, end));
                continue;
            }
            buf.clear();
            if buf.capacity() <= self.spare_bytes_max {
                self.spare = buf;
            }
        }
        Ok(())
    }

    /// Frees the spare buffer (an idle connection's memory).
    pub(crate) fn release_spare(&mut self) {
        self.spare = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;
    use std::time::Duration;

    use super::QueuedWriter;

    /// These executors do no file IO: the least io_memory glommio takes.
    const TEST_IO_MEMORY_BYTES: usize = 512 << 10;

    fn executor() -> glommio::LocalExecutor {
        glommio::LocalExecutorBuilder::default()
            .io_memory(TEST_IO_MEMORY_BYTES)
            .make()
            .expect("executor")
    }

    /// Bytes that show a reordering or a gap: position `i` holds `(start + i) % 251`.
    fn pattern(start: usize, len: usize) -> Vec<u8> {
        (start..start + len).map(|i| (i % 251) as u8).collect()
    }

    /// Sends larger than the socket takes at once, and small ones after them, reach a
    /// reader that starts late whole and in order: each waits for the one before.
    #[test]
    fn sends_arrive_whole_and_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            std::thread::sleep(Duration::from_millis(200)); // the socket fills meanwhile
            let mut all = Vec::new();
            s.read_to_end(&mut all).expect("read");
            all
        });
        let sizes = [10, 12 << 20, 1, 300 << 10, 7, 9 << 20, 64];
        let total: usize = sizes.iter().sum();
        executor().run(async move {
            let stream = glommio::net::TcpStream::connect(addr)
                .await
                .expect("connect");
            let mut writer = QueuedWriter::new(1 << 20, None);
            let mut at = 0;
            for len in sizes {
                let mut out = pattern(at, len);
                writer.send(&stream, &mut out).await.expect("send");
                assert!(out.is_empty(), "the bytes were taken");
                at += len;
            }
            writer.flush(&stream).await.expect("flush");
        });
        let got = reader.join().expect("reader");
        assert_eq!(got.len(), total);
        assert!(got == pattern(0, total), "bytes reordered or lost");
    }

    /// A reader that stops reading does not hold the writer forever: waiting for a send
    /// that cannot go ends after `stall_max` with `TimedOut`.
    #[test]
    fn a_send_nobody_reads_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let (s, _) = listener.accept().expect("accept");
            let _ = done_rx.recv(); // holds the connection open, unread
            drop(s);
        });
        let stall = Duration::from_millis(100);
        let err = executor().run(async move {
            let stream = glommio::net::TcpStream::connect(addr)
                .await
                .expect("connect");
            let mut writer = QueuedWriter::new(1 << 20, Some(stall));
            // More than any loopback socket pair buffers.
            let mut out = vec![7u8; 64 << 20];
            writer.send(&stream, &mut out).await.expect("queued");
            writer.flush(&stream).await.expect_err("nothing reads it")
        });
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        done_tx.send(()).expect("peer waits");
        peer.join().expect("peer");
    }
}
