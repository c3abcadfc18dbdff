//! Lists as the state machine holds them, and their encoded form.
//!
//! A key's list is a [`List`]: its elements in a deque, so a push or pop at either end
//! costs O(1) amortised, as in Redis, with its encoded size and a hash of its elements kept
//! current by every change. The encoded form (each element as its length, LEB128, then
//! its bytes, one after the other) exists only where a value must travel or be stored as
//! bytes: snapshots, snapshot transfers, anti-entropy entries, digest read answers; a
//! receiver decodes it on install ([`List::decode`]).
//!
//! A list's hash ([`List::value_hash`]) stands for its elements in the Merkle tree and in
//! digest reads, so a write never rehashes the whole list: it is a polynomial over the
//! field of integers mod the prime 2^61 − 1, `Σ eᵢ·Bⁱ` with `eᵢ` the xxh3 of element `i`
//! (the head is `i = 0`) reduced into the field, kept with `Bᴸᴱᴺ`. A push at the head is
//! `h' = e + B·h`, at the tail `h' = h + e·Bᴸᴱᴺ`; pops undo them with `B`'s inverse. Every
//! replica computes the same number from the same elements, whatever commands built them,
//! and [`value_hash_of_encoded`] computes it from the encoded form. Two different lists
//! share a hash with probability about `len / 2^61` (two polynomials of degree `len`
//! agree at one point): the odds of an xxh3 collision for the strings.
//!
//! What a list holds counts against the same limit as a value's ([`LIST_BYTES_MAX`]): its
//! encoded bytes plus [`LIST_ELEMENT_OVERHEAD_BYTES`] per element ([`List::held_bytes`]),
//! so a list of many tiny elements cannot hold far more memory than the limit says.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Most a list may hold ([`List::held_bytes`]: encoded bytes plus a per-element cost): a
/// command may carry a value this large, so a list this large still fits every message and
/// record a value must fit (an anti-entropy entry, a snapshot chunk, a digest read's
/// answer), and its memory stays within a small multiple of it. A write past it is refused.
pub const LIST_BYTES_MAX: usize = crate::limits::COMMAND_BYTES_MAX;

/// What an element costs in memory beyond its encoded bytes, counted against
/// [`LIST_BYTES_MAX`]: its `Bytes` handle in the deque (32 bytes), its own allocation's
/// malloc header and rounding (8 to 31 bytes) and the deque's spare room. A 1-byte
/// element takes about 64 bytes where its encoded form takes 2. A fixed number, not the
/// allocator's figure, so every replica makes the same decision.
pub const LIST_ELEMENT_OVERHEAD_BYTES: usize = 64;

/// A LEB128 length of a `usize` takes at most 10 bytes: the overhead counted covers it, so
/// the held bytes bound the encoded bytes and an encoded list fits where a value fits.
const _: () = assert!(LIST_ELEMENT_OVERHEAD_BYTES >= 10);

/// What one element counts against [`LIST_BYTES_MAX`]: its encoded bytes and the overhead.
pub fn held_len(elem: &[u8]) -> usize {
    encoded_len(elem) + LIST_ELEMENT_OVERHEAD_BYTES
}

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

/// Where elements equal to `value` are in `list`, as `LPOS` finds them: from the head
/// for a positive `rank`, from the tail for a negative one, skipping the first
/// `|rank| - 1` matches; at most `count` positions (0: all), comparing at most `maxlen`
/// elements (0: all). `rank` is never 0 (the command refuses it).
pub fn positions(list: &List, value: &[u8], rank: i64, count: u64, maxlen: u64) -> Vec<usize> {
    let skip = usize::try_from(rank.unsigned_abs().saturating_sub(1)).unwrap_or(usize::MAX);
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    let count = if count == 0 { usize::MAX } else { count };
    let maxlen = usize::try_from(maxlen).unwrap_or(usize::MAX);
    let looked = if maxlen == 0 {
        list.len()
    } else {
        maxlen.min(list.len())
    };
    let matches = |(i, e): (usize, &Bytes)| (e[..] == *value).then_some(i);
    if rank < 0 {
        let n = list.len();
        list.iter()
            .rev()
            .take(looked)
            .enumerate()
            .filter_map(|(j, e)| matches((n - 1 - j, e)))
            .skip(skip)
            .take(count)
            .collect()
    } else {
        list.iter()
            .take(looked)
            .enumerate()
            .filter_map(matches)
            .skip(skip)
            .take(count)
            .collect()
    }
}

/// The field's prime, 2^61 − 1 (a Mersenne prime: reducing is a shift and an add).
const FIELD_PRIME: u64 = (1 << 61) - 1;

/// The polynomial's base: any field element other than 0 and 1 works; a fixed one, so
/// every replica computes the same hash.
const HASH_BASE: u64 = 0x0f3c_59a2_e871_b5d3 % FIELD_PRIME;

/// `HASH_BASE`'s inverse in the field (`B^(p−2)`, by Fermat), for pops.
const HASH_BASE_INV: u64 = field_pow(HASH_BASE, FIELD_PRIME - 2);

const _: () = assert!(HASH_BASE > 1 && HASH_BASE < FIELD_PRIME);
const _: () = assert!(field_mul(HASH_BASE, HASH_BASE_INV) == 1);

/// `x` reduced into the field.
const fn field_reduce(x: u64) -> u64 {
    let r = (x & FIELD_PRIME) + (x >> 61);
    if r >= FIELD_PRIME { r - FIELD_PRIME } else { r }
}

/// `a · b` in the field (`a`, `b` reduced).
const fn field_mul(a: u64, b: u64) -> u64 {
    let x = a as u128 * b as u128;
    // x < 2^122: its low 61 bits plus the rest is below 2^62, and one more fold is exact.
    let folded = (x as u64 & FIELD_PRIME) + (x >> 61) as u64;
    field_reduce(folded)
}

/// `a + b` in the field (`a`, `b` reduced).
const fn field_add(a: u64, b: u64) -> u64 {
    field_reduce(a + b)
}

/// `a − b` in the field (`a`, `b` reduced).
const fn field_sub(a: u64, b: u64) -> u64 {
    field_reduce(a + FIELD_PRIME - b)
}

/// `base^exp` in the field.
const fn field_pow(base: u64, mut exp: u64) -> u64 {
    let mut out = 1;
    let mut sq = base;
    while exp > 0 {
        if exp & 1 == 1 {
            out = field_mul(out, sq);
        }
        sq = field_mul(sq, sq);
        exp >>= 1;
    }
    out
}

/// One element as a field element.
fn element_hash(elem: &[u8]) -> u64 {
    field_reduce(xxhash_rust::xxh3::xxh3_64(elem))
}

/// The hash a list of `len` elements with polynomial value `sum` stands for.
fn finish_hash(sum: u64, len: usize) -> u64 {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&sum.to_le_bytes());
    buf[8..].copy_from_slice(&(len as u64).to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&buf)
}

/// [`List::value_hash`] of the list an encoded value holds, without building it.
pub fn value_hash_of_encoded(value: &[u8]) -> u64 {
    let (mut sum, mut pow, mut len) = (0, 1, 0);
    for e in elements(value) {
        sum = field_add(sum, field_mul(element_hash(e), pow));
        pow = field_mul(pow, HASH_BASE);
        len += 1;
    }
    finish_hash(sum, len)
}

/// A list's elements, head first, with their encoded size and hash kept current.
#[derive(Clone)]
pub struct List {
    elems: VecDeque<Bytes>,
    /// Bytes of the encoded form ([`encode`]).
    encoded_bytes: usize,
    /// `Σ eᵢ·Bⁱ` (module doc).
    sum: u64,
    /// `B^len`.
    pow: u64,
}

impl Default for List {
    fn default() -> List {
        List::new()
    }
}

impl PartialEq for List {
    fn eq(&self, other: &List) -> bool {
        self.elems == other.elems
    }
}

impl Eq for List {}

impl std::fmt::Debug for List {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("List")
            .field("len", &self.elems.len())
            .field("encoded_bytes", &self.encoded_bytes)
            .finish()
    }
}

impl List {
    /// An empty list.
    pub const fn new() -> List {
        List {
            elems: VecDeque::new(),
            encoded_bytes: 0,
            sum: 0,
            pow: 1,
        }
    }

    /// The list of these elements, head first.
    pub fn from_elements(elems: impl IntoIterator<Item = Bytes>) -> List {
        let mut list = List::new();
        for e in elems {
            list.push(End::Right, e);
        }
        list
    }

    /// The list an encoded value holds, its elements copied (a damaged value reads short,
    /// as [`elements`] does).
    pub fn decode(value: &[u8]) -> List {
        List::from_elements(elements(value).map(Bytes::copy_from_slice))
    }

    /// The list an encoded value holds, its elements sharing `value`'s buffer.
    pub fn decode_shared(value: &Bytes) -> List {
        List::from_elements(elements(value).map(|e| value.slice_ref(e)))
    }

    /// The encoded form, for where a list travels as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let out = encode(self.elems.iter().map(|e| &e[..]));
        debug_assert_eq!(out.len(), self.encoded_bytes);
        out
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.elems.len()
    }

    /// True when it has no element (the state machine removes an emptied list's key).
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }

    /// Bytes of the encoded form.
    pub fn encoded_bytes(&self) -> usize {
        self.encoded_bytes
    }

    /// What the list counts against [`LIST_BYTES_MAX`]: the encoded bytes plus
    /// [`LIST_ELEMENT_OVERHEAD_BYTES`] per element ([`held_len`] summed). Computed from
    /// the elements alone, so every replica holding them agrees.
    pub fn held_bytes(&self) -> usize {
        self.encoded_bytes + self.elems.len() * LIST_ELEMENT_OVERHEAD_BYTES
    }

    /// The element at position `i` (0 is the head).
    pub fn get(&self, i: usize) -> Option<&Bytes> {
        self.elems.get(i)
    }

    /// The elements, head first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Bytes> + ExactSizeIterator {
        self.elems.iter()
    }

    /// `take` elements from position `skip` on (clamped to the list).
    pub fn slice(&self, skip: usize, take: usize) -> impl Iterator<Item = &Bytes> {
        let from = skip.min(self.elems.len());
        let to = from.saturating_add(take).min(self.elems.len());
        self.elems.range(from..to)
    }

    /// The hash that stands for the elements in digests (module doc): O(1).
    pub fn value_hash(&self) -> u64 {
        finish_hash(self.sum, self.elems.len())
    }

    /// Adds `elem` at `end`: O(1) amortised.
    pub fn push(&mut self, end: End, elem: Bytes) {
        let e = element_hash(&elem);
        self.encoded_bytes += encoded_len(&elem);
        match end {
            End::Left => {
                self.sum = field_add(e, field_mul(HASH_BASE, self.sum));
                self.elems.push_front(elem);
            }
            End::Right => {
                self.sum = field_add(self.sum, field_mul(e, self.pow));
                self.elems.push_back(elem);
            }
        }
        self.pow = field_mul(self.pow, HASH_BASE);
    }

    /// Takes the element at `end`: O(1).
    pub fn pop(&mut self, end: End) -> Option<Bytes> {
        let elem = match end {
            End::Left => self.elems.pop_front()?,
            End::Right => self.elems.pop_back()?,
        };
        let e = element_hash(&elem);
        self.pow = field_mul(self.pow, HASH_BASE_INV);
        self.sum = match end {
            End::Left => field_mul(field_sub(self.sum, e), HASH_BASE_INV),
            End::Right => field_sub(self.sum, field_mul(e, self.pow)),
        };
        self.encoded_bytes -= encoded_len(&elem);
        Some(elem)
    }

    /// Replaces the element at position `i` (which must exist) and returns the old one:
    /// O(log i) for the hash.
    pub fn set(&mut self, i: usize, elem: Bytes) -> Bytes {
        assert!(i < self.elems.len());
        let weight = field_pow(HASH_BASE, i as u64);
        let delta = field_sub(element_hash(&elem), element_hash(&self.elems[i]));
        self.sum = field_add(self.sum, field_mul(delta, weight));
        self.encoded_bytes = self.encoded_bytes + encoded_len(&elem) - encoded_len(&self.elems[i]);
        std::mem::replace(&mut self.elems[i], elem)
    }

    /// Inserts `elem` before position `i` (`len` appends): O(n), the hash recomputed.
    pub fn insert(&mut self, i: usize, elem: Bytes) {
        assert!(i <= self.elems.len());
        self.elems.insert(i, elem);
        self.rehash();
    }

    /// Keeps the elements `keep` says yes to (`LREM`): O(n), the hash recomputed.
    pub fn retain(&mut self, keep: impl FnMut(&Bytes) -> bool) {
        self.elems.retain(keep);
        self.rehash();
    }

    /// Recomputes size and hash from the elements.
    fn rehash(&mut self) {
        let elems = std::mem::take(&mut self.elems);
        *self = List::from_elements(elems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(elems: &[&str]) -> List {
        List::from_elements(elems.iter().map(|e| Bytes::copy_from_slice(e.as_bytes())))
    }

    /// Size and hash as a list built from scratch has them: what every change must keep.
    fn assert_current(l: &List) {
        let fresh = List::from_elements(l.iter().cloned());
        assert_eq!(l.value_hash(), fresh.value_hash());
        assert_eq!((l.sum, l.pow), (fresh.sum, fresh.pow));
        assert_eq!(l.encoded_bytes(), l.encode().len());
        assert_eq!(l.value_hash(), value_hash_of_encoded(&l.encode()));
    }

    #[test]
    fn field_arithmetic_is_mod_the_prime() {
        assert_eq!(field_reduce(FIELD_PRIME), 0);
        assert_eq!(field_reduce(u64::MAX), u64::MAX % FIELD_PRIME);
        assert_eq!(field_mul(FIELD_PRIME - 1, FIELD_PRIME - 1), 1, "(-1)² = 1");
        assert_eq!(field_sub(0, 1), FIELD_PRIME - 1);
        assert_eq!(field_add(FIELD_PRIME - 1, 1), 0);
        let x = 0x1234_5678_9abc_def0 % FIELD_PRIME;
        let y = 0x0fed_cba9_8765_4321 % FIELD_PRIME;
        let want = ((x as u128 * y as u128) % FIELD_PRIME as u128) as u64;
        assert_eq!(field_mul(x, y), want);
        assert_eq!(
            field_pow(HASH_BASE, 3),
            field_mul(HASH_BASE, field_mul(HASH_BASE, HASH_BASE))
        );
    }

    #[test]
    fn pushes_and_pops_keep_size_and_hash_current() {
        let mut l = List::new();
        let empty = l.value_hash();
        for (i, end) in [End::Left, End::Right, End::Right, End::Left, End::Left]
            .into_iter()
            .enumerate()
        {
            l.push(end, Bytes::from(vec![i as u8; i * 70]));
            assert_current(&l);
        }
        assert_eq!(l.len(), 5);
        assert_eq!(l.get(0).map(|e| e.len()), Some(4 * 70));
        assert_eq!(l.pop(End::Right).map(|e| e.len()), Some(2 * 70));
        assert_current(&l);
        assert_eq!(l.pop(End::Left).map(|e| e.len()), Some(4 * 70));
        assert_current(&l);
        while l.pop(End::Left).is_some() {
            assert_current(&l);
        }
        assert_eq!(l.pop(End::Right), None);
        assert_eq!((l.value_hash(), l.encoded_bytes()), (empty, 0));
    }

    #[test]
    fn the_hash_follows_the_elements_not_how_they_came() {
        let abc = of(&["a", "b", "c"]);
        let mut built = List::new();
        built.push(End::Left, Bytes::from_static(b"b"));
        built.push(End::Right, Bytes::from_static(b"x"));
        built.push(End::Left, Bytes::from_static(b"a"));
        built.set(2, Bytes::from_static(b"c"));
        assert_current(&built);
        assert_eq!(built, abc);
        assert_eq!(built.value_hash(), abc.value_hash());
        // Order, content and length all count.
        for other in [
            of(&["c", "b", "a"]),
            of(&["a", "b"]),
            of(&["a", "b", "c", ""]),
            of(&["a", "bc"]),
        ] {
            assert_ne!(other.value_hash(), abc.value_hash(), "{other:?}");
        }
    }

    #[test]
    fn edits_in_the_middle_keep_size_and_hash_current() {
        let mut l = of(&["a", "b", "c", "b"]);
        l.insert(1, Bytes::from_static(b"new"));
        assert_current(&l);
        assert_eq!(l, of(&["a", "new", "b", "c", "b"]));
        l.insert(5, Bytes::from_static(b"end"));
        assert_eq!(l, of(&["a", "new", "b", "c", "b", "end"]));
        assert_eq!(
            l.set(3, Bytes::from(vec![9u8; 200])),
            Bytes::from_static(b"c")
        );
        assert_current(&l);
        l.retain(|e| e[..] != b"b"[..]);
        assert_current(&l);
        assert_eq!(l.len(), 4);
        assert_eq!(l.slice(1, 2).count(), 2);
        assert_eq!(l.slice(3, 10).count(), 1);
        assert_eq!(l.slice(9, 1).count(), 0);
        let back = List::decode(&l.encode());
        assert_eq!(back, l);
        assert_eq!(List::decode_shared(&Bytes::from(l.encode())), l);
    }

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
        let l = of(&["a", "b", "c", "1", "2", "3", "c", "c"]);
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
        assert_eq!(positions(&List::new(), b"c", -1, 0, 0), Vec::<usize>::new());
    }
}
