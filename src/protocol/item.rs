//! One stored key: its key, value and version in a single shared allocation.
//!
//! The map holds one pointer per key; the pointer leads to a reference count, the version,
//! a list's pointer, the length, and the bytes `[key length as LEB128][key][value]`. At 1M
//! keys of 11 + 100 bytes that is 144 bytes in one 160-byte malloc chunk: 179 bytes per
//! key with the map's table, where separate key and value buffers with their handles took
//! 307 (`cargo bench --bench kv_memory`; 163 before the list pointer, which crossed a
//! malloc size class at this value size).
//! Sharing (an atomic count) is what lets a snapshot freeze the whole map by cloning
//! pointers, and lets a read reply carry the value without copying it.
//!
//! A list's elements live beside the version, in a [`List`] the list commands change in
//! place (copied first if a snapshot still shares the item); its allocation holds only
//! the key. The pointer to it costs every item 8 bytes (an enum of a string and a list
//! pointer would cost the same in the map's table; results/list-cost-20261203-o1.md).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use triomphe::ThinArc;

use super::list::List;
use super::types::Slot;

/// What a key holds: the type `TYPE` names, which decides the commands that work on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A byte string (`SET`, `GET`, counters).
    #[default]
    String,
    /// A list of byte strings, held as a [`List`] (see [`super::list`]).
    List,
}

impl Kind {
    /// The name `TYPE` answers.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::List => "list",
        }
    }
}

/// A value as it is kept: bytes (a string, or a list encoded where it travels), or a
/// list held as elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'a> {
    /// A string, or an encoded list (the entry's kind says which).
    Bytes(&'a [u8]),
    /// A list's elements.
    List(&'a List),
}

/// A value and the slot that last wrote it, borrowed from where it is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// The value.
    pub value: ValueRef<'a>,
    /// The slot whose command last wrote it.
    pub version: Slot,
    /// What the value is.
    pub kind: Kind,
}

impl<'a> EntryRef<'a> {
    /// A string value.
    pub fn string(value: &'a [u8], version: Slot) -> EntryRef<'a> {
        EntryRef {
            value: ValueRef::Bytes(value),
            version,
            kind: Kind::String,
        }
    }

    /// The hash that stands for the value in digests: xxh3 of a string, a list's
    /// [`List::value_hash`] (the same number from its elements or its encoded form).
    pub fn value_hash(&self) -> u64 {
        match (self.value, self.kind) {
            (ValueRef::List(l), _) => l.value_hash(),
            (ValueRef::Bytes(b), Kind::List) => super::list::value_hash_of_encoded(b),
            (ValueRef::Bytes(b), Kind::String) => xxhash_rust::xxh3::xxh3_64(b),
        }
    }

    /// True when this and `other` hold the same value of the same kind.
    pub fn same_value(&self, other: &EntryRef<'_>) -> bool {
        if self.kind != other.kind {
            return false;
        }
        match (self.value, other.value) {
            (ValueRef::Bytes(a), ValueRef::Bytes(b)) => a == b,
            (ValueRef::List(a), ValueRef::List(b)) => a == b,
            (ValueRef::List(l), ValueRef::Bytes(b)) | (ValueRef::Bytes(b), ValueRef::List(l)) => {
                let mut decoded = super::list::elements(b);
                l.iter().all(|e| decoded.next() == Some(&e[..])) && decoded.next().is_none()
            }
        }
    }
}

/// What an item holds beside its bytes: the version, and a list's elements.
#[derive(Clone, PartialEq, Eq)]
struct Head {
    version: Slot,
    list: Option<Box<List>>,
}

/// A key with its value and version, immutable once shared. The prefix before the key
/// holds `key length × 2 + kind` (0 a string, 1 a list), so the kind costs no byte.
#[derive(Clone)]
pub struct Item(ThinArc<Head, u8>);

/// Bytes of the LEB128 prefix for a key of `len` bytes.
fn prefix_len(len: usize) -> usize {
    let bits = usize::BITS - (len << 1).leading_zeros();
    (bits as usize).div_ceil(7).max(1)
}

/// The prefix's number for a key of `len` bytes and kind `kind`.
fn prefix_value(len: usize, kind: Kind) -> usize {
    len << 1 | usize::from(kind == Kind::List)
}

thread_local! {
    /// Set while decoding the wire form of snapshot files of format 4 and older, whose
    /// items had no kind (every one a string): see [`Item::with_kindless_wire`].
    static KINDLESS_WIRE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Writes `len` as LEB128 into `out` (exactly `prefix_len(len)` bytes).
fn write_prefix(mut len: usize, out: &mut [u8]) {
    for b in out.iter_mut() {
        *b = (len & 0x7f) as u8 | 0x80;
        len >>= 7;
    }
    if let Some(last) = out.last_mut() {
        *last &= 0x7f;
    }
}

/// Asks the CPU to bring the memory at `p` into cache, without reading it (a hint only: no
/// effect on other architectures). Applying a batch prefetches what every key's write will
/// touch first, so the cache misses overlap instead of stalling one after another.
#[inline]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and has no effect the program can observe.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Bytes of an item's allocation before its `[prefix][key][value]` bytes: the reference
/// count, the [`Head`] and the bytes' length, in `ThinArc`'s layout
/// (`tests::the_bytes_start_after_the_header` fails if that layout moves).
pub const HEADER_BYTES: usize = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Head>();

/// A cache line: what one [`prefetch`] brings.
const LINE_BYTES: usize = 64;

impl Item {
    /// Prefetches the lines that hold the first `bytes` bytes of the item's allocation
    /// (see [`prefetch`]), from the pointer alone: reading the item's length would be the
    /// miss the prefetch is there to hide. An allocation need not start a line (a 52-byte
    /// item sits in a 56-byte malloc block), so `bytes` can span one line more than
    /// `bytes / 64`. How many bytes a read or write touches is the caller's
    /// (`kv/prefetch.rs`).
    #[inline]
    pub fn prefetch(&self, bytes: usize) {
        let start = self.0.heap_ptr().cast::<u8>();
        for at in (0..bytes).step_by(LINE_BYTES) {
            prefetch(start.wrapping_add(at));
        }
        // The last line, which the steps miss when `start` is not at a line's start.
        prefetch(start.wrapping_add(bytes.saturating_sub(1)));
    }

    /// Copies a key and string value into one new allocation.
    pub fn new(key: &[u8], value: &[u8], version: Slot) -> Item {
        Item::with_kind(key, value, version, Kind::String)
    }

    /// Copies a key and value of the given kind into one new allocation (a list's value
    /// encoded, decoded here).
    pub fn with_kind(key: &[u8], value: &[u8], version: Slot, kind: Kind) -> Item {
        match kind {
            Kind::String => Item::build(key, value, version, None),
            Kind::List => Item::with_list(key, List::decode(value), version),
        }
    }

    /// A key holding a list.
    pub fn with_list(key: &[u8], list: List, version: Slot) -> Item {
        Item::build(key, &[], version, Some(Box::new(list)))
    }

    /// One allocation for the key and a string's value, with the list if there is one.
    fn build(key: &[u8], value: &[u8], version: Slot, list: Option<Box<List>>) -> Item {
        assert!(list.is_none() || value.is_empty());
        let kind = if list.is_some() {
            Kind::List
        } else {
            Kind::String
        };
        let prefix = prefix_len(key.len());
        let total = prefix + key.len() + value.len();
        let head = Head { version, list };
        let mut arc = ThinArc::from_header_and_iter(head, std::iter::repeat_n(0u8, total));
        arc.with_arc_mut(|a| {
            let Some(inner) = triomphe::Arc::get_mut(a) else {
                unreachable!("a new allocation has one owner");
            };
            let bytes = inner.slice_mut();
            write_prefix(prefix_value(key.len(), kind), &mut bytes[..prefix]);
            bytes[prefix..prefix + key.len()].copy_from_slice(key);
            bytes[prefix + key.len()..].copy_from_slice(value);
        });
        Item(arc)
    }

    /// Where the key starts and the prefix's number (key length × 2 + kind).
    fn prefix(&self) -> (usize, usize) {
        let bytes = &self.0.slice;
        let mut n = 0usize;
        for (i, b) in bytes.iter().enumerate() {
            n |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return (i + 1, n);
            }
        }
        unreachable!("an item always starts with a complete length prefix")
    }

    /// Where the key starts and how long it is.
    fn key_span(&self) -> (usize, usize) {
        let (at, n) = self.prefix();
        (at, n >> 1)
    }

    /// What the value is.
    pub fn kind(&self) -> Kind {
        if self.prefix().1 & 1 == 1 {
            Kind::List
        } else {
            Kind::String
        }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        let (at, len) = self.key_span();
        &self.0.slice[at..at + len]
    }

    /// A string's value (empty for a list: see [`Item::list`]).
    pub fn value(&self) -> &[u8] {
        let (at, len) = self.key_span();
        &self.0.slice[at + len..]
    }

    /// A list's elements (`None` for a string).
    pub fn list(&self) -> Option<&List> {
        self.0.header.header.list.as_deref()
    }

    /// The slot that last wrote this key.
    pub fn version(&self) -> Slot {
        self.0.header.header.version
    }

    /// The value and version, borrowed.
    pub fn entry_ref(&self) -> EntryRef<'_> {
        let value = match self.list() {
            Some(l) => ValueRef::List(l),
            None => ValueRef::Bytes(self.value()),
        };
        EntryRef {
            value,
            version: self.version(),
            kind: self.kind(),
        }
    }

    /// A string's value as `Bytes` that share this allocation (no copy; empty for a list).
    pub fn value_bytes(&self) -> Bytes {
        Bytes::from_owner(ValueOf(self.clone()))
    }

    /// The value as bytes: a string's shared, a list's encoded (a copy, O(n)): what
    /// travels where a value must.
    pub fn wire_value(&self) -> Bytes {
        match self.list() {
            Some(l) => Bytes::from(l.encode()),
            None => self.value_bytes(),
        }
    }

    /// Changes a list's elements with `f` and sets the version, in place when nobody else
    /// holds this item, else on a copy that replaces it (a snapshot keeps the old one);
    /// `None` (and no change) for a string.
    pub fn edit_list<R>(&mut self, version: Slot, f: impl FnOnce(&mut List) -> R) -> Option<R> {
        self.list()?;
        if !self.0.with_arc(|a| a.is_unique()) {
            let copy = Item::with_list(self.key(), self.list()?.clone(), version);
            *self = copy;
        }
        self.0.with_arc_mut(|a| {
            let Some(inner) = triomphe::Arc::get_mut(a) else {
                unreachable!("an item made unique has one owner");
            };
            let head = inner.header_mut();
            head.version = version;
            head.list.as_deref_mut().map(f)
        })
    }

    /// The key as `Bytes` that share this allocation (no copy).
    pub fn key_bytes(&self) -> Bytes {
        Bytes::from_owner(KeyOf(self.clone()))
    }

    /// Overwrites value and version in place when nobody else holds this item and the
    /// new value has the old one's length and kind (no allocation); false when it cannot.
    pub fn overwrite(&mut self, value: &[u8], version: Slot, kind: Kind) -> bool {
        let (at, len) = self.key_span();
        if self.0.slice.len() != at + len + value.len() || self.kind() != kind || kind == Kind::List
        {
            return false;
        }
        self.0.with_arc_mut(|a| match triomphe::Arc::get_mut(a) {
            Some(inner) => {
                inner.header_mut().version = version;
                inner.slice_mut()[at + len..].copy_from_slice(value);
                true
            }
            None => false,
        })
    }

    /// Bytes of key and value (a list's encoded size).
    pub fn payload_len(&self) -> usize {
        let (at, _) = self.key_span();
        self.0.slice.len() - at + self.list().map_or(0, List::encoded_bytes)
    }
}

/// Owns an item for `Bytes` that show its value.
struct ValueOf(Item);

impl AsRef<[u8]> for ValueOf {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

/// Owns an item for `Bytes` that show its key.
struct KeyOf(Item);

impl AsRef<[u8]> for KeyOf {
    fn as_ref(&self) -> &[u8] {
        self.0.key()
    }
}

impl fmt::Debug for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("key", &Bytes::copy_from_slice(self.key()))
            .field("version", &self.version())
            .field("value_len", &(self.payload_len() - self.key().len()))
            .field("kind", &self.kind())
            .finish()
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Item) -> bool {
        self.version() == other.version()
            && self.0.slice == other.0.slice
            && self.list() == other.list()
    }
}

impl Eq for Item {}

/// The wire form: `(version, key, value, kind)`, key and value as byte strings (snapshot
/// files of format 4 and older: `(version, key, value)`, see [`Item::with_kindless_wire`]).
impl Serialize for Item {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded = self.list().map(List::encode);
        let value = encoded.as_deref().unwrap_or(self.value());
        if KINDLESS_WIRE.get() {
            return (
                self.version(),
                serde_bytes::Bytes::new(self.key()),
                serde_bytes::Bytes::new(value),
            )
                .serialize(s);
        }
        (
            self.version(),
            serde_bytes::Bytes::new(self.key()),
            serde_bytes::Bytes::new(value),
            self.kind(),
        )
            .serialize(s)
    }
}

#[derive(Deserialize)]
struct ItemWire<'a>(
    Slot,
    #[serde(borrow, with = "serde_bytes")] Cow<'a, [u8]>,
    #[serde(borrow, with = "serde_bytes")] Cow<'a, [u8]>,
    Kind,
);

#[derive(Deserialize)]
struct KindlessItemWire<'a>(
    Slot,
    #[serde(borrow, with = "serde_bytes")] Cow<'a, [u8]>,
    #[serde(borrow, with = "serde_bytes")] Cow<'a, [u8]>,
);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Item, D::Error> {
        // Borrowed from the frame where the format allows: one copy, into the item.
        if KINDLESS_WIRE.get() {
            let KindlessItemWire(version, key, value) = KindlessItemWire::deserialize(d)?;
            return Ok(Item::new(&key, &value, version));
        }
        let ItemWire(version, key, value, kind) = ItemWire::deserialize(d)?;
        Ok(Item::with_kind(&key, &value, version, kind))
    }
}

impl Item {
    /// Runs `f` reading (and writing) items in the wire form of snapshot files of format
    /// 4 and older, which had no kind (there were only strings; a list written this way
    /// would read back as a string: only tests write it).
    pub fn with_kindless_wire<T>(f: impl FnOnce() -> T) -> T {
        KINDLESS_WIRE.set(true);
        let out = f();
        KINDLESS_WIRE.set(false);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::list::End;

    #[test]
    fn the_bytes_start_after_the_header() {
        for key_len in [0usize, 16, 200] {
            let item = Item::new(&vec![b'k'; key_len], b"value", 7);
            let start = item.0.heap_ptr().cast::<u8>();
            let key_at = item.key().as_ptr() as usize - start as usize;
            assert_eq!(
                key_at,
                HEADER_BYTES + prefix_len(key_len),
                "key of {key_len} bytes"
            );
        }
    }

    #[test]
    fn parts_round_trip_for_every_prefix_length() {
        for key_len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let key: Vec<u8> = (0..key_len).map(|i| (i % 251) as u8).collect();
            let item = Item::new(&key, b"value", 7);
            assert_eq!(item.key(), &key[..], "key of {key_len} bytes");
            assert_eq!(item.value(), b"value");
            assert_eq!(item.version(), 7);
            assert_eq!(item.payload_len(), key_len + 5);
            assert_eq!(item.kind(), Kind::String);
            let list = Item::with_kind(&key, b"\x05value", 7, Kind::List);
            assert_eq!((list.key(), list.value()), (&key[..], &b""[..]));
            assert_eq!(list.kind(), Kind::List);
            assert_eq!(list.list().map(List::encode), Some(b"\x05value".to_vec()));
            assert_eq!(list.payload_len(), key_len + 6);
            assert_eq!(list.wire_value(), Bytes::from_static(b"\x05value"));
        }
    }

    #[test]
    fn overwrite_in_place_only_when_unshared_and_same_length() {
        let mut item = Item::new(b"k", b"abc", 1);
        assert!(item.overwrite(b"xyz", 2, Kind::String));
        assert_eq!((item.value(), item.version()), (&b"xyz"[..], 2));
        assert!(
            !item.overwrite(b"longer", 3, Kind::String),
            "length differs"
        );
        assert!(!item.overwrite(b"abc", 3, Kind::List), "kind differs");
        let shared = item.clone();
        assert!(!item.overwrite(b"new", 4, Kind::String), "a clone holds it");
        assert_eq!(shared.value(), b"xyz");
        let bytes = item.value_bytes();
        drop(shared);
        assert!(
            !item.overwrite(b"new", 4, Kind::String),
            "a reply's Bytes hold it"
        );
        assert_eq!(&bytes[..], b"xyz");
        drop(bytes);
        assert!(item.overwrite(b"new", 4, Kind::String));
        assert_eq!(item.key_bytes(), Bytes::from_static(b"k"));
    }

    #[test]
    fn wire_form_round_trips() {
        let item = Item::new(b"key", b"value", 42);
        let bytes = postcard::to_stdvec(&item).unwrap();
        let back: Item = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, item);
        assert_eq!(back.key(), b"key");
        let json = serde_json::to_string(&item).unwrap();
        let back: Item = serde_json::from_str(&json).unwrap();
        assert_eq!(back, item);
        let list = Item::with_kind(b"key", b"\x01a", 42, Kind::List);
        let back: Item = postcard::from_bytes(&postcard::to_stdvec(&list).unwrap()).unwrap();
        assert_eq!(back.kind(), Kind::List);
        assert_eq!(back.list().map(List::encode), Some(b"\x01a".to_vec()));
        assert_eq!(back, list);
        assert_ne!(back, item, "a list is not the string of its encoding");
    }

    #[test]
    fn a_list_edits_in_place_unless_shared() {
        let mut item = Item::with_list(b"k", List::new(), 1);
        let pushed = item.edit_list(2, |l| {
            l.push(End::Right, Bytes::from_static(b"a"));
            l.len()
        });
        assert_eq!(pushed, Some(1));
        assert_eq!(item.version(), 2);
        let snapshot = item.clone();
        item.edit_list(3, |l| l.push(End::Left, Bytes::from_static(b"b")));
        assert_eq!(item.list().map(List::len), Some(2));
        assert_eq!(item.version(), 3);
        // The clone (a snapshot's) still sees the list as it was.
        assert_eq!(snapshot.list().map(List::len), Some(1));
        assert_eq!(snapshot.version(), 2);
        assert_eq!(item.key(), b"k");
        let mut string = Item::new(b"s", b"v", 1);
        assert_eq!(string.edit_list(2, |l| l.len()), None);
        assert_eq!(string.version(), 1);
    }

    #[test]
    fn kindless_wire_of_old_snapshot_files_reads_as_strings() {
        let old = postcard::to_stdvec(&(42u64, b"key".as_slice(), b"value".as_slice())).unwrap();
        let back: Item = Item::with_kindless_wire(|| postcard::from_bytes(&old)).unwrap();
        assert_eq!(
            (back.key(), back.value(), back.version()),
            (&b"key"[..], &b"value"[..], 42)
        );
        assert_eq!(back.kind(), Kind::String);
        assert!(
            postcard::from_bytes::<Item>(&old).is_err(),
            "the new form has a kind"
        );
    }
}
