//! A batch is encoded once per replica. A follower logs a batch as the leader encoded it:
//! the bytes of a Multi-Paxos accept's batch (or a Raft append's one entry) go from the
//! frame they arrived in to the WAL record, instead of being encoded again from the
//! decoded commands (a follower's profile under pipelined SETs: 6 % of its samples
//! encoding the records it logs). A leader sends the batch it just logged with the bytes
//! its record holds, instead of encoding it again for the followers' frame.
//!
//! Postcard writes a message's fields in order and a batch as its length then its
//! commands, so the message encoded with an empty batch is the received payload with the
//! batch's bytes replaced by one zero byte (its length): the fields before the batch, the
//! zero, the fields after it. Where the payload starts and ends with those same bytes, what
//! lies between is the batch's encoding, whatever the commands. A record whose last field
//! is the batch is, likewise, the record encoded with an empty batch less its final zero,
//! then the batch's bytes; and a message is its encoding with an empty batch with the
//! batch's bytes in place of the zero. The checks are byte comparisons of a few dozen
//! bytes; a message or record they do not fit is encoded as before. Debug builds compare
//! every record and frame made so with its encoding.

use crate::protocol::raft::{Msg, RaftRecord};
use crate::protocol::{Batch, Message, Record};
use crate::wire::frame;

use super::PeerMsg;

/// A batch with no command: encoded as one zero byte.
fn empty() -> Batch {
    Batch::from(Vec::new())
}

/// The batch a message carries whose bytes can be told apart (a Multi-Paxos accept, a
/// Raft append of one entry), the message with that batch emptied, and its commit index:
/// the one field after the batch in both.
fn message_without_batch(msg: &Message) -> Option<(&Batch, Message, u64)> {
    Some(match msg {
        Message::Accept {
            ballot,
            slot,
            batch,
            commit,
        } => (
            batch,
            Message::Accept {
                ballot: *ballot,
                slot: *slot,
                batch: empty(),
                commit: *commit,
            },
            *commit,
        ),
        Message::Raft(Msg::Append {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
        }) if entries.len() == 1 => (
            &entries[0].1,
            Message::Raft(Msg::Append {
                term: *term,
                prev_index: *prev_index,
                prev_term: *prev_term,
                entries: vec![(entries[0].0, empty())],
                commit: *commit,
            }),
            *commit,
        ),
        _ => return None,
    })
}

/// The batch a record ends with (an accept, a Raft entry), and the record with it emptied.
fn record_without_batch(record: &Record) -> Option<(&Batch, Record)> {
    Some(match record {
        Record::Accept {
            ballot,
            slot,
            batch,
        } => (
            batch,
            Record::Accept {
                ballot: *ballot,
                slot: *slot,
                batch: empty(),
            },
        ),
        Record::Raft(RaftRecord::Entry { index, term, batch }) => (
            batch,
            Record::Raft(RaftRecord::Entry {
                index: *index,
                term: *term,
                batch: empty(),
            }),
        ),
        _ => return None,
    })
}

/// Encodes `msg` as a peer payload into `out` (appended): `None` if it does not encode
/// or its batch is not last but one (before the commit index alone); else the length
/// of that suffix, the zero standing for the empty batch just before it.
fn encode_around_batch(msg: Message, commit: u64, out: &mut Vec<u8>) -> Option<usize> {
    let mut suffix = [0u8; 10];
    let suffix_len = postcard::to_slice(&commit, &mut suffix).ok()?.len();
    let start = out.len();
    frame::encode_payload(&PeerMsg::Paxos(msg), out).ok()?;
    let zero_at = out.len().checked_sub(suffix_len + 1)?;
    (zero_at >= start && out[zero_at] == 0 && out[zero_at + 1..] == suffix[..suffix_len])
        .then_some(suffix_len)
}

/// A batch a message carried, and its bytes in the frame it came in.
pub(super) struct Received<'a> {
    /// Held so that no other batch takes its address while the step that logs it runs.
    batch: Batch,
    bytes: &'a [u8],
}

impl<'a> Received<'a> {
    /// The batch `msg` carries and its bytes in `payload`, the payload of the frame `msg`
    /// (a [`PeerMsg::Paxos`]) was decoded from; `None` for a message with no batch a
    /// follower logs, or when the bytes cannot be told apart. `scratch` is overwritten.
    pub(super) fn of(
        msg: &Message,
        payload: &'a [u8],
        scratch: &mut Vec<u8>,
    ) -> Option<Received<'a>> {
        let (batch, without, commit) = message_without_batch(msg)?;
        scratch.clear();
        let suffix_len = encode_around_batch(without, commit, scratch)?;
        let prefix = &scratch[..scratch.len() - suffix_len - 1];
        let suffix = &scratch[scratch.len() - suffix_len..];
        if payload.len() < prefix.len() + suffix.len()
            || !payload.starts_with(prefix)
            || !payload.ends_with(suffix)
        {
            return None;
        }
        Some(Received {
            batch: batch.clone(),
            bytes: &payload[prefix.len()..payload.len() - suffix.len()],
        })
    }

    /// Encodes `record` into `out` as its encoding's first part, if its last field is this
    /// batch; the bytes to write after it are returned. `None` (and `out` unspecified)
    /// otherwise.
    pub(super) fn encode_record(&self, record: &Record, out: &mut Vec<u8>) -> Option<&'a [u8]> {
        let batch = encode_record_head(record, out)?;
        if !Batch::ptr_eq(batch, &self.batch) {
            return None;
        }
        debug_assert_eq!(
            [&out[..], self.bytes].concat(),
            postcard::to_stdvec(record).expect("a record encodes"),
            "a record written from a received batch differs from its encoding"
        );
        Some(self.bytes)
    }
}

/// Encodes into `out` (cleared first) what comes before the batch `record` ends with
/// (the record encoded with an empty batch, less that batch's zero) and returns the
/// batch; `None` (and `out` unspecified) for a record without one.
fn encode_record_head<'r>(record: &'r Record, out: &mut Vec<u8>) -> Option<&'r Batch> {
    let (batch, without) = record_without_batch(record)?;
    out.clear();
    frame::encode_payload(&without, out).ok()?;
    (out.pop() == Some(0)).then_some(batch)
}

/// Encodes `record` into `out` (cleared first). If its last field is a batch, returns
/// that batch and where its bytes start in `out`, for [`encode_frame`] to reuse.
pub(super) fn encode_record(
    record: &Record,
    out: &mut Vec<u8>,
) -> postcard::Result<Option<(Batch, usize)>> {
    if let Some(batch) = encode_record_head(record, out) {
        let start = out.len();
        frame::encode_payload(&**batch, out)?;
        debug_assert_eq!(
            out[..],
            postcard::to_stdvec(record).expect("a record encodes")[..]
        );
        return Ok(Some((batch.clone(), start)));
    }
    out.clear();
    frame::encode_payload(record, out)?;
    Ok(None)
}

/// Appends a frame holding `msg` to `out` with its batch's bytes taken from `logged`
/// (a batch and its bytes, as [`encode_record`] left them) if `msg` carries that very
/// batch; false (and `out` as it was) otherwise.
pub(super) fn encode_frame(msg: &Message, logged: (&Batch, &[u8]), out: &mut Vec<u8>) -> bool {
    let Some((batch, without, commit)) = message_without_batch(msg) else {
        return false;
    };
    if !Batch::ptr_eq(batch, logged.0) {
        return false;
    }
    let frame_start = out.len();
    out.extend_from_slice(&[0u8; frame::FRAME_HEADER_BYTES]);
    let Some(suffix_len) = encode_around_batch(without, commit, out) else {
        out.truncate(frame_start);
        return false;
    };
    let suffix_at = out.len() - suffix_len;
    let mut suffix = [0u8; 10];
    suffix[..suffix_len].copy_from_slice(&out[suffix_at..]);
    out.truncate(suffix_at - 1);
    out.extend_from_slice(logged.1);
    out.extend_from_slice(&suffix[..suffix_len]);
    if frame::seal(out, frame_start).is_err() {
        out.truncate(frame_start);
        return false;
    }
    debug_assert!({
        let mut whole = Vec::new();
        frame::encode(&PeerMsg::Paxos(msg.clone()), &mut whole).expect("a message encodes");
        whole[..] == out[frame_start..]
    });
    true
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::protocol::{Ballot, Command, ReplicaId, Request};
    use crate::wire::frame;

    /// A batch with commands of several shapes, and a value long enough for two-byte
    /// lengths.
    fn batch() -> Batch {
        let req = |seq: u64, cmd: Command| Request {
            client: 300 + seq,
            seq,
            ack_floor: seq,
            cmd,
        };
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        Batch::from(vec![
            req(1, Command::Set(b("k"), b(""))),
            req(2, Command::Set(b("key:2"), Bytes::from(vec![7u8; 300]))),
            req(3, Command::Del(vec![b("a"), b("b")])),
            req(4, Command::MSet(vec![(b("x"), b("1")), (b("y"), b("2"))])),
            req(5, Command::Noop),
        ])
    }

    /// `msg` framed as a peer sends it, and the payload the receiver decodes.
    fn payload_of(msg: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        frame::encode(&PeerMsg::Paxos(msg.clone()), &mut out).unwrap();
        out[frame::FRAME_HEADER_BYTES..].to_vec()
    }

    fn accept(batch: &Batch, commit: u64) -> Message {
        Message::Accept {
            ballot: Ballot {
                round: 1 << 40,
                node: ReplicaId(2),
            },
            slot: 129,
            batch: batch.clone(),
            commit,
        }
    }

    /// The record written from the received bytes is exactly the record's encoding.
    fn logged(r: &Received<'_>, record: &Record) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let tail = r.encode_record(record, &mut out)?;
        Some([&out[..], tail].concat())
    }

    #[test]
    fn an_accepts_batch_is_logged_as_it_arrived() {
        let batch = batch();
        for commit in [0, 1, 128, u64::MAX] {
            let payload = payload_of(&accept(&batch, commit));
            let r = Received::of(&accept(&batch, commit), &payload, &mut Vec::new())
                .expect("an accept's batch is found in its payload");
            assert_eq!(r.bytes, postcard::to_stdvec(&batch).unwrap());
            let record = Record::Accept {
                ballot: Ballot {
                    round: 5,
                    node: ReplicaId(0),
                },
                slot: 1 << 33,
                batch: batch.clone(),
            };
            assert_eq!(
                logged(&r, &record),
                Some(postcard::to_stdvec(&record).unwrap())
            );
        }
    }

    #[test]
    fn a_raft_appends_one_entry_is_logged_as_it_arrived() {
        let batch = batch();
        let append = |entries: Vec<(u64, Batch)>| {
            Message::Raft(Msg::Append {
                term: 9,
                prev_index: 40,
                prev_term: 8,
                entries,
                commit: 300,
            })
        };
        let one = append(vec![(9, batch.clone())]);
        let payload = payload_of(&one);
        let r = Received::of(&one, &payload, &mut Vec::new()).expect("one entry is found");
        let record = Record::Raft(RaftRecord::Entry {
            index: 41,
            term: 9,
            batch: batch.clone(),
        });
        assert_eq!(
            logged(&r, &record),
            Some(postcard::to_stdvec(&record).unwrap())
        );
        // Two entries: their batches are not told apart; each is encoded as before.
        let two = append(vec![(9, batch.clone()), (9, batch.clone())]);
        assert!(Received::of(&two, &payload_of(&two), &mut Vec::new()).is_none());
    }

    #[test]
    fn only_records_of_that_very_batch_are_written_from_it() {
        let batch = batch();
        let payload = payload_of(&accept(&batch, 3));
        let r = Received::of(&accept(&batch, 3), &payload, &mut Vec::new()).unwrap();
        let ballot = Ballot {
            round: 1,
            node: ReplicaId(1),
        };
        // Equal commands in another allocation: not the batch that arrived.
        let copy = Batch::from(batch.to_vec());
        let other = Record::Accept {
            ballot,
            slot: 1,
            batch: copy,
        };
        assert_eq!(logged(&r, &other), None);
        // The same batch in a record whose last field it is not taken from the frame.
        let learned = Record::Learned {
            slot: 1,
            batch: batch.clone(),
        };
        assert_eq!(logged(&r, &learned), None);
    }

    /// A leader's record keeps its batch's bytes where a frame sending that batch finds
    /// them: record and frame are exactly their encodings.
    #[test]
    fn a_leader_sends_the_batch_it_logged_with_the_records_bytes() {
        let batch = batch();
        let ballot = Ballot {
            round: 3,
            node: ReplicaId(1),
        };
        let records = [
            Record::Accept {
                ballot,
                slot: 77,
                batch: batch.clone(),
            },
            Record::Raft(RaftRecord::Entry {
                index: 41,
                term: 9,
                batch: batch.clone(),
            }),
        ];
        let messages = [
            accept(&batch, u64::MAX),
            Message::Raft(Msg::Append {
                term: 9,
                prev_index: 40,
                prev_term: 8,
                entries: vec![(9, batch.clone())],
                commit: 2,
            }),
        ];
        for (record, msg) in records.iter().zip(&messages) {
            let mut buf = Vec::new();
            let (logged, start) = encode_record(record, &mut buf).unwrap().expect("a batch");
            assert!(Batch::ptr_eq(&logged, &batch));
            assert_eq!(buf, postcard::to_stdvec(record).unwrap());
            assert_eq!(buf[start..], postcard::to_stdvec(&batch).unwrap());
            let mut framed = b"before".to_vec();
            assert!(encode_frame(msg, (&logged, &buf[start..]), &mut framed));
            let mut whole = b"before".to_vec();
            frame::encode(&PeerMsg::Paxos(msg.clone()), &mut whole).unwrap();
            assert_eq!(framed, whole);
            // Another batch, however equal, is not the one logged.
            let copy = Batch::from(batch.to_vec());
            let mut out = b"x".to_vec();
            assert!(!encode_frame(
                &accept(&copy, 1),
                (&logged, &buf[start..]),
                &mut out
            ));
            assert_eq!(out, b"x");
        }
        // A record without a batch, a message whose batch is not told apart.
        let mut buf = Vec::new();
        let promise = Record::Promise { ballot };
        assert!(encode_record(&promise, &mut buf).unwrap().is_none());
        assert_eq!(buf, postcard::to_stdvec(&promise).unwrap());
        let two = Message::Raft(Msg::Append {
            term: 9,
            prev_index: 40,
            prev_term: 8,
            entries: vec![(9, batch.clone()), (9, batch.clone())],
            commit: 2,
        });
        let bytes = postcard::to_stdvec(&batch).unwrap();
        assert!(!encode_frame(&two, (&batch, &bytes), &mut Vec::new()));
    }

    #[test]
    fn a_payload_of_another_message_is_not_taken_apart() {
        let batch = batch();
        // The commit index differs: the payload does not end as this message would.
        let payload = payload_of(&accept(&batch, 7));
        assert!(Received::of(&accept(&batch, 8), &payload, &mut Vec::new()).is_none());
        // Another ballot: it does not start so.
        let mut other = accept(&batch, 7);
        if let Message::Accept { ballot, .. } = &mut other {
            ballot.round += 1;
        }
        assert!(Received::of(&other, &payload, &mut Vec::new()).is_none());
        // Messages without a batch.
        let commit = Message::Commit {
            ballot: Ballot {
                round: 1,
                node: ReplicaId(0),
            },
            commit: 4,
        };
        assert!(Received::of(&commit, &payload_of(&commit), &mut Vec::new()).is_none());
        assert!(Received::of(&accept(&batch, 7), &[], &mut Vec::new()).is_none());
    }
}
