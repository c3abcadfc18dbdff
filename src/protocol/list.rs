//! A list's value as the state machine stores it: its elements one after the other, each
//! as its length (LEB128) and its bytes.
//!
//! A list is one value of the map, so everything that carries values (snapshots, snapshot
//! transfers, anti-entropy, digest reads, the Merkle tree) carries lists as they are, and
//! a list's bytes count against the same limits as a value's. The cost: a write copies the
//! list (a push or pop of a list of n bytes costs O(n), where Redis's costs O(1)); lists
//! are meant for queues and small collections, bounded by [`LIST_BYTES_MAX`].

use serde::{Deserialize, Serialize};

/// Largest encoded list a key may hold: a command may carry a value this large, so a list
/// this large still fits every message and record a value must fit (an anti-entropy
/// entry, a snapshot chunk, a digest read's answer). A push past it is refused.
pub const LIST_BYTES_MAX: usize = crate::limits::COMMAND_BYTES_MAX;

/// Which end of a list a command works at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum End {
    /// The head (`LPUSH`, `LPOP`, `LEFT`).
    Left,
    /// The tail (`RPUSH`, `RPOP`, `RIGHT`).
    Right,
}

/// The elements of an encoded list, first to last. Stops at the first malformed length
/// (the state machine only stores what [`encode`] wrote; a damaged copy reads short
/// rather than panicking).
pub fn elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = value;
    std::iter::from_fn(move || {
        let (len, at) = read_len(rest)?;
        let end = at.checked_add(len).filter(|e| *e <= rest.len())?;
        let elem = &rest[at..end];
        rest = &rest[end..];
        Some(elem)
    })
}

/// Where each element of an encoded list starts (its length's first byte), then where
/// the last one ends: element `i` is `value[starts[i]..starts[i + 1]]`, encoded.
pub fn starts(value: &[u8]) -> Vec<usize> {
    let mut out = vec![0];
    let mut at = 0;
    for e in elements(value) {
        at += encoded_len(e);
        out.push(at);
    }
    out
}

/// Number of elements of an encoded list.
pub fn len(value: &[u8]) -> usize {
    elements(value).count()
}

/// Bytes one element takes encoded.
pub fn encoded_len(elem: &[u8]) -> usize {
    let bits = usize::BITS - elem.len().leading_zeros();
    (bits as usize).div_ceil(7).max(1) + elem.len()
}

/// Encodes elements as a list's value.
pub fn encode<'a>(elems: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elems {
        let mut n = e.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(e);
    }
    out
}

/// A LEB128 length at the start of `bytes` and where the bytes after it start.
fn read_len(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut n = 0usize;
    for (i, b) in bytes.iter().enumerate().take(10) {
        let part = usize::from(b & 0x7f).checked_shl(7 * i as u32)?;
        n |= part;
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// The index range `[start, stop]` (Redis's: negative counts from the end, both ends
/// included, clamped) of a list of `len` elements, as `skip, take`.
pub fn range(len: usize, start: i64, stop: i64) -> (usize, usize) {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let from_end = |i: i64| if i < 0 { len_i.saturating_add(i) } else { i };
    let start = from_end(start).max(0);
    let stop = from_end(stop).min(len_i - 1);
    if start > stop || start >= len_i {
        return (0, 0);
    }
    // Both within 0..len here.
    (start as usize, (stop - start + 1) as usize)
}

/// The position of index `i` (negative from the end) in a list of `len` elements.
pub fn index(len: usize, i: i64) -> Option<usize> {
    let len_i = i64::try_from(len).ok()?;
    let at = if i < 0 { len_i.checked_add(i)? } else { i };
    (0..len_i).contains(&at).then_some(at as usize)
}

/// Where elements equal to `value` are in `elems`, as `LPOS` finds them: from the head
/// for a positive `rank`, from the tail for a negative one, skipping the first
/// `|rank| - 1` matches; at most `count` positions (0: all), comparing at most `maxlen`
/// elements (0: all). `rank` is never 0 (the command refuses it).
pub fn positions(elems: &[&[u8]], value: &[u8], rank: i64, count: u64, maxlen: u64) -> Vec<usize> {
    let skip = usize::try_from(rank.unsigned_abs().saturating_sub(1)).unwrap_or(usize::MAX);
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let count = if count == 0 { usize::MAX } else { count };
    let maxlen = usize::try_from(maxlen).unwrap_or(usize::MAX);
    let looked = if maxlen == 0 {
        elems.len()
    } else {
        maxlen.min(elems.len())
    };
    let order: Box<dyn Iterator<Item = usize>> = if rank < 0 {
        Box::new((elems.len() - looked..elems.len()).rev())
    } else {
        Box::new(0..looked)
    };
    order
        .filter(|&i| elems[i] == value)
        .skip(skip)
        .take(count)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let long = vec![7u8; 300];
        let elems: Vec<&[u8]> = vec![b"", b"a", &long, b"tail"];
        let value = encode(elems.iter().copied());
        assert_eq!(elements(&value).collect::<Vec<_>>(), elems);
        assert_eq!(len(&value), 4);
        assert_eq!(
            value.len(),
            elems.iter().map(|e| encoded_len(e)).sum::<usize>()
        );
        assert_eq!(len(&[]), 0);
        let starts = starts(&value);
        assert_eq!(starts.len(), 5);
        assert_eq!(&value[starts[1]..starts[2]], &encode([&b"a"[..]])[..]);
        assert_eq!(starts[4], value.len());
        // A damaged copy reads short, never past its end.
        assert_eq!(len(&value[..value.len() - 1]), 3);
        assert_eq!(len(&[0xff; 12]), 0);
    }

    #[test]
    fn ranges_follow_redis() {
        assert_eq!(range(5, 0, -1), (0, 5));
        assert_eq!(range(5, 1, 2), (1, 2));
        assert_eq!(range(5, -2, -1), (3, 2));
        assert_eq!(range(5, -100, 100), (0, 5));
        assert_eq!(range(5, 3, 1), (0, 0));
        assert_eq!(range(5, 5, 10), (0, 0));
        assert_eq!(range(0, 0, -1), (0, 0));
        assert_eq!(range(5, i64::MIN, i64::MAX), (0, 5));
        assert_eq!(index(3, 0), Some(0));
        assert_eq!(index(3, -1), Some(2));
        assert_eq!(index(3, 3), None);
        assert_eq!(index(3, -4), None);
        assert_eq!(index(3, i64::MIN), None);
    }

    #[test]
    fn positions_follow_redis_lpos() {
        // The example of Redis's LPOS page: a b c 1 2 3 c c.
        let l: Vec<&[u8]> = vec![b"a", b"b", b"c", b"1", b"2", b"3", b"c", b"c"];
        assert_eq!(positions(&l, b"c", 1, 1, 0), [2]);
        assert_eq!(positions(&l, b"c", 2, 1, 0), [6]);
        assert_eq!(positions(&l, b"c", -1, 1, 0), [7]);
        assert_eq!(positions(&l, b"c", 1, 2, 0), [2, 6]);
        assert_eq!(positions(&l, b"c", -1, 2, 0), [7, 6]);
        assert_eq!(positions(&l, b"c", 1, 0, 0), [2, 6, 7]);
        assert_eq!(positions(&l, b"c", 1, 0, 3), [2]);
        assert_eq!(positions(&l, b"c", -1, 0, 2), [7, 6]);
        assert_eq!(positions(&l, b"c", 4, 1, 0), Vec::<usize>::new());
        assert_eq!(positions(&l, b"z", 1, 0, 0), Vec::<usize>::new());
        assert_eq!(positions(&l, b"c", i64::MIN + 1, 0, 0), Vec::<usize>::new());
        assert_eq!(positions(&[], b"c", -1, 0, 0), Vec::<usize>::new());
    }
}
