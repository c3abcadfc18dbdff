//! Values of reads answered at once, copied into a shared buffer instead of each holding
//! its item.
//!
//! A read's value is a [`Bytes`] that holds the item it came from
//! ([`crate::protocol::item::Item::value_bytes`]): no copy, but `Bytes::from_owner` boxes
//! its owner, one allocation and free per value, 2.4 % of a leader serving pipelined lease
//! `GET`s in its drop alone. A read answered at once (`Core::read_now`) is encoded and
//! dropped within the pipeline it came in, so its value is copied instead into a chunk
//! many values share ([`copy`]): a copy of a small value and a reference count, one
//! allocation per chunk. A chunk lives until the last value cut from it is dropped, so a
//! value kept long pins at most [`CHUNK_BYTES`]; values above [`COPY_MAX_BYTES`] keep
//! their item.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

use super::kv::{Command, Kv, Reply};

/// The chunk values are copied into; a new one once a value does not fit.
pub const CHUNK_BYTES: usize = 16 * 1024;

/// Larger values are not copied.
pub const COPY_MAX_BYTES: usize = 512;

thread_local! {
    /// What is left of the current chunk.
    static CHUNK: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `value` copied into the shared chunk, or `None` if it is larger than
/// [`COPY_MAX_BYTES`].
pub fn copy(value: &[u8]) -> Option<Bytes> {
    if value.len() > COPY_MAX_BYTES {
        return None;
    }
    CHUNK.with(|c| {
        let mut chunk = c.borrow_mut();
        if chunk.capacity() - chunk.len() < value.len() {
            // The rest of the old chunk is dropped; the values cut from it keep it.
            *chunk = BytesMut::with_capacity(CHUNK_BYTES);
        }
        chunk.extend_from_slice(value);
        Some(chunk.split().freeze())
    })
}

/// [`Kv::read`] for a reply sent at once and dropped (`Core::read_now`): a `GET`'s
/// value is copied into the shared chunk instead of a `Bytes` that holds its item.
pub fn read_to_send(kv: &Kv, cmd: &Command) -> Reply {
    kv.read_with(cmd, |i| copy(i.value()).unwrap_or_else(|| i.value_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::kv::Request;

    /// What a read sent at once answers is what `Kv::read` answers: for a string (its
    /// value now from a chunk), a large string, a list, an absent key and a multi-key read.
    #[test]
    fn reads_to_send_answer_as_reads_do() {
        let mut kv = Kv::new(8, 8);
        let big = Bytes::from(vec![b'v'; COPY_MAX_BYTES + 1]);
        let writes = [
            Command::Set(Bytes::from_static(b"s"), Bytes::from_static(b"value")),
            Command::Set(Bytes::from_static(b"big"), big),
            Command::Push {
                key: Bytes::from_static(b"l"),
                values: vec![Bytes::from_static(b"x")],
                end: crate::protocol::list::End::Left,
                existing: false,
            },
        ];
        for (seq, cmd) in (1..).zip(writes) {
            let req = Request {
                client: 1,
                seq,
                ack_floor: seq,
                cmd,
            };
            kv.apply(seq, &req);
        }
        for cmd in [
            Command::Get(Bytes::from_static(b"s")),
            Command::Get(Bytes::from_static(b"big")),
            Command::Get(Bytes::from_static(b"l")),
            Command::Get(Bytes::from_static(b"absent")),
            Command::MGet(vec![Bytes::from_static(b"s"), Bytes::from_static(b"l")]),
        ] {
            assert_eq!(read_to_send(&kv, &cmd), kv.read(&cmd), "{cmd:?}");
        }
        let Reply::Value(Some(sent)) = read_to_send(&kv, &Command::Get(Bytes::from_static(b"s")))
        else {
            panic!("a string's value");
        };
        let item = kv.get(b"s").expect("set").value().as_ptr();
        assert_ne!(sent.as_ptr(), item, "copied, not the item's bytes");
    }

    /// Copied values are their bytes and share chunks; a value too large is refused.
    #[test]
    fn small_values_are_copied_into_shared_chunks() {
        let a = copy(b"first").unwrap();
        let b = copy(b"second").unwrap();
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        // Cut one after the other from one chunk.
        assert_eq!(b.as_ptr() as usize, a.as_ptr() as usize + a.len());
        assert!(copy(&[7; COPY_MAX_BYTES + 1]).is_none());
        let big = vec![9; COPY_MAX_BYTES];
        let many: Vec<Bytes> = (0..2 * CHUNK_BYTES / COPY_MAX_BYTES)
            .map(|_| copy(&big).unwrap())
            .collect();
        assert!(
            many.iter().all(|v| v[..] == big[..]),
            "a new chunk keeps values whole"
        );
        assert_eq!(
            (&a[..], &b[..]),
            (&b"first"[..], &b"second"[..]),
            "old values stay"
        );
    }
}
