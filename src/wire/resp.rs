//! RESP2 encoding and incremental decoding.
//!
//! Pure functions over byte slices, shared by the load generator (client side) and the
//! node's front end (server side). The decoder is incremental: it returns `Ok(None)` when
//! the buffer holds only part of a frame, so a caller appends more bytes and retries.
//! Inline commands (`PING\r\n`, as sent by telnet or redis-cli in some modes) are accepted
//! like redis-server does, split on spaces and tabs (without redis's quote handling).
//!
//! Two decoders share one grammar: [`decode`] builds a [`Value`]; [`skip`] only checks a
//! reply and says what kind it was, allocating nothing (the load generator's fast path).
use bytes::{BufMut, Bytes};

/// A RESP2 value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK\r\n`: a status line (no CR or LF inside).
    Simple(String),
    /// `-ERR message\r\n`: an error reply (no CR or LF inside).
    Error(String),
    /// `:42\r\n`: a signed 64-bit integer.
    Integer(i64),
    /// `$3\r\nfoo\r\n`, or `$-1\r\n` for `None` (the null bulk string).
    Bulk(Option<Bytes>),
    /// `*2\r\n...`, or `*-1\r\n` for `None` (the null array).
    Array(Option<Vec<Value>>),
}

/// Bounds the decoder enforces, so a hostile or broken peer cannot make it allocate
/// without limit or recurse without limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk string payload accepted, in bytes.
    pub bulk_bytes_max: usize,
    /// Largest array length accepted, in elements.
    pub array_len_max: usize,
    /// Deepest nesting of arrays accepted (a flat command is depth 1).
    pub depth_max: usize,
    /// Longest inline command accepted (bytes before the line end).
    pub inline_bytes_max: usize,
}

impl Default for Limits {
    /// redis-server's own defaults: 512 MiB bulk, 64 KiB inline.
    fn default() -> Self {
        Limits {
            bulk_bytes_max: 512 * 1024 * 1024,
            array_len_max: 1024 * 1024,
            depth_max: 32,
            inline_bytes_max: 64 * 1024,
        }
    }
}

/// What was wrong with a RESP frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespError {
    /// A length or integer line held something other than an optional `-` and digits.
    #[error("invalid integer {0:?} in {1} header")]
    BadInteger(String, &'static str),
    /// A length below -1.
    #[error("negative length {0} in {1} header")]
    NegativeLength(i64, &'static str),
    /// A bulk string was longer than `bulk_bytes_max`.
    #[error("bulk string of {len} bytes exceeds bulk_bytes_max {max}")]
    BulkTooLong {
        /// Declared length.
        len: i64,
        /// The limit.
        max: usize,
    },
    /// An array was longer than `array_len_max`.
    #[error("array of {len} elements exceeds array_len_max {max}")]
    ArrayTooLong {
        /// Declared length.
        len: i64,
        /// The limit.
        max: usize,
    },
    /// Arrays nested deeper than `depth_max`.
    #[error("arrays nested deeper than depth_max {0}")]
    TooDeep(usize),
    /// An inline command (or a header line) ran past `inline_bytes_max` without a line end.
    #[error("line longer than inline_bytes_max {0} without CRLF")]
    LineTooLong(usize),
    /// A bulk string's payload was not followed by CRLF.
    #[error("bulk string payload not terminated by CRLF")]
    BulkNotTerminated,
    /// A line ended with a bare LF or a CR not followed by LF.
    #[error("line not terminated by CRLF")]
    BadLineEnd,
    /// A simple string or error line was not UTF-8.
    #[error("simple string or error is not UTF-8")]
    NotUtf8,
    /// An inline command held no words.
    #[error("empty inline command")]
    EmptyInline,
    /// A command's element was not a bulk string, simple string or integer.
    #[error("a command is an array of bulk strings")]
    NotACommand,
}

/// The kind of a reply, as found by [`skip`], without its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// `+...`
    Simple,
    /// `-...`: the byte range of the error's first word (e.g. `ERR`, `WRONGTYPE`) in the buffer.
    Error {
        /// Start of the first word.
        start: usize,
        /// End (exclusive) of the first word.
        end: usize,
    },
    /// `:...`
    Integer,
    /// `$...`: `true` when null.
    Bulk {
        /// The null bulk string (`$-1`).
        null: bool,
    },
    /// `*...`: element count, `None` when null.
    Array {
        /// Top-level element count.
        len: Option<usize>,
    },
}

/// Decodes one value (or inline command) from the front of `buf`.
///
/// Returns `Ok(None)` if `buf` holds only part of a frame, `Ok(Some((value, consumed)))`
/// otherwise. Never panics on any input.
pub fn decode(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, RespError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if !is_type_byte(first) {
        return decode_inline(buf, limits);
    }
    let mut pos = 0;
    match parse_value(buf, &mut pos, limits, 1)? {
        Some(v) => Ok(Some((v, pos))),
        None => Ok(None),
    }
}

/// Checks one reply at the front of `buf` without building it; returns its kind and
/// length. Inline text is not a reply, so it is rejected as a bad line.
pub fn skip(buf: &[u8], limits: &Limits) -> Result<Option<(ReplyKind, usize)>, RespError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut pos = 1;
    let kind = match first {
        b'+' => {
            let Some(_) = line(buf, &mut pos, limits)? else {
                return Ok(None);
            };
            ReplyKind::Simple
        }
        b'-' => {
            let start = pos;
            let Some(l) = line(buf, &mut pos, limits)? else {
                return Ok(None);
            };
            let word = l.iter().position(|&b| b == b' ').unwrap_or(l.len());
            ReplyKind::Error {
                start,
                end: start + word,
            }
        }
        b':' => {
            let Some(l) = line(buf, &mut pos, limits)? else {
                return Ok(None);
            };
            parse_int(l, "integer")?;
            ReplyKind::Integer
        }
        b'$' => match bulk_payload(buf, &mut pos, limits)? {
            None => return Ok(None),
            Some(p) => ReplyKind::Bulk { null: p.is_none() },
        },
        b'*' => {
            let Some(len) = array_len(buf, &mut pos, limits)? else {
                return Ok(None);
            };
            if let Some(n) = len {
                for _ in 0..n {
                    if !skip_value(buf, &mut pos, limits, 2)? {
                        return Ok(None);
                    }
                }
            }
            ReplyKind::Array { len }
        }
        _ => return Err(RespError::BadLineEnd),
    };
    Ok(Some((kind, pos)))
}

pub(super) fn is_type_byte(b: u8) -> bool {
    matches!(b, b'+' | b'-' | b':' | b'$' | b'*')
}

/// Reads a CRLF-terminated line starting at `*pos`; advances past the CRLF.
fn line<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    limits: &Limits,
) -> Result<Option<&'a [u8]>, RespError> {
    let rest = &buf[*pos..];
    match memchr::memchr(b'\n', rest) {
        None => {
            if rest.len() > limits.inline_bytes_max {
                return Err(RespError::LineTooLong(limits.inline_bytes_max));
            }
            Ok(None)
        }
        Some(i) => {
            if i == 0 || rest[i - 1] != b'\r' {
                return Err(RespError::BadLineEnd);
            }
            if i - 1 > limits.inline_bytes_max {
                return Err(RespError::LineTooLong(limits.inline_bytes_max));
            }
            let l = &rest[..i - 1];
            if memchr::memchr(b'\r', l).is_some() {
                return Err(RespError::BadLineEnd);
            }
            *pos += i + 1;
            Ok(Some(l))
        }
    }
}

pub(super) fn parse_int(l: &[u8], what: &'static str) -> Result<i64, RespError> {
    let bad = || RespError::BadInteger(String::from_utf8_lossy(l).into_owned(), what);
    let (neg, digits) = match l.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, l),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(bad());
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(bad());
        }
        // Accumulate negatives downwards so i64::MIN parses.
        let digit = i64::from(d - b'0');
        v = v
            .checked_mul(10)
            .and_then(|v| {
                if neg {
                    v.checked_sub(digit)
                } else {
                    v.checked_add(digit)
                }
            })
            .ok_or_else(bad)?;
    }
    Ok(v)
}

/// After the `$`: returns the payload (None = null bulk) or Ok(None) if incomplete.
#[allow(clippy::type_complexity)]
fn bulk_payload<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    limits: &Limits,
) -> Result<Option<Option<&'a [u8]>>, RespError> {
    let start = *pos;
    let Some(l) = line(buf, pos, limits)? else {
        return Ok(None);
    };
    let len = parse_int(l, "bulk")?;
    if len == -1 {
        return Ok(Some(None));
    }
    if len < -1 {
        return Err(RespError::NegativeLength(len, "bulk"));
    }
    if len as u64 > limits.bulk_bytes_max as u64 {
        return Err(RespError::BulkTooLong {
            len,
            max: limits.bulk_bytes_max,
        });
    }
    let len = len as usize;
    let body = *pos;
    if buf.len() < body + len + 2 {
        *pos = start;
        return Ok(None);
    }
    if &buf[body + len..body + len + 2] != b"\r\n" {
        return Err(RespError::BulkNotTerminated);
    }
    *pos = body + len + 2;
    Ok(Some(Some(&buf[body..body + len])))
}

/// After the `*`: returns the length (None = null array) or Ok(None) if incomplete.
fn array_len(
    buf: &[u8],
    pos: &mut usize,
    limits: &Limits,
) -> Result<Option<Option<usize>>, RespError> {
    let Some(l) = line(buf, pos, limits)? else {
        return Ok(None);
    };
    let len = parse_int(l, "array")?;
    if len == -1 {
        return Ok(Some(None));
    }
    if len < -1 {
        return Err(RespError::NegativeLength(len, "array"));
    }
    if len as u64 > limits.array_len_max as u64 {
        return Err(RespError::ArrayTooLong {
            len,
            max: limits.array_len_max,
        });
    }
    Ok(Some(Some(len as usize)))
}

fn utf8(l: &[u8]) -> Result<String, RespError> {
    std::str::from_utf8(l)
        .map(str::to_owned)
        .map_err(|_| RespError::NotUtf8)
}

fn parse_value(
    buf: &[u8],
    pos: &mut usize,
    limits: &Limits,
    depth: usize,
) -> Result<Option<Value>, RespError> {
    let Some(&t) = buf.get(*pos) else {
        return Ok(None);
    };
    *pos += 1;
    let v = match t {
        b'+' => match line(buf, pos, limits)? {
            None => return Ok(None),
            Some(l) => Value::Simple(utf8(l)?),
        },
        b'-' => match line(buf, pos, limits)? {
            None => return Ok(None),
            Some(l) => Value::Error(utf8(l)?),
        },
        b':' => match line(buf, pos, limits)? {
            None => return Ok(None),
            Some(l) => Value::Integer(parse_int(l, "integer")?),
        },
        b'$' => match bulk_payload(buf, pos, limits)? {
            None => return Ok(None),
            Some(p) => Value::Bulk(p.map(Bytes::copy_from_slice)),
        },
        b'*' => {
            if depth > limits.depth_max {
                return Err(RespError::TooDeep(limits.depth_max));
            }
            let Some(len) = array_len(buf, pos, limits)? else {
                return Ok(None);
            };
            match len {
                None => Value::Array(None),
                Some(n) => {
                    // Cap the up-front reservation: the declared length is untrusted.
                    let mut items = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        match parse_value(buf, pos, limits, depth + 1)? {
                            None => return Ok(None),
                            Some(v) => items.push(v),
                        }
                    }
                    Value::Array(Some(items))
                }
            }
        }
        // Inside an array every element must be typed; inline is top-level only.
        _ => return Err(RespError::BadLineEnd),
    };
    Ok(Some(v))
}

fn skip_value(
    buf: &[u8],
    pos: &mut usize,
    limits: &Limits,
    depth: usize,
) -> Result<bool, RespError> {
    let Some(&t) = buf.get(*pos) else {
        return Ok(false);
    };
    *pos += 1;
    match t {
        b'+' | b'-' => Ok(line(buf, pos, limits)?.is_some()),
        b':' => match line(buf, pos, limits)? {
            None => Ok(false),
            Some(l) => parse_int(l, "integer").map(|_| true),
        },
        b'$' => Ok(bulk_payload(buf, pos, limits)?.is_some()),
        b'*' => {
            if depth > limits.depth_max {
                return Err(RespError::TooDeep(limits.depth_max));
            }
            let Some(len) = array_len(buf, pos, limits)? else {
                return Ok(false);
            };
            for _ in 0..len.unwrap_or(0) {
                if !skip_value(buf, pos, limits, depth + 1)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        _ => Err(RespError::BadLineEnd),
    }
}

pub(super) fn decode_inline(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(Value, usize)>, RespError> {
    let Some(i) = memchr::memchr(b'\n', buf) else {
        if buf.len() > limits.inline_bytes_max {
            return Err(RespError::LineTooLong(limits.inline_bytes_max));
        }
        return Ok(None);
    };
    if i > limits.inline_bytes_max {
        return Err(RespError::LineTooLong(limits.inline_bytes_max));
    }
    // redis-server accepts a bare LF after an inline command, so do we.
    let l = if i > 0 && buf[i - 1] == b'\r' {
        &buf[..i - 1]
    } else {
        &buf[..i]
    };
    let words: Vec<Value> = l
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty())
        .map(|w| Value::Bulk(Some(Bytes::copy_from_slice(w))))
        .collect();
    if words.is_empty() {
        return Err(RespError::EmptyInline);
    }
    if words.len() > limits.array_len_max {
        return Err(RespError::ArrayTooLong {
            len: words.len() as i64,
            max: limits.array_len_max,
        });
    }
    Ok(Some((Value::Array(Some(words)), i + 1)))
}

fn put_header<B: BufMut>(out: &mut B, t: u8, n: i64) {
    let mut b = itoa::Buffer::new();
    out.put_u8(t);
    out.put_slice(b.format(n).as_bytes());
    out.put_slice(b"\r\n");
}

/// Encodes a command: an array of bulk strings.
pub fn encode_command<B: BufMut, A: AsRef<[u8]>>(out: &mut B, args: &[A]) {
    put_header(out, b'*', args.len() as i64);
    for a in args {
        encode_bulk(out, Some(a.as_ref()));
    }
}

/// Encodes a simple string reply; CR and LF would break framing, so they become spaces.
pub fn encode_simple<B: BufMut>(out: &mut B, s: &str) {
    out.put_u8(b'+');
    put_line(out, s);
}

/// Encodes an error reply (`-ERR ...`); CR and LF become spaces.
pub fn encode_error<B: BufMut>(out: &mut B, s: &str) {
    out.put_u8(b'-');
    put_line(out, s);
}

fn put_line<B: BufMut>(out: &mut B, s: &str) {
    for chunk in s
        .as_bytes()
        .split(|&b| b == b'\r' || b == b'\n')
        .enumerate()
    {
        if chunk.0 > 0 {
            out.put_u8(b' ');
        }
        out.put_slice(chunk.1);
    }
    out.put_slice(b"\r\n");
}

/// Encodes an integer reply.
pub fn encode_integer<B: BufMut>(out: &mut B, n: i64) {
    put_header(out, b':', n);
}

/// Encodes a bulk string reply, `None` as the null bulk string.
pub fn encode_bulk<B: BufMut>(out: &mut B, b: Option<&[u8]>) {
    match b {
        None => out.put_slice(b"$-1\r\n"),
        Some(b) => {
            put_header(out, b'$', b.len() as i64);
            out.put_slice(b);
            out.put_slice(b"\r\n");
        }
    }
}

/// Encodes an array header of `n` elements (`None` = the null array); the caller then
/// encodes the elements.
pub fn encode_array_header<B: BufMut>(out: &mut B, n: Option<usize>) {
    match n {
        None => out.put_slice(b"*-1\r\n"),
        Some(n) => put_header(out, b'*', n as i64),
    }
}

/// Encodes any value.
pub fn encode_value<B: BufMut>(out: &mut B, v: &Value) {
    match v {
        Value::Simple(s) => encode_simple(out, s),
        Value::Error(s) => encode_error(out, s),
        Value::Integer(n) => encode_integer(out, *n),
        Value::Bulk(b) => encode_bulk(out, b.as_deref()),
        Value::Array(None) => encode_array_header(out, None),
        Value::Array(Some(items)) => {
            encode_array_header(out, Some(items.len()));
            for i in items {
                encode_value(out, i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(b: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
        decode(b, &Limits::default())
    }

    fn bulk(s: &str) -> Value {
        Value::Bulk(Some(Bytes::copy_from_slice(s.as_bytes())))
    }

    #[test]
    fn decodes_every_type() {
        assert_eq!(
            d(b"+OK\r\n").unwrap(),
            Some((Value::Simple("OK".into()), 5))
        );
        assert_eq!(
            d(b"-ERR bad\r\n").unwrap(),
            Some((Value::Error("ERR bad".into()), 10))
        );
        assert_eq!(d(b":-42\r\n").unwrap(), Some((Value::Integer(-42), 6)));
        assert_eq!(d(b"$3\r\nfoo\r\n").unwrap(), Some((bulk("foo"), 9)));
        assert_eq!(d(b"$-1\r\n").unwrap(), Some((Value::Bulk(None), 5)));
        assert_eq!(d(b"$0\r\n\r\n").unwrap(), Some((bulk(""), 6)));
        assert_eq!(d(b"*-1\r\n").unwrap(), Some((Value::Array(None), 5)));
        assert_eq!(
            d(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n+extra").unwrap(),
            Some((Value::Array(Some(vec![bulk("GET"), bulk("k")])), 20))
        );
    }

    #[test]
    fn decodes_inline_commands() {
        assert_eq!(
            d(b"PING\r\n").unwrap(),
            Some((Value::Array(Some(vec![bulk("PING")])), 6))
        );
        assert_eq!(
            d(b"SET  k\tv\n").unwrap(),
            Some((
                Value::Array(Some(vec![bulk("SET"), bulk("k"), bulk("v")])),
                9
            ))
        );
        assert_eq!(d(b"PIN").unwrap(), None);
        assert_eq!(d(b"  \r\n"), Err(RespError::EmptyInline));
    }

    #[test]
    fn rejects_malformed_frames() {
        assert!(matches!(d(b":12a\r\n"), Err(RespError::BadInteger(..))));
        assert!(matches!(d(b":\r\n"), Err(RespError::BadInteger(..))));
        assert!(matches!(
            d(b":99999999999999999999\r\n"),
            Err(RespError::BadInteger(..))
        ));
        assert!(matches!(
            d(b"$-2\r\n"),
            Err(RespError::NegativeLength(-2, _))
        ));
        assert!(matches!(
            d(b"*-5\r\n"),
            Err(RespError::NegativeLength(-5, _))
        ));
        assert_eq!(d(b"$3\r\nfooXY"), Err(RespError::BulkNotTerminated));
        assert_eq!(d(b"+OK\n"), Err(RespError::BadLineEnd));
        assert_eq!(d(b"+O\rK\r\n"), Err(RespError::BadLineEnd));
        assert_eq!(d(b"*1\r\nGET\r\n"), Err(RespError::BadLineEnd));
        assert_eq!(d(b"+\xff\r\n"), Err(RespError::NotUtf8));
    }

    #[test]
    fn enforces_limits() {
        let l = Limits {
            bulk_bytes_max: 4,
            array_len_max: 2,
            depth_max: 2,
            inline_bytes_max: 8,
        };
        assert!(matches!(
            decode(b"$5\r\n", &l),
            Err(RespError::BulkTooLong { len: 5, max: 4 })
        ));
        assert!(decode(b"$4\r\nabcd\r\n", &l).unwrap().is_some());
        assert!(matches!(
            decode(b"*3\r\n", &l),
            Err(RespError::ArrayTooLong { len: 3, max: 2 })
        ));
        assert_eq!(
            decode(b"*1\r\n*1\r\n*1\r\n:1\r\n", &l),
            Err(RespError::TooDeep(2))
        );
        assert!(decode(b"*1\r\n*1\r\n:1\r\n", &l).unwrap().is_some());
        assert_eq!(decode(b"PINGPINGPING", &l), Err(RespError::LineTooLong(8)));
        assert_eq!(decode(b"+OKOKOKOKOK", &l), Err(RespError::LineTooLong(8)));
        assert_eq!(
            decode(b"a b c\r\n", &l),
            Err(RespError::ArrayTooLong { len: 3, max: 2 })
        );
    }

    fn sample_frames() -> Vec<Vec<u8>> {
        let vals = [
            Value::Simple("OK".into()),
            Value::Error("WRONGTYPE Operation against a key".into()),
            Value::Integer(i64::MIN + 1),
            Value::Bulk(None),
            Value::Array(None),
            Value::Array(Some(vec![
                bulk("SET"),
                bulk("key:1"),
                Value::Bulk(Some(Bytes::from(vec![b'\r'; 3]))),
                Value::Array(Some(vec![Value::Integer(7), Value::Bulk(None)])),
            ])),
        ];
        vals.iter()
            .map(|v| {
                let mut out = Vec::new();
                encode_value(&mut out, v);
                out
            })
            .collect()
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let mut all = Vec::new();
        for f in sample_frames() {
            all.extend_from_slice(&f);
        }
        // Every prefix shorter than the first frame must be "need more", and decoding
        // the stream frame by frame at any cut must give the same values.
        let whole = decode_all(&all);
        for cut in 0..=all.len() {
            let mut buf = all[..cut].to_vec();
            let mut got = Vec::new();
            let drain = |buf: &mut Vec<u8>, got: &mut Vec<Value>| {
                while let Some((v, n)) = d(buf).unwrap() {
                    got.push(v);
                    buf.drain(..n);
                }
            };
            drain(&mut buf, &mut got);
            buf.extend_from_slice(&all[cut..]);
            drain(&mut buf, &mut got);
            assert!(buf.is_empty());
            assert_eq!(got, whole);
        }
    }

    fn decode_all(mut b: &[u8]) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some((v, n)) = d(b).unwrap() {
            out.push(v);
            b = &b[n..];
        }
        out
    }

    #[test]
    fn skip_agrees_with_decode() {
        for f in sample_frames() {
            let (v, n) = d(&f).unwrap().unwrap();
            let (k, m) = skip(&f, &Limits::default()).unwrap().unwrap();
            assert_eq!(n, m);
            match (v, k) {
                (Value::Error(s), ReplyKind::Error { start, end }) => {
                    assert_eq!(&f[start..end], s.split(' ').next().unwrap().as_bytes())
                }
                (Value::Simple(_), ReplyKind::Simple) | (Value::Integer(_), ReplyKind::Integer) => {
                }
                (Value::Bulk(b), ReplyKind::Bulk { null }) => assert_eq!(b.is_none(), null),
                (Value::Array(a), ReplyKind::Array { len }) => {
                    assert_eq!(a.map(|a| a.len()), len)
                }
                (v, k) => panic!("{v:?} vs {k:?}"),
            }
            for cut in 0..f.len() {
                assert_eq!(skip(&f[..cut], &Limits::default()).unwrap(), None);
            }
        }
    }

    #[test]
    fn command_encoding_matches_redis() {
        let mut out = bytes::BytesMut::new();
        encode_command(&mut out, &[&b"GET"[..], b"k"]);
        assert_eq!(&out[..], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        let mut v = Vec::new();
        encode_error(&mut v, "ERR a\r\nb");
        assert_eq!(v, b"-ERR a  b\r\n");
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            "[a-zA-Z0-9 ]{0,20}".prop_map(Value::Simple),
            "[a-zA-Z0-9 ]{0,20}".prop_map(Value::Error),
            any::<i64>().prop_map(Value::Integer),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))
                .prop_map(|b| Value::Bulk(b.map(Bytes::from))),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::option::of(proptest::collection::vec(inner, 0..8)).prop_map(Value::Array)
        })
    }

    proptest! {
        #[test]
        fn round_trip(v in arb_value()) {
            let mut out = Vec::new();
            encode_value(&mut out, &v);
            let got = d(&out).unwrap();
            prop_assert_eq!(got, Some((v, out.len())));
            prop_assert_eq!(skip(&out, &Limits::default()).unwrap().map(|x| x.1), Some(out.len()));
        }

        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = d(&b);
            let _ = skip(&b, &Limits::default());
        }
    }
}
