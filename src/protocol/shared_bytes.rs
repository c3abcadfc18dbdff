//! Decoding a message's keys and values as slices of one buffer instead of an allocation
//! each.
//!
//! A follower decodes every accept it receives, and a leader every request forwarded to
//! it: with `bytes`' own `Deserialize`, each key and each value of a batch became an
//! allocation of its own (`Bytes::copy_from_slice`), freed again when the slot left the
//! log: two `malloc`s and two `free`s per SET, the largest part of a follower's CPU under
//! pipelined SETs. A message decoded from a [`Bytes`] inside [`decode_sharing`] gives the
//! fields marked `#[serde(deserialize_with = "shared_bytes::deserialize")]` slices of that
//! buffer: a reference count each, no allocation, no copy.
//!
//! Only fields whose bytes are consumed or copied soon are marked (a GET's key, a SET's key
//! and value: the map copies them into its own item), so a slice never pins its message
//! for long: a message lives as long as its slot is in the log, as its requests did.
//! Outside [`decode_sharing`] (a WAL record at recovery, a snapshot, a test) and for bytes
//! not borrowed from its buffer, a marked field is copied, as `bytes` does.

use bytes::Bytes;
use serde::de::{Deserializer, SeqAccess, Visitor};
use std::cell::RefCell;

thread_local! {
    /// The buffer [`decode_sharing`] is decoding from.
    static SOURCE: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Runs `decode`, which decodes from `buf` (borrowing from it), with `buf` as the buffer
/// the marked fields slice; puts back whatever buffer an outer call had set, also if
/// `decode` unwinds.
pub fn decode_sharing<T>(buf: &Bytes, decode: impl FnOnce(&[u8]) -> T) -> T {
    struct Restore(Option<Bytes>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            SOURCE.with(|s| *s.borrow_mut() = outer);
        }
    }
    let outer = SOURCE.with(|s| s.replace(Some(buf.clone())));
    let _restore = Restore(outer);
    decode(buf)
}

/// A slice of the buffer being decoded if `bytes` lies in it, else a copy.
fn share(bytes: &[u8]) -> Bytes {
    SOURCE.with(|s| match s.borrow().as_ref() {
        Some(buf) if within(buf, bytes) => buf.slice_ref(bytes),
        _ => Bytes::copy_from_slice(bytes),
    })
}

/// Whether `part` lies inside `buf` in memory (an empty `part` counts only at an address
/// inside it or at its end, as `Bytes::slice_ref` wants).
fn within(buf: &[u8], part: &[u8]) -> bool {
    let (start, end) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
    let p = part.as_ptr() as usize;
    start <= p && p.saturating_add(part.len()) <= end
}

/// `deserialize_with` for a [`Bytes`] field: see the module doc. Accepts what `bytes`'
/// own `Deserialize` accepts (bytes, a byte buffer, a string, a sequence of bytes).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
    struct SharedVisitor;
    impl<'de> Visitor<'de> for SharedVisitor {
        type Value = Bytes;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Bytes, E> {
            Ok(share(v))
        }

        fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }

        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Bytes, E> {
            Ok(share(v.as_bytes()))
        }

        fn visit_str<E>(self, v: &str) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v.as_bytes()))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
            let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                v.push(b);
            }
            Ok(Bytes::from(v))
        }
    }
    // `deserialize_bytes`, not `_byte_buf`: postcard lends the borrowed bytes only to the former.
    d.deserialize_bytes(SharedVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pair(
        #[serde(deserialize_with = "deserialize")] Bytes,
        #[serde(deserialize_with = "deserialize")] Bytes,
        u64,
    );

    fn encoded() -> Bytes {
        let p = Pair(Bytes::from_static(b"key"), Bytes::from(vec![7; 300]), 9);
        Bytes::from(postcard::to_allocvec(&p).expect("encodes"))
    }

    fn inside(buf: &Bytes, b: &Bytes) -> bool {
        within(buf, b)
    }

    #[test]
    fn fields_are_slices_of_the_buffer_inside_decode_sharing() {
        let buf = encoded();
        let p: Pair = decode_sharing(&buf, |b| postcard::from_bytes(b)).expect("decodes");
        assert_eq!(
            p,
            Pair(Bytes::from_static(b"key"), Bytes::from(vec![7; 300]), 9)
        );
        assert!(
            inside(&buf, &p.0) && inside(&buf, &p.1),
            "not slices of the buffer"
        );
        // The slices keep the buffer alive once the caller's handle is gone.
        drop(buf);
        assert_eq!(&p.1[..], &[7; 300][..]);
    }

    #[test]
    fn fields_are_copies_outside_decode_sharing_and_after_it() {
        let buf = encoded();
        let p: Pair = postcard::from_bytes(&buf).expect("decodes");
        assert!(!inside(&buf, &p.0) && !inside(&buf, &p.1));
        // A buffer other than the one being shared is copied from too.
        let other = encoded();
        let q: Pair = decode_sharing(&buf, |_| postcard::from_bytes(&other)).expect("decodes");
        assert!(!inside(&buf, &q.1) && !inside(&other, &q.1));
        // The source is gone after the call, also after a nested one.
        let r: Pair = decode_sharing(&buf, |b| {
            let inner: Pair = decode_sharing(&other, |o| postcard::from_bytes(o)).expect("inner");
            assert!(inside(&other, &inner.1));
            postcard::from_bytes(b)
        })
        .expect("decodes");
        assert!(inside(&buf, &r.1), "the outer source was not put back");
        let s: Pair = postcard::from_bytes(&buf).expect("decodes");
        assert!(!inside(&buf, &s.1), "a source outlived its call");
    }

    #[test]
    fn other_encodings_bytes_accepts_still_decode() {
        let json = serde_json::to_string(&Pair(Bytes::from_static(b"ab"), Bytes::new(), 1))
            .expect("encodes");
        let p: Pair = serde_json::from_str(&json).expect("a sequence of bytes decodes");
        assert_eq!(p, Pair(Bytes::from_static(b"ab"), Bytes::new(), 1));
    }
}
