//! Incremental decoding of client commands (RESP arrays of bulk strings, and inline
//! commands), for the node's front end.
//!
//! [`resp::decode`] starts over from the first byte of a frame on every call, so a large
//! command arriving in many reads was parsed, and its complete arguments re-examined, once
//! per read: quadratic in the command's size (a 64 MiB command took 16 s, and stalled the
//! executor's other connections as long). [`CommandDecoder`] keeps its place instead: it
//! owns the unparsed bytes, takes each complete header and argument out of them as soon
//! as it is whole, and while it waits for a bulk payload it knows how many bytes it needs
//! and looks at nothing until they are there. Every byte is examined a bounded number of
//! times however the frame is split ([`CommandDecoder::examined_bytes`] counts them).
//!
//! It also bounds a command's total size, which no per-argument limit does: a command
//! over `command_bytes_max` is read to its end without being kept (its payloads are
//! dropped as they arrive) and reported as [`Decoded::TooLarge`], so the connection goes
//! on with the next command. Errors that lose the framing (a bad length, a payload not
//! followed by CRLF, a bulk or array over its own limit) end the connection: what follows
//! cannot be told apart from data.

use bytes::{Buf, Bytes, BytesMut};

use super::resp::{self, Limits, RespError, Value};
use crate::limits::{COMMAND_OVERHEAD_BYTES, ITEM_OVERHEAD_BYTES};

/// What [`CommandDecoder::next_command`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole command's arguments, its name first: an array's bulk strings (simple
    /// strings and integers as their text), or an inline command's words. The vector
    /// comes from the decoder's spares; give it back with [`CommandDecoder::recycle`].
    Command(Vec<Bytes>),
    /// A top-level array that is no command (null, empty, or with a null element): the
    /// error to answer. The connection goes on.
    NotACommand(&'static str),
    /// A command larger than the limit, read and dropped.
    TooLarge {
        /// Its size, counted like `Command::encoded_bytes_max` (arguments after the name).
        bytes: usize,
        /// The limit.
        bytes_max: usize,
    },
}

/// The command names clients send most, as they send them (upper and lower case): a
/// command whose first argument is one of these exactly gets it as a static `Bytes`, not
/// a copy, which saves an allocation and a free per command (the same bytes either way).
static KNOWN_NAMES: [&[u8]; 16] = [
    b"GET", b"get", b"SET", b"set", b"DEL", b"del", b"MGET", b"mget", b"MSET", b"mset", b"INCR",
    b"incr", b"PING", b"ping", b"EXISTS", b"exists",
];

/// `name` as one of [`KNOWN_NAMES`], if it is one exactly.
fn known_name(name: &[u8]) -> Option<&'static [u8]> {
    KNOWN_NAMES.iter().copied().find(|k| *k == name)
}

/// Where the decoder is inside the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Start,
    /// Inside an array, `left` elements to come.
    Elements { left: usize },
    /// A bulk payload of `len` bytes and its CRLF to come, then `left - 1` elements.
    Payload { len: usize, left: usize },
    /// Dropping `len` more payload bytes of a command over the limit.
    Discard { len: usize, left: usize },
    /// The CRLF after a dropped payload.
    DiscardEnd { left: usize },
}

/// Decodes a stream of client commands; see the module documentation.
#[derive(Debug)]
pub struct CommandDecoder {
    limits: Limits,
    command_bytes_max: usize,
    /// Bytes received and not yet taken into a command.
    buf: BytesMut,
    state: State,
    /// Arguments of the current array so far (dropped once it is over the limit).
    items: Vec<Bytes>,
    /// The current array had a null element: it is no command.
    null_item: bool,
    /// Emptied argument vectors given back (`recycle`), for the next commands: a
    /// pipeline's commands allocate none once the connection is warm.
    spare: Vec<Vec<Bytes>>,
    /// Size of the current command so far, counted like `Command::encoded_bytes_max`.
    command_bytes: usize,
    /// Whether the current array's first element (the command's name, not counted) is done.
    named: bool,
    /// Bytes at the front of `buf` already searched for a line end, without finding one.
    line_scanned: usize,
    /// Bytes looked at so far, for tests of the decoder's cost.
    examined: u64,
    /// `buf` held more than [`DECODER_BUF_KEEP_BYTES`] since it was last released, so its
    /// allocation may be that large: [`CommandDecoder::release_idle`] frees it.
    grown: bool,
}

/// The error for a null or empty array sent as a command.
const NOT_A_COMMAND_EMPTY: &str =
    "ERR Protocol error: a command is a non-empty array of bulk strings";
/// The error for an array with a null element sent as a command.
const NOT_A_COMMAND_NULL: &str = "ERR Protocol error: a command is an array of bulk strings";

/// Spare argument vectors a decoder keeps at most (a usual pipeline's worth), and the
/// largest it keeps: one that held a long command goes back to the allocator. Together
/// at most ~4.5 KiB a connection keeps while idle (a GET's or SET's vector ~120 bytes).
const SPARE_MAX: usize = 16;
const SPARE_CAPACITY_MAX: usize = 8;

/// An idle decoder keeps a buffer of about this size at most (one that held more is
/// released when it empties), so an idle connection costs a few KiB, not its largest
/// command.
pub const DECODER_BUF_KEEP_BYTES: usize = 4 << 10;

impl CommandDecoder {
    /// A decoder with these per-frame limits and this bound on a command's size.
    pub fn new(limits: Limits, command_bytes_max: usize) -> CommandDecoder {
        CommandDecoder {
            limits,
            command_bytes_max,
            buf: BytesMut::new(),
            state: State::Start,
            items: Vec::new(),
            null_item: false,
            spare: Vec::new(),
            command_bytes: 0,
            named: false,
            line_scanned: 0,
            examined: 0,
            grown: false,
        }
    }

    /// Takes back the vector of a [`Decoded::Command`] once its arguments were used, for
    /// the next command's.
    pub fn recycle(&mut self, mut args: Vec<Bytes>) {
        if self.spare.len() < SPARE_MAX && args.capacity() <= SPARE_CAPACITY_MAX {
            args.clear();
            self.spare.push(args);
        }
    }

    /// Appends bytes read from the connection.
    pub fn feed(&mut self, data: &[u8]) {
        self.grown |= self.buf.len() + data.len() > DECODER_BUF_KEEP_BYTES;
        self.buf.extend_from_slice(data);
    }

    /// Bytes received and not yet taken into a command.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes this decoder holds for the client: received and not yet taken, plus the
    /// arguments of the command in progress (counted like its size).
    pub fn held_bytes(&self) -> usize {
        if self.items.is_empty() {
            return self.buf.len();
        }
        // The size counts a bulk from its header on; its bytes so far are in `buf`.
        let announced = match self.state {
            State::Payload { len, .. } => len,
            _ => 0,
        };
        self.buf.len() + self.command_bytes.saturating_sub(announced)
    }

    /// Frees the buffer if it is empty and may have grown large: for a connection about to
    /// wait for its client.
    pub fn release_idle(&mut self) {
        if self.grown && self.buf.is_empty() {
            self.buf = BytesMut::new();
            self.grown = false;
        }
    }

    /// Bytes the decoder has looked at (searched, checked or copied) since it was made.
    pub fn examined_bytes(&self) -> u64 {
        self.examined
    }

    /// The next whole command, `Ok(None)` if more bytes are needed. An error loses the
    /// framing: the connection should answer it and close.
    pub fn next_command(&mut self) -> Result<Option<Decoded>, RespError> {
        loop {
            match self.state {
                State::Start => {
                    let Some(&first) = self.buf.first() else {
                        return Ok(None);
                    };
                    if first != b'*' {
                        if resp::is_type_byte(first) {
                            return Err(RespError::NotACommand);
                        }
                        match self.inline()? {
                            Some(Some(v)) => return Ok(Some(v)),
                            Some(None) => continue,
                            None => return Ok(None),
                        }
                    }
                    let Some(len) = self.line_end()? else {
                        return Ok(None);
                    };
                    let n = resp::parse_int(&self.buf[1..len], "array")?;
                    self.buf.advance(len + 2);
                    if n == -1 || n == 0 {
                        return Ok(Some(Decoded::NotACommand(NOT_A_COMMAND_EMPTY)));
                    }
                    if n < -1 {
                        return Err(RespError::NegativeLength(n, "array"));
                    }
                    if n as u64 > self.limits.array_len_max as u64 {
                        return Err(RespError::ArrayTooLong {
                            len: n,
                            max: self.limits.array_len_max,
                        });
                    }
                    self.items = self.spare.pop().unwrap_or_default();
                    self.items.reserve((n as usize).min(1024));
                    self.null_item = false;
                    self.command_bytes = COMMAND_OVERHEAD_BYTES;
                    self.named = false;
                    self.state = State::Elements { left: n as usize };
                }
                State::Elements { left: 0 } => {
                    self.state = State::Start;
                    let items = std::mem::take(&mut self.items);
                    if self.command_bytes > self.command_bytes_max {
                        return Ok(Some(Decoded::TooLarge {
                            bytes: self.command_bytes,
                            bytes_max: self.command_bytes_max,
                        }));
                    }
                    if self.null_item {
                        self.recycle(items);
                        return Ok(Some(Decoded::NotACommand(NOT_A_COMMAND_NULL)));
                    }
                    return Ok(Some(Decoded::Command(items)));
                }
                State::Elements { left } => {
                    if !self.element(left)? {
                        return Ok(None);
                    }
                }
                State::Payload { len, left } => {
                    // Nothing is looked at until the whole payload is here.
                    if self.buf.len() < len + 2 {
                        return Ok(None);
                    }
                    self.examined += len as u64 + 2;
                    if &self.buf[len..len + 2] != b"\r\n" {
                        return Err(RespError::BulkNotTerminated);
                    }
                    let bytes = &self.buf[..len];
                    let payload = match self.items.is_empty().then(|| known_name(bytes)) {
                        Some(Some(name)) => Bytes::from_static(name),
                        _ => Bytes::copy_from_slice(bytes),
                    };
                    self.items.push(payload);
                    self.buf.advance(len + 2);
                    self.state = State::Elements { left: left - 1 };
                }
                State::Discard { len, left } => {
                    let n = len.min(self.buf.len());
                    self.buf.advance(n);
                    self.examined += n as u64;
                    if n < len {
                        self.state = State::Discard { len: len - n, left };
                        return Ok(None);
                    }
                    self.state = State::DiscardEnd { left };
                }
                State::DiscardEnd { left } => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    self.examined += 2;
                    if &self.buf[..2] != b"\r\n" {
                        return Err(RespError::BulkNotTerminated);
                    }
                    self.buf.advance(2);
                    self.state = State::Elements { left: left - 1 };
                }
            }
        }
    }

    /// Takes the header of the next array element; false if more bytes are needed.
    fn element(&mut self, left: usize) -> Result<bool, RespError> {
        let Some(&t) = self.buf.first() else {
            return Ok(false);
        };
        match t {
            b'$' | b'+' | b':' => {}
            b'*' => return Err(RespError::TooDeep(self.limits.depth_max)),
            _ => return Err(RespError::NotACommand),
        }
        let Some(len) = self.line_end()? else {
            return Ok(false);
        };
        let line = &self.buf[1..len];
        // An element with no payload to come: `Some(None)` for a null bulk.
        let (item, payload) = match t {
            b'+' => (Some(Some(Bytes::copy_from_slice(line))), 0),
            b':' => {
                let n = resp::parse_int(line, "integer")?;
                (Some(Some(Bytes::from(n.to_string()))), 0)
            }
            _ => {
                let n = resp::parse_int(line, "bulk")?;
                if n < -1 {
                    return Err(RespError::NegativeLength(n, "bulk"));
                }
                if n > 0 && n as u64 > self.limits.bulk_bytes_max as u64 {
                    return Err(RespError::BulkTooLong {
                        len: n,
                        max: self.limits.bulk_bytes_max,
                    });
                }
                if n == -1 {
                    (Some(None), 0)
                } else {
                    (None, n as usize)
                }
            }
        };
        let size = match (t, &item) {
            (b':', _) => len - 1,
            (_, Some(Some(b))) => b.len(),
            _ => payload,
        };
        self.buf.advance(len + 2);
        if self.named {
            self.command_bytes = self
                .command_bytes
                .saturating_add(size + ITEM_OVERHEAD_BYTES);
        }
        self.named = true;
        let over = self.command_bytes > self.command_bytes_max;
        if over {
            // Nothing of it will be used: free what was kept.
            self.items = Vec::new();
        }
        match item {
            Some(v) => {
                match v {
                    Some(b) if !over => self.items.push(b),
                    Some(_) => {}
                    None => self.null_item = true,
                }
                self.state = State::Elements { left: left - 1 };
            }
            None if over => self.state = State::Discard { len: payload, left },
            None => self.state = State::Payload { len: payload, left },
        }
        Ok(true)
    }

    /// An inline command at the front: `Some(Some(command))`, `Some(None)` for an empty
    /// line (skipped, like redis-server does), `None` if its line end has not arrived.
    fn inline(&mut self) -> Result<Option<Option<Decoded>>, RespError> {
        let Some(nl) = self.newline()? else {
            return Ok(None);
        };
        let end = nl + 1;
        // decode_inline reads the whole line again.
        self.examined += end as u64;
        match resp::decode_inline(&self.buf[..end], &self.limits) {
            Ok(Some((v, used))) => {
                self.buf.advance(used);
                let Value::Array(Some(words)) = v else {
                    unreachable!("an inline command is an array of words")
                };
                let mut args = self.spare.pop().unwrap_or_default();
                args.extend(words.into_iter().map(|w| match w {
                    Value::Bulk(Some(b)) => b,
                    other => unreachable!("an inline word is a bulk string: {other:?}"),
                }));
                Ok(Some(Some(Decoded::Command(args))))
            }
            Err(RespError::EmptyInline) => {
                self.buf.advance(end);
                Ok(Some(None))
            }
            Ok(None) => unreachable!("the line end is in the slice"),
            Err(e) => Err(e),
        }
    }

    /// Position of the first `\n` in `buf`, or `None` if it has not arrived (an error once
    /// more than a line's limit is buffered without one). Resumes where the last call
    /// stopped, so each byte is searched once across calls.
    fn newline(&mut self) -> Result<Option<usize>, RespError> {
        let from = self.line_scanned;
        let Some(i) = memchr::memchr(b'\n', &self.buf[from..]) else {
            self.examined += (self.buf.len() - from) as u64;
            self.line_scanned = self.buf.len();
            if self.buf.len() > self.limits.inline_bytes_max {
                return Err(RespError::LineTooLong(self.limits.inline_bytes_max));
            }
            return Ok(None);
        };
        self.line_scanned = 0;
        self.examined += (i + 1) as u64;
        Ok(Some(from + i))
    }

    /// Length of the CRLF-terminated line at the front of `buf` (without the CRLF), or
    /// `None` if its end has not arrived. Searches each byte once across calls.
    fn line_end(&mut self) -> Result<Option<usize>, RespError> {
        let Some(nl) = self.newline()? else {
            return Ok(None);
        };
        // The line is checked for a stray CR below.
        self.examined += nl as u64;
        if nl == 0 || self.buf[nl - 1] != b'\r' {
            return Err(RespError::BadLineEnd);
        }
        let len = nl - 1;
        if len > self.limits.inline_bytes_max {
            return Err(RespError::LineTooLong(self.limits.inline_bytes_max));
        }
        if memchr::memchr(b'\r', &self.buf[..len]).is_some() {
            return Err(RespError::BadLineEnd);
        }
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::resp::encode_command;

    fn limits() -> Limits {
        Limits {
            bulk_bytes_max: 1 << 20,
            array_len_max: 1024,
            depth_max: 1,
            ..Limits::default()
        }
    }

    fn bulk(b: &[u8]) -> Bytes {
        Bytes::copy_from_slice(b)
    }

    /// Feeds `stream` in pieces of `piece` bytes, decoding after each; returns what came out.
    fn decode_in_pieces(d: &mut CommandDecoder, stream: &[u8], piece: usize) -> Vec<Decoded> {
        let mut out = Vec::new();
        for chunk in stream.chunks(piece) {
            d.feed(chunk);
            while let Some(x) = d.next_command().expect("valid stream") {
                out.push(x);
            }
        }
        out
    }

    #[test]
    fn a_known_command_name_is_not_copied_and_anything_else_is() {
        let mut d = CommandDecoder::new(limits(), 1 << 20);
        let mut stream = Vec::new();
        encode_command(&mut stream, &[&b"GET"[..], b"GET"]);
        encode_command(&mut stream, &[&b"GeT"[..], b"k"]);
        let out = decode_in_pieces(&mut d, &stream, 3);
        let args: Vec<&Bytes> = out
            .iter()
            .flat_map(|x| match x {
                Decoded::Command(args) => args.iter(),
                other => panic!("not a command: {other:?}"),
            })
            .collect();
        let names: Vec<&[u8]> = args.iter().map(|b| &b[..]).collect();
        assert_eq!(names, [&b"GET"[..], b"GET", b"GeT", b"k"]);
        let is_static = |b: &Bytes| KNOWN_NAMES.iter().any(|k| k.as_ptr() == b.as_ptr());
        // The name, not the argument that spells it, and no name in another case.
        let shared: Vec<bool> = args.iter().map(|b| is_static(b)).collect();
        assert_eq!(shared, [true, false, false, false]);
    }

    #[test]
    fn a_recycled_argument_vector_carries_the_next_command() {
        let mut d = CommandDecoder::new(limits(), 1 << 20);
        let mut stream = Vec::new();
        encode_command(&mut stream, &[&b"SET"[..], b"k", b"v"]);
        encode_command(&mut stream, &[&b"GET"[..], b"k"]);
        d.feed(&stream);
        let Ok(Some(Decoded::Command(first))) = d.next_command() else {
            panic!("a command")
        };
        let at = first.as_ptr();
        d.recycle(first);
        let Ok(Some(Decoded::Command(second))) = d.next_command() else {
            panic!("a command")
        };
        assert_eq!(second, [bulk(b"GET"), bulk(b"k")]);
        assert_eq!(second.as_ptr(), at, "the same allocation");
        // One that held a long command is not kept.
        d.recycle(Vec::with_capacity(SPARE_CAPACITY_MAX + 1));
        assert!(d.spare.is_empty());
    }

    #[test]
    fn any_split_gives_the_same_commands() {
        let mut stream = Vec::new();
        encode_command(&mut stream, &[&b"SET"[..], b"k", b"v\r\nx"]);
        stream.extend_from_slice(b"\r\nPING\r\n*0\r\n*-1\r\n*2\r\n$3\r\nGET\r\n$-1\r\n");
        stream.extend_from_slice(b"*2\r\n+ECHO\r\n:-7\r\n");
        let want = vec![
            Decoded::Command(vec![bulk(b"SET"), bulk(b"k"), bulk(b"v\r\nx")]),
            Decoded::Command(vec![bulk(b"PING")]),
            Decoded::NotACommand(NOT_A_COMMAND_EMPTY),
            Decoded::NotACommand(NOT_A_COMMAND_EMPTY),
            Decoded::NotACommand(NOT_A_COMMAND_NULL),
            Decoded::Command(vec![bulk(b"ECHO"), bulk(b"-7")]),
        ];
        for piece in 1..=stream.len() {
            let mut d = CommandDecoder::new(limits(), 1 << 20);
            assert_eq!(
                decode_in_pieces(&mut d, &stream, piece),
                want,
                "pieces of {piece}"
            );
            assert_eq!(d.buffered(), 0);
        }
    }

    /// What a decoder holds counts the bytes received once (a bulk's announced length
    /// is not counted until it arrives), and an idle decoder that held a large command
    /// gives its buffer back.
    #[test]
    fn held_bytes_and_release() {
        let mut d = CommandDecoder::new(limits(), 1 << 20);
        let mut stream = Vec::new();
        let value = vec![b'v'; 100_000];
        encode_command(&mut stream, &[&b"SET"[..], b"key", &value]);
        d.feed(&stream[..50_000]);
        assert_eq!(d.next_command(), Ok(None));
        let held = d.held_bytes();
        assert!((50_000..50_100).contains(&held), "{held}");
        d.feed(&stream[50_000..]);
        assert!(matches!(d.next_command(), Ok(Some(Decoded::Command(_)))));
        assert_eq!(d.held_bytes(), 0);
        assert!(d.grown);
        d.release_idle();
        assert!(!d.grown);
        assert_eq!(d.buf.capacity(), 0, "the large buffer was freed");
        d.feed(b"PING\r\n");
        assert!(!d.grown, "a small command does not mark the buffer large");
    }

    /// 64 arguments of 64 KiB arriving in 4 KiB reads: re-parsing the partial frame on
    /// every read would look at ~260 MiB; resuming looks at each byte about once.
    #[test]
    fn a_split_command_is_examined_in_linear_time() {
        let arg = vec![b'x'; 64 << 10];
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        args.extend(std::iter::repeat_n(&arg[..], 64));
        let mut stream = Vec::new();
        encode_command(&mut stream, &args);
        for piece in [4 << 10, 64 << 10, 1000] {
            let mut d = CommandDecoder::new(limits(), 64 << 20);
            let got = decode_in_pieces(&mut d, &stream, piece);
            assert_eq!(got.len(), 1);
            let examined = d.examined_bytes();
            assert!(
                examined <= stream.len() as u64 + 64 * 16,
                "examined {examined} bytes of a {}-byte command in pieces of {piece}",
                stream.len()
            );
            assert!(
                examined >= stream.len() as u64,
                "every byte is checked once"
            );
        }
    }

    #[test]
    fn a_command_over_the_limit_is_dropped_as_it_arrives_and_the_next_one_decodes() {
        let arg = vec![b'x'; 1000];
        let mut stream = Vec::new();
        encode_command(&mut stream, &[&b"SET"[..], b"k", &arg]);
        encode_command(&mut stream, &[&b"GET"[..], b"k"]);
        // The bound: 15 for the command, 10 per argument after the name.
        let bytes =
            COMMAND_OVERHEAD_BYTES + (1 + ITEM_OVERHEAD_BYTES) + (1000 + ITEM_OVERHEAD_BYTES);
        let mut at_limit = CommandDecoder::new(limits(), bytes);
        let got = decode_in_pieces(&mut at_limit, &stream, 7);
        assert!(matches!(got[0], Decoded::Command(_)), "{got:?}");
        let mut d = CommandDecoder::new(limits(), bytes - 1);
        let mut got = Vec::new();
        for chunk in stream.chunks(100) {
            d.feed(chunk);
            while let Some(x) = d.next_command().expect("valid stream") {
                got.push(x);
            }
            assert!(d.buffered() < 100, "dropped payload bytes are not kept");
        }
        assert_eq!(
            got,
            vec![
                Decoded::TooLarge {
                    bytes,
                    bytes_max: bytes - 1
                },
                Decoded::Command(vec![bulk(b"GET"), bulk(b"k")]),
            ]
        );
    }

    #[test]
    fn framing_errors_are_errors() {
        let cases: [(&[u8], RespError); 7] = [
            (
                b"*2\r\n$3\r\nGET\r\n$x\r\n",
                RespError::BadInteger("x".into(), "bulk"),
            ),
            (b"*1\r\n$3\r\nGETxx", RespError::BulkNotTerminated),
            (
                b"*1\r\n$99999999\r\n",
                RespError::BulkTooLong {
                    len: 99_999_999,
                    max: 1 << 20,
                },
            ),
            (
                b"*9999\r\n",
                RespError::ArrayTooLong {
                    len: 9999,
                    max: 1024,
                },
            ),
            (b"*1\r\n*1\r\n", RespError::TooDeep(1)),
            (b"*1\r\n-ERR\r\n", RespError::NotACommand),
            (b"+OK\r\n", RespError::NotACommand),
        ];
        for (input, want) in cases {
            let mut d = CommandDecoder::new(limits(), 1 << 20);
            d.feed(input);
            let got = loop {
                match d.next_command() {
                    Ok(Some(_)) => continue,
                    other => break other,
                }
            };
            assert_eq!(got, Err(want), "{:?}", String::from_utf8_lossy(input));
        }
    }
}
