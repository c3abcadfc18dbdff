//! One stored key: its key, value and version in a single shared allocation.
//!
//! The map holds one pointer per key; the pointer leads to a reference count, the version,
//! the length, and the bytes `[key length as LEB128][key][value]`. At 1M keys of 11 + 100
//! bytes that is 136 bytes in one 144-byte malloc chunk, where separate key and value
//! buffers with their handles took 307 bytes per key (`cargo bench --bench kv_memory`).
//! Sharing (an atomic count) is what lets a snapshot freeze the whole map by cloning
//! pointers, and lets a read reply carry the value without copying it.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use triomphe::ThinArc;

use super::types::Slot;

/// A value and the slot that last wrote it, borrowed from where it is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryRef<'a> {
    /// The value.
    pub value: &'a [u8],
    /// The slot whose command last wrote it.
    pub version: Slot,
}

/// A key with its value and version, immutable once shared.
#[derive(Clone)]
pub struct Item(ThinArc<Slot, u8>);

/// Bytes of the LEB128 prefix for a key of `len` bytes.
fn prefix_len(len: usize) -> usize {
    let bits = usize::BITS - len.leading_zeros();
    (bits as usize).div_ceil(7).max(1)
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

impl Item {
    /// Prefetches the item's allocation (see [`prefetch`]).
    #[inline]
    pub fn prefetch(&self) {
        prefetch(self.0.heap_ptr());
    }

    /// Copies a key and value into one new allocation.
    pub fn new(key: &[u8], value: &[u8], version: Slot) -> Item {
        let prefix = prefix_len(key.len());
        let total = prefix + key.len() + value.len();
        let mut arc = ThinArc::from_header_and_iter(version, std::iter::repeat_n(0u8, total));
        arc.with_arc_mut(|a| {
            let Some(inner) = triomphe::Arc::get_mut(a) else {
                unreachable!("a new allocation has one owner");
            };
            let bytes = inner.slice_mut();
            write_prefix(key.len(), &mut bytes[..prefix]);
            bytes[prefix..prefix + key.len()].copy_from_slice(key);
            bytes[prefix + key.len()..].copy_from_slice(value);
        });
        Item(arc)
    }

    /// Where the key starts and how long it is.
    fn key_span(&self) -> (usize, usize) {
        let bytes = &self.0.slice;
        let mut len = 0usize;
        for (i, b) in bytes.iter().enumerate() {
            len |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return (i + 1, len);
            }
        }
        unreachable!("an item always starts with a complete length prefix")
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        let (at, len) = self.key_span();
        &self.0.slice[at..at + len]
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        let (at, len) = self.key_span();
        &self.0.slice[at + len..]
    }

    /// The slot that last wrote this key.
    pub fn version(&self) -> Slot {
        self.0.header.header
    }

    /// The value and version, borrowed.
    pub fn entry_ref(&self) -> EntryRef<'_> {
        EntryRef {
            value: self.value(),
            version: self.version(),
        }
    }

    /// The value as `Bytes` that share this allocation (no copy).
    pub fn value_bytes(&self) -> Bytes {
        Bytes::from_owner(ValueOf(self.clone()))
    }

    /// The key as `Bytes` that share this allocation (no copy).
    pub fn key_bytes(&self) -> Bytes {
        Bytes::from_owner(KeyOf(self.clone()))
    }

    /// Overwrites value and version in place when nobody else holds this item and the
    /// new value has the old one's length (no allocation); false when it cannot.
    pub fn overwrite(&mut self, value: &[u8], version: Slot) -> bool {
        let (at, len) = self.key_span();
        if self.0.slice.len() != at + len + value.len() {
            return false;
        }
        self.0.with_arc_mut(|a| match triomphe::Arc::get_mut(a) {
            Some(inner) => {
                *inner.header_mut() = version;
                inner.slice_mut()[at + len..].copy_from_slice(value);
                true
            }
            None => false,
        })
    }

    /// Bytes of key and value.
    pub fn payload_len(&self) -> usize {
        let (at, _) = self.key_span();
        self.0.slice.len() - at
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
            .field("value_len", &self.value().len())
            .finish()
    }
}

impl PartialEq for Item {
    fn eq(&self, other: &Item) -> bool {
        self.version() == other.version() && self.0.slice == other.0.slice
    }
}

impl Eq for Item {}

/// The wire form: `(version, key, value)`, key and value as byte strings.
impl Serialize for Item {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (
            self.version(),
            serde_bytes::Bytes::new(self.key()),
            serde_bytes::Bytes::new(self.value()),
        )
            .serialize(s)
    }
}

#[derive(Deserialize)]
struct ItemWire<'a>(
    Slot,
    #[serde(borrow, with = "serde_bytes")] Cow<'a, [u8]>,
    #[serde(borrow, with = "serde_bytes")] Cow<'a, [u8]>,
);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Item, D::Error> {
        // Borrowed from the frame where the format allows: one copy, into the item.
        let ItemWire(version, key, value) = ItemWire::deserialize(d)?;
        Ok(Item::new(&key, &value, version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_for_every_prefix_length() {
        for key_len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let key: Vec<u8> = (0..key_len).map(|i| (i % 251) as u8).collect();
            let item = Item::new(&key, b"value", 7);
            assert_eq!(item.key(), &key[..], "key of {key_len} bytes");
            assert_eq!(item.value(), b"value");
            assert_eq!(item.version(), 7);
            assert_eq!(item.payload_len(), key_len + 5);
        }
    }

    #[test]
    fn overwrite_in_place_only_when_unshared_and_same_length() {
        let mut item = Item::new(b"k", b"abc", 1);
        assert!(item.overwrite(b"xyz", 2));
        assert_eq!((item.value(), item.version()), (&b"xyz"[..], 2));
        assert!(!item.overwrite(b"longer", 3), "length differs");
        let shared = item.clone();
        assert!(!item.overwrite(b"new", 4), "a clone holds it");
        assert_eq!(shared.value(), b"xyz");
        let bytes = item.value_bytes();
        drop(shared);
        assert!(!item.overwrite(b"new", 4), "a reply's Bytes hold it");
        assert_eq!(&bytes[..], b"xyz");
        drop(bytes);
        assert!(item.overwrite(b"new", 4));
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
    }
}
