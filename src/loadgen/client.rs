//! The load generator's RESP client pieces: request generation (keys, values, ops) and a
//! reply reader over any async byte stream. Replies are checked with `resp::skip`, so
//! reading allocates nothing per reply.
use super::workload::{KeyChooser, Op, OpChooser, ValueSizer, Workload, key_name};
use crate::wire::resp::{self, Limits, ReplyKind, RespError};
use futures_lite::{AsyncRead, AsyncReadExt};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Instant;

/// Read buffer size to start with, in bytes.
pub const READ_BUF_BYTES_INITIAL: usize = 64 * 1024;
/// Largest the read buffer may grow to (one reply must fit), in bytes.
pub const READ_BUF_BYTES_MAX: usize = 256 * 1024 * 1024;

/// A request on the wire, awaiting its reply (replies come back in order).
#[derive(Debug, Clone, Copy)]
pub struct InFlight {
    /// The operation it belongs to.
    pub op: Op,
    /// For the GET half of a read-modify-write: the key to SET once it returns.
    pub rmw_key: Option<u64>,
    /// When it was due (open loop) or sent (closed loop): latency counts from here.
    pub start: Instant,
    /// When it was handed to the connection's write (open loop: `start` plus the load
    /// generator's own lateness; closed loop: `start`).
    pub sent: Instant,
}

/// Generates requests for one connection, from its own seeded stream.
#[derive(Debug)]
pub struct RequestGen {
    rng: ChaCha8Rng,
    keys: KeyChooser,
    ops: OpChooser,
    sizer: ValueSizer,
    value: Arc<Vec<u8>>,
    key: Vec<u8>,
    mget_keys: usize,
}

/// Bytes of filler every SET takes its value from (a prefix of it).
pub fn value_bytes(w: &Workload) -> Arc<Vec<u8>> {
    let n = ValueSizer::new(&w.value).max();
    let mut rng = ChaCha8Rng::seed_from_u64(w.seed ^ 0x5EED);
    use rand::Rng;
    Arc::new(
        (0..n)
            .map(|_| b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
            .collect(),
    )
}

impl RequestGen {
    /// A generator for connection number `conn` of a run.
    pub fn new(w: &Workload, conn: usize, keys: KeyChooser, value: Arc<Vec<u8>>) -> RequestGen {
        RequestGen {
            rng: ChaCha8Rng::seed_from_u64(w.seed.wrapping_add((conn as u64 + 1) * 0x9E37_79B9)),
            keys,
            ops: OpChooser::new(&w.mix),
            sizer: ValueSizer::new(&w.value),
            value,
            key: Vec::with_capacity(32),
            mget_keys: w.mix.mget_keys,
        }
    }

    /// Appends the next request to `out`; returns what to expect back.
    pub fn next(&mut self, out: &mut Vec<u8>, start: Instant) -> InFlight {
        let op = self.ops.next(&mut self.rng);
        let mut rmw_key = None;
        match op {
            Op::Get => {
                let k = self.keys.read_key(&mut self.rng);
                key_name(k, &mut self.key);
                resp::encode_command(out, &[&b"GET"[..], &self.key]);
            }
            Op::Set => {
                let k = self.keys.write_key(&mut self.rng);
                self.encode_set(out, k);
            }
            Op::Del => {
                let k = self.keys.write_key(&mut self.rng);
                key_name(k, &mut self.key);
                resp::encode_command(out, &[&b"DEL"[..], &self.key]);
            }
            Op::Mget => {
                resp::encode_array_header(out, Some(self.mget_keys + 1));
                resp::encode_bulk(out, Some(b"MGET"));
                for _ in 0..self.mget_keys {
                    let k = self.keys.read_key(&mut self.rng);
                    key_name(k, &mut self.key);
                    resp::encode_bulk(out, Some(&self.key));
                }
            }
            Op::Rmw => {
                let k = self.keys.read_key(&mut self.rng);
                key_name(k, &mut self.key);
                resp::encode_command(out, &[&b"GET"[..], &self.key]);
                rmw_key = Some(k);
            }
        }
        InFlight {
            op,
            rmw_key,
            start,
            sent: start,
        }
    }

    /// Appends `SET key:<k> <value>` to `out`.
    pub fn encode_set(&mut self, out: &mut Vec<u8>, k: u64) {
        key_name(k, &mut self.key);
        let n = self.sizer.next(&mut self.rng);
        resp::encode_command(out, &[&b"SET"[..], &self.key, &self.value[..n]]);
    }
}

/// Why a connection stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// Reading or writing failed, or the server closed the connection.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent bytes that are not RESP.
    #[error("protocol: {0}")]
    Protocol(#[from] RespError),
    /// A reply did not arrive in time.
    #[error("timeout")]
    Timeout,
}

impl ConnError {
    /// The error kind as counted in reports.
    pub fn kind(&self) -> &'static str {
        match self {
            ConnError::Io(_) => "connection",
            ConnError::Protocol(_) => "protocol",
            ConnError::Timeout => "timeout",
        }
    }
}

/// A growable read buffer that yields whole replies.
#[derive(Debug)]
pub struct ReplyReader {
    buf: Vec<u8>,
    lo: usize,
    hi: usize,
    limits: Limits,
    filled_at: Instant,
}

impl Default for ReplyReader {
    fn default() -> Self {
        ReplyReader {
            buf: vec![0; READ_BUF_BYTES_INITIAL],
            lo: 0,
            hi: 0,
            limits: Limits {
                bulk_bytes_max: READ_BUF_BYTES_MAX / 2,
                ..Limits::default()
            },
            filled_at: Instant::now(),
        }
    }
}

/// A reply as seen by the driver: success, or an error reply's first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Any non-error reply.
    Ok,
    /// An error reply; its first word (`ERR`, `WRONGTYPE`, ...).
    Err(&'a str),
}

impl ReplyReader {
    /// When the last read returned: the arrival time of every reply it brought (one
    /// clock read per read, not per reply).
    pub fn filled_at(&self) -> Instant {
        self.filled_at
    }

    /// The next reply already buffered, if any.
    pub fn next_buffered(&mut self) -> Result<Option<Reply<'_>>, ConnError> {
        match resp::skip(&self.buf[self.lo..self.hi], &self.limits)? {
            None => Ok(None),
            Some((kind, n)) => {
                let at = self.lo;
                self.lo += n;
                Ok(Some(match kind {
                    ReplyKind::Error { start, end } => Reply::Err(
                        std::str::from_utf8(&self.buf[at + start..at + end]).unwrap_or("ERR"),
                    ),
                    _ => Reply::Ok,
                }))
            }
        }
    }

    /// Reads more bytes from `s` (at least one, or an error).
    pub async fn fill<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> Result<(), ConnError> {
        if self.lo == self.hi {
            self.lo = 0;
            self.hi = 0;
        } else if self.hi == self.buf.len() && self.lo > 0 {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        if self.hi == self.buf.len() {
            if self.buf.len() >= READ_BUF_BYTES_MAX {
                return Err(ConnError::Protocol(RespError::LineTooLong(
                    READ_BUF_BYTES_MAX,
                )));
            }
            self.buf
                .resize((self.buf.len() * 2).min(READ_BUF_BYTES_MAX), 0);
        }
        match s.read(&mut self.buf[self.hi..]).await {
            Ok(0) => Err(ConnError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ))),
            Ok(n) => {
                self.hi += n;
                self.filled_at = Instant::now();
                Ok(())
            }
            Err(e) if is_timeout(&e) => Err(ConnError::Timeout),
            Err(e) => Err(ConnError::Io(e)),
        }
    }
}

/// Whether an I/O error is a read timeout.
pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) || e.to_string().contains("timed out")
}
