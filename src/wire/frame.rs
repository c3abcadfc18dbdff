//! Peer frames: length, checksum, postcard payload.
//!
//! ```text
//! [len: u32 LE][xxh3-64 of payload: u64 LE][payload: len bytes of postcard]
//! ```
//!
//! The length comes first so a reader knows how much to wait for, and is checked against a
//! limit before anything is allocated; the checksum covers the payload so a corrupted or
//! misaligned stream is caught before postcard sees it. Encode and decode are pure: no I/O,
//! and no input makes them panic.

use crate::protocol::shared_bytes;
use bytes::Bytes;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use xxhash_rust::xxh3::xxh3_64;

/// Bytes in a frame header: the u32 length and the u64 checksum.
pub const FRAME_HEADER_BYTES: usize = 4 + 8;

/// Payloads this long or longer are decoded from one copy of theirs that their keys and
/// values share ([`shared_bytes`]); shorter ones (votes, heartbeats, a lone small command)
/// are decoded as they are, with no copy a message without keys would waste.
pub const SHARED_PAYLOAD_BYTES_MIN: usize = 128;

/// The largest payload the u32 length field can describe.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = u32::MAX as usize;

/// Version of the peer protocol spoken after the [`Hello`]; bumped on incompatible changes.
/// Version 2 added the handshake's nonce, [`Challenge`](super::auth::Challenge) and
/// [`Proof`](super::auth::Proof); version 3 places keys in shards by their hash tag (a
/// version-2 node would send a key with braces to another shard's group), gave state
/// machine items and entries their kind (string or list) and added the list commands;
/// version 4 added `PUBLISH` to the log's commands;
/// version 5 added the restart check's messages (`RestartQuery`, `RestartReport`: a peer
/// of version 4 could not decode them, and would not answer);
/// version 6 changed how a list's value enters entry digests (the Merkle tree's and
/// digest reads': a hash of its elements, `protocol::list`), so replicas of versions 5
/// and 6 would disagree on the digest of every list;
/// version 7 counts 64 bytes per element against a list's limit
/// (`protocol::list::LIST_ELEMENT_OVERHEAD_BYTES`): a replica of version 6 would apply a
/// push that one of version 7 refuses.
pub const PROTOCOL_VERSION: u16 = 7;

/// Frame limit used while reading a handshake frame ([`Hello`], `Challenge`, `Proof`): a
/// handshake is a few bytes, so a stranger cannot make the listener buffer a large "frame"
/// before it has identified itself.
pub const HELLO_FRAME_BYTES_MAX: usize = FRAME_HEADER_BYTES + 64;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header announces a frame larger than the reader accepts.
    #[error("frame of {frame_bytes} bytes exceeds the limit of {frame_bytes_max} bytes")]
    Oversized {
        /// Whole frame size announced by the header (header included).
        frame_bytes: u64,
        /// The limit it was checked against.
        frame_bytes_max: u64,
    },
    /// The payload does not hash to the checksum in the header.
    #[error(
        "frame checksum mismatch: header says {expected:#018x}, payload hashes to {actual:#018x}"
    )]
    Checksum {
        /// Checksum stored in the header.
        expected: u64,
        /// Checksum of the payload as received.
        actual: u64,
    },
    /// The checksum matched but the payload is not a valid message.
    #[error("frame payload does not decode: {0}")]
    Payload(postcard::Error),
    /// The payload decoded but left bytes unread, so sender and receiver disagree on the type.
    #[error("frame payload has {trailing_bytes} trailing bytes after the message")]
    TrailingBytes {
        /// Bytes left after the message.
        trailing_bytes: usize,
    },
    /// The message could not be serialized.
    #[error("message does not encode: {0}")]
    Encode(postcard::Error),
}

/// The first frame on every peer connection, sent by the side that dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Cluster the dialer belongs to; a mismatch means a misconfigured or foreign node.
    pub cluster_id: u64,
    /// Replica id of the dialer.
    pub from_replica: u8,
    /// Shard (Paxos group) of the dialer; it only ever dials the same shard of its peers.
    pub shard: u16,
    /// The dialer's [`PROTOCOL_VERSION`].
    pub protocol_version: u16,
    /// Fresh random bytes the acceptor's proof of the cluster key must cover.
    pub nonce: super::auth::Nonce,
}

/// Postcard output flavor that appends to a caller's Vec, so encoding a frame into a send
/// buffer needs no temporary allocation.
struct AppendToVec<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendToVec<'_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends `value`'s postcard encoding to `out` (no frame header). On error `out` may
/// hold part of it.
pub fn encode_payload<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> postcard::Result<()> {
    postcard::serialize_with_flavor(value, AppendToVec(out))
}

/// Appends one frame holding `msg` to `out`. On error `out` is left as it was.
pub fn encode<M: Serialize>(msg: &M, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let frame_start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    if let Err(e) = encode_payload(msg, out) {
        out.truncate(frame_start);
        return Err(FrameError::Encode(e));
    }
    seal(out, frame_start)
}

/// Fills in the header of the frame at `frame_start` in `out`, whose payload is every
/// byte after the header's room: what [`encode`] does once the payload is written. On
/// error `out` is cut back to `frame_start`.
pub fn seal(out: &mut Vec<u8>, frame_start: usize) -> Result<(), FrameError> {
    let payload_start = frame_start + FRAME_HEADER_BYTES;
    let payload_bytes = out.len() - payload_start;
    let Ok(len) = u32::try_from(payload_bytes) else {
        out.truncate(frame_start);
        return Err(FrameError::Oversized {
            frame_bytes: (FRAME_HEADER_BYTES + payload_bytes) as u64,
            frame_bytes_max: (FRAME_HEADER_BYTES + FRAME_PAYLOAD_BYTES_MAX) as u64,
        });
    };
    let checksum = xxh3_64(&out[payload_start..]);
    out[frame_start..frame_start + 4].copy_from_slice(&len.to_le_bytes());
    out[frame_start + 4..payload_start].copy_from_slice(&checksum.to_le_bytes());
    debug_assert_eq!(out.len() - frame_start, FRAME_HEADER_BYTES + payload_bytes);
    Ok(())
}

/// Splits a header off `buf`: (payload length, checksum), or None if `buf` is shorter.
fn parse_header(buf: &[u8]) -> Option<(u32, u64)> {
    let (len, rest) = buf.split_first_chunk::<4>()?;
    let (checksum, _) = rest.split_first_chunk::<8>()?;
    Some((u32::from_le_bytes(*len), u64::from_le_bytes(*checksum)))
}

/// Size of the whole frame at the start of `buf` (header included), once its header is in:
/// lets a reader grow its buffer to exactly what the next frame needs, never beyond
/// `frame_bytes_max`. None = fewer than [`FRAME_HEADER_BYTES`] bytes so far.
pub fn frame_len(buf: &[u8], frame_bytes_max: usize) -> Result<Option<usize>, FrameError> {
    let Some((len, _)) = parse_header(buf) else {
        return Ok(None);
    };
    // u64 arithmetic: a u32 length plus the header cannot overflow it on any target.
    let frame_bytes = FRAME_HEADER_BYTES as u64 + u64::from(len);
    if frame_bytes > frame_bytes_max as u64 {
        return Err(FrameError::Oversized {
            frame_bytes,
            frame_bytes_max: frame_bytes_max as u64,
        });
    }
    Ok(Some(FRAME_HEADER_BYTES + len as usize))
}

/// Decodes the frame at the start of `buf`. Returns the message and the bytes it used, or
/// None if `buf` does not yet hold the whole frame. The length is checked against
/// `frame_bytes_max` (whole frame, header included) as soon as the header is in.
pub fn decode<M: DeserializeOwned>(
    buf: &[u8],
    frame_bytes_max: usize,
) -> Result<Option<(M, usize)>, FrameError> {
    let Some(frame_bytes) = frame_len(buf, frame_bytes_max)? else {
        return Ok(None);
    };
    let Some(frame) = buf.get(..frame_bytes) else {
        return Ok(None);
    };
    let Some((_, expected)) = parse_header(frame) else {
        return Ok(None);
    };
    let payload = &frame[FRAME_HEADER_BYTES..];
    let actual = xxh3_64(payload);
    if actual != expected {
        return Err(FrameError::Checksum { expected, actual });
    }
    let take = |p: &[u8]| postcard::take_from_bytes::<M>(p).map(|(msg, rest)| (msg, rest.len()));
    let (msg, rest) = if payload.len() >= SHARED_PAYLOAD_BYTES_MIN {
        // One copy of the payload, its keys and values slices of it (`shared_bytes`).
        shared_bytes::decode_sharing(&Bytes::copy_from_slice(payload), take)
    } else {
        take(payload)
    }
    .map_err(FrameError::Payload)?;
    if rest > 0 {
        return Err(FrameError::TrailingBytes {
            trailing_bytes: rest,
        });
    }
    Ok(Some((msg, frame_bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum TestMsg {
        Ping(u64),
        Put { key: Vec<u8>, value: Vec<u8> },
        Note(String),
    }

    const MAX: usize = 1 << 20;

    fn samples() -> Vec<TestMsg> {
        vec![
            TestMsg::Ping(0),
            TestMsg::Ping(u64::MAX),
            TestMsg::Put {
                key: b"k".to_vec(),
                value: vec![7; 300],
            },
            TestMsg::Note("héllo".into()),
            TestMsg::Put {
                key: vec![],
                value: vec![],
            },
        ]
    }

    fn encode_all(msgs: &[TestMsg]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            encode(m, &mut out).expect("test messages encode");
        }
        out
    }

    fn decode_all(mut buf: &[u8]) -> Vec<TestMsg> {
        let mut got = Vec::new();
        while let Some((m, used)) = decode::<TestMsg>(buf, MAX).expect("valid stream") {
            got.push(m);
            buf = &buf[used..];
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        got
    }

    /// The keys and values of a long enough payload are slices of one copy of it (their
    /// distance in memory is their distance in the payload, and not in the caller's
    /// buffer), a short one's are copies of their own; both decode the same.
    #[test]
    fn a_long_payloads_keys_and_values_share_one_copy_of_it() {
        use crate::protocol::command::Command;
        let set = |k: &'static [u8], fill: u8, n: usize| {
            Command::Set(Bytes::from_static(k), Bytes::from(vec![fill; n]))
        };
        for (n, shared) in [(300, true), (20, false)] {
            let msgs = vec![set(b"first", b'x', n), set(b"second", b'y', n)];
            let mut buf = Vec::new();
            encode(&msgs, &mut buf).expect("encodes");
            assert_eq!(
                buf.len() - FRAME_HEADER_BYTES >= SHARED_PAYLOAD_BYTES_MIN,
                shared
            );
            let (got, used) = decode::<Vec<Command>>(&buf, MAX)
                .expect("decodes")
                .expect("whole");
            assert_eq!((&got, used), (&msgs, buf.len()));
            let at = |fill: u8| {
                let value = vec![fill; n];
                let found = buf.windows(n).position(|w| w == value);
                found.expect("in the frame")
            };
            let [Command::Set(_, v1), Command::Set(_, v2)] = &got[..] else {
                panic!("two SETs");
            };
            let apart = v2.as_ptr() as isize - v1.as_ptr() as isize;
            assert_eq!(apart == (at(b'y') - at(b'x')) as isize, shared, "n = {n}");
            let in_caller = |v: &Bytes| buf.as_ptr_range().contains(&v.as_ptr());
            assert!(
                !in_caller(v1) && !in_caller(v2),
                "borrowed the caller's buffer"
            );
        }
    }

    #[test]
    fn round_trip_many_frames() {
        let msgs = samples();
        let buf = encode_all(&msgs);
        assert_eq!(decode_all(&buf), msgs);
    }

    #[test]
    fn hello_round_trips_and_fits_its_limit() {
        let hello = Hello {
            cluster_id: u64::MAX,
            from_replica: u8::MAX,
            shard: u16::MAX,
            protocol_version: PROTOCOL_VERSION,
            nonce: [u8::MAX; crate::wire::auth::NONCE_BYTES],
        };
        let mut buf = Vec::new();
        encode(&hello, &mut buf).expect("hello encodes");
        let challenge = crate::wire::auth::Challenge {
            nonce: [u8::MAX; crate::wire::auth::NONCE_BYTES],
            tag: Some([u8::MAX; crate::wire::auth::TAG_BYTES]),
        };
        let mut challenge_frame = Vec::new();
        encode(&challenge, &mut challenge_frame).expect("challenge encodes");
        assert!(challenge_frame.len() <= HELLO_FRAME_BYTES_MAX);
        assert!(
            buf.len() <= HELLO_FRAME_BYTES_MAX,
            "hello is {} bytes",
            buf.len()
        );
        let (got, used) = decode::<Hello>(&buf, HELLO_FRAME_BYTES_MAX)
            .expect("valid")
            .expect("complete");
        assert_eq!(got, hello);
        assert_eq!(used, buf.len());
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let msgs = samples();
        let buf = encode_all(&msgs);
        let first_len = frame_len(&buf, MAX).expect("ok").expect("header in");
        for cut in 0..buf.len() {
            let head = &buf[..cut];
            match decode::<TestMsg>(head, MAX).expect("a prefix is never an error") {
                None => assert!(cut < first_len, "cut {cut}: whole first frame present"),
                Some((m, used)) => {
                    assert!(cut >= first_len);
                    assert_eq!(m, msgs[0]);
                    assert_eq!(used, first_len);
                }
            }
            // Feeding the stream in two pieces, as a socket might, yields every message.
            let mut acc = head.to_vec();
            let mut got = Vec::new();
            let mut pos = 0;
            let drain = |acc: &Vec<u8>, pos: &mut usize, got: &mut Vec<TestMsg>| {
                while let Some((m, used)) = decode::<TestMsg>(&acc[*pos..], MAX).expect("valid") {
                    got.push(m);
                    *pos += used;
                }
            };
            drain(&acc, &mut pos, &mut got);
            acc.extend_from_slice(&buf[cut..]);
            drain(&acc, &mut pos, &mut got);
            assert_eq!(got, msgs, "cut at {cut}");
            assert_eq!(pos, buf.len());
        }
    }

    #[test]
    fn flipped_byte_is_a_checksum_error() {
        let msg = TestMsg::Put {
            key: b"key".to_vec(),
            value: vec![1, 2, 3, 4],
        };
        let buf = encode_all(std::slice::from_ref(&msg));
        for i in FRAME_HEADER_BYTES..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            let err = decode::<TestMsg>(&bad, MAX).expect_err("corrupt payload");
            assert!(
                matches!(err, FrameError::Checksum { .. }),
                "byte {i}: {err:?}"
            );
        }
        // A flipped checksum byte is caught the same way.
        for i in 4..FRAME_HEADER_BYTES {
            let mut bad = buf.clone();
            bad[i] ^= 0x80;
            let err = decode::<TestMsg>(&bad, MAX).expect_err("corrupt checksum");
            assert!(
                matches!(err, FrameError::Checksum { .. }),
                "byte {i}: {err:?}"
            );
        }
    }

    #[test]
    fn oversized_length_rejected_from_the_header_alone() {
        // Only the 12 header bytes exist: the error must come before any payload is
        // awaited or allocated for.
        let mut header = Vec::new();
        header.extend_from_slice(&u32::MAX.to_le_bytes());
        header.extend_from_slice(&0u64.to_le_bytes());
        let err = decode::<TestMsg>(&header, 1024).expect_err("too big");
        assert_eq!(
            err,
            FrameError::Oversized {
                frame_bytes: FRAME_HEADER_BYTES as u64 + u64::from(u32::MAX),
                frame_bytes_max: 1024,
            }
        );
        assert!(frame_len(&header, 1024).is_err());
        // The boundary: a frame exactly at the limit is accepted, one byte more is not.
        let buf = encode_all(&[TestMsg::Ping(5)]);
        assert!(
            decode::<TestMsg>(&buf, buf.len())
                .expect("at limit")
                .is_some()
        );
        assert!(matches!(
            decode::<TestMsg>(&buf, buf.len() - 1),
            Err(FrameError::Oversized { .. })
        ));
    }

    #[test]
    fn valid_checksum_over_bad_payload_is_a_payload_error() {
        // Variant index 9 does not exist in TestMsg.
        let payload = [9u8, 0, 0];
        let mut buf = Vec::new();
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
        assert!(matches!(
            decode::<TestMsg>(&buf, MAX),
            Err(FrameError::Payload(_))
        ));
    }

    #[test]
    fn trailing_bytes_after_message_are_rejected() {
        // A Ping(1) followed by a stray byte, under a valid checksum.
        let payload = [0u8, 1, 0xAA];
        let mut buf = Vec::new();
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
        buf.extend_from_slice(&payload);
        assert_eq!(
            decode::<TestMsg>(&buf, MAX),
            Err(FrameError::TrailingBytes { trailing_bytes: 1 })
        );
    }

    #[test]
    fn encode_error_leaves_buffer_untouched() {
        // postcard cannot encode a map without a known length: an iterator-based Serialize.
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = s.serialize_seq(None)?;
                seq.serialize_element(&1u8)?;
                seq.end()
            }
        }
        let mut out = vec![1, 2, 3];
        assert!(matches!(
            encode(&Unsized, &mut out),
            Err(FrameError::Encode(_))
        ));
        assert_eq!(out, vec![1, 2, 3]);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                    max in 0usize..1024) {
            let _ = decode::<TestMsg>(&bytes, max);
            let _ = decode::<Hello>(&bytes, max);
            let _ = frame_len(&bytes, max);
        }

        #[test]
        fn random_payload_under_valid_header_never_panics(
            payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut buf = Vec::new();
            buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
            buf.extend_from_slice(&payload);
            match decode::<TestMsg>(&buf, MAX) {
                Ok(Some((_, used))) => prop_assert_eq!(used, buf.len()),
                Ok(None) => prop_assert!(false, "a complete frame was reported incomplete"),
                Err(e) => {
                    let expected = matches!(e, FrameError::Payload(_) | FrameError::TrailingBytes { .. });
                    prop_assert!(expected, "unexpected error {:?}", e);
                }
            }
        }

        #[test]
        fn round_trip_random_messages(vals in proptest::collection::vec((any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..16)) {
            let msgs: Vec<TestMsg> = vals.into_iter().map(|(n, v)| if n % 2 == 0 {
                TestMsg::Ping(n)
            } else {
                TestMsg::Put { key: n.to_le_bytes().to_vec(), value: v }
            }).collect();
            let buf = encode_all(&msgs);
            prop_assert_eq!(decode_all(&buf), msgs);
        }
    }
}
