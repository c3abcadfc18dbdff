//! Fuzz: every decoder of outside input (RESP, peer frames and handshakes, WAL record
//! headers and payloads, snapshot payloads and files, snapshot chunks, node and protocol
//! config TOML, workload TOML) takes random bytes and mutations of valid input without a
//! panic, with an error that says something, and within bounded memory (decoders allocate
//! at most what the input holds: a huge length prefix must not be trusted). Each target
//! runs `COREPAX_FUZZ_CASES` cases (default 300) here; `scripts/fuzz.sh SECONDS` runs them
//! with fresh seeds for as long as asked.
mod fuzz_support;
use std::sync::Arc;

use bytes::Bytes;
use corepax::config::NodeConfig;
use corepax::protocol::item::Item;
use corepax::protocol::kv::KvState;
use corepax::protocol::message::SnapshotChunk;
use corepax::protocol::raft::RaftRecord;
use corepax::protocol::{Ballot, Command, Message, Record, ReplicaId, Request, Snapshot};
use corepax::runtime::shard::PeerMsg;
use corepax::wire::frame;
use corepax::wire::resp;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("COREPAX_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A mutation of valid input: flips, truncation, insertion and duplication of slices.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Repeat(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Repeat(i, n)),
    ]
}

fn mutate(mut bytes: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        if bytes.is_empty() {
            break;
        }
        let at = |i: usize| i % bytes.len();
        match m {
            Mutation::Flip(i, b) => {
                let i = at(*i);
                bytes[i] ^= b;
            }
            Mutation::Truncate(i) => {
                let i = at(*i);
                bytes.truncate(i);
            }
            Mutation::Insert(i, v) => {
                let i = at(*i);
                bytes.splice(i..i, v.iter().copied());
            }
            Mutation::Repeat(i, n) => {
                let i = at(*i);
                let end = (i + n).min(bytes.len());
                let piece = bytes[i..end].to_vec();
                bytes.splice(i..i, piece);
            }
        }
    }
    bytes
}

/// Valid input of one kind and mutations of it, or plain random bytes.
fn input(valid: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (
            prop::sample::select(valid),
            prop::collection::vec(mutation(), 1..6)
        )
            .prop_map(|(v, ms)| mutate(v, &ms)),
    ]
}

fn resp_samples() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for args in [
        vec!["SET", "key", "value"],
        vec!["GET", "k"],
        vec!["MSET", "a", "1", "b", "2"],
        vec!["PING"],
    ] {
        let mut b = Vec::new();
        resp::encode_command(&mut b, &args);
        out.push(b);
    }
    out.push(b"PING\r\nSET a b\r\n".to_vec());
    out.push(b"*2\r\n$3\r\nGET\r\n$-1\r\n:12\r\n+OK\r\n-ERR x\r\n".to_vec());
    out
}

fn batch() -> Arc<[Request]> {
    Arc::from(vec![Request {
        client: 7,
        seq: 3,
        ack_floor: 2,
        cmd: Command::Set(Bytes::from_static(b"key"), Bytes::from_static(b"value")),
    }])
}

fn ballot() -> Ballot {
    Ballot {
        round: 4,
        node: ReplicaId(1),
    }
}

fn chunk() -> SnapshotChunk {
    SnapshotChunk {
        last_included: 9,
        items_total: 2,
        entries_total: 2,
        digest: 77,
        offset: 0,
        entries: vec![Item::new(b"a", b"1", 3), Item::new(b"bb", b"22", 5)],
        sessions: Vec::new(),
        sessions_total: 0,
        log_time: 1_700_000_000_000,
        deadlines: vec![(Bytes::from_static(b"a"), 1_700_000_001_000)],
    }
}

fn messages() -> Vec<PeerMsg> {
    vec![
        PeerMsg::Paxos(Message::Accept {
            ballot: ballot(),
            slot: 12,
            batch: batch(),
            commit: 11,
        }),
        PeerMsg::Paxos(Message::Promise {
            ballot: ballot(),
            chosen_through: 3,
            entries: vec![(4, ballot(), batch())],
        }),
        PeerMsg::Paxos(Message::LeaseGrant { seq: 5, fence: 6 }),
        PeerMsg::Paxos(Message::ClockEcho { sent: 1, at: 2 }),
        PeerMsg::Paxos(Message::InstallSnapshot {
            chunk: Box::new(chunk()),
        }),
        PeerMsg::Forward {
            id: 3,
            req: batch()[0].clone(),
            answered_there: true,
        },
    ]
}

fn frames<M: serde::Serialize>(msgs: &[M]) -> Vec<Vec<u8>> {
    msgs.iter()
        .map(|m| {
            let mut out = Vec::new();
            frame::encode(m, &mut out).unwrap();
            out
        })
        .collect()
}

fn records() -> Vec<Record> {
    vec![
        Record::Promise { ballot: ballot() },
        Record::Accept {
            ballot: ballot(),
            slot: 3,
            batch: batch(),
        },
        Record::Learned {
            slot: 4,
            batch: batch(),
        },
        Record::Chosen { through: 4 },
        Record::StaleData { seen_through: 7 },
        Record::Raft(RaftRecord::Vote {
            term: 3,
            voted_for: Some(ReplicaId(1)),
        }),
        Record::Raft(RaftRecord::Entry {
            index: 5,
            term: 3,
            batch: batch(),
        }),
        Record::Raft(RaftRecord::StaleData),
    ]
}

/// The stale-data marks decode as written; cut short, or with a variant tag past the
/// last, a record is a clear error (recovery stops replay there), never a panic.
#[test]
fn stale_data_marks_round_trip_and_damaged_records_are_errors() {
    for record in [
        Record::StaleData { seen_through: 7 },
        Record::Raft(RaftRecord::StaleData),
    ] {
        let bytes = postcard::to_allocvec(&record).unwrap();
        assert_eq!(postcard::from_bytes::<Record>(&bytes).unwrap(), record);
        for cut in 0..bytes.len() {
            let err = postcard::from_bytes::<Record>(&bytes[..cut]).unwrap_err();
            fuzz_support::clear(err);
        }
    }
    // Tag 127 (one varint byte), far past the last variant, at both levels.
    fuzz_support::clear(postcard::from_bytes::<Record>(&[127, 0]).unwrap_err());
    let raft_tag = postcard::to_allocvec(&Record::Raft(RaftRecord::StaleData)).unwrap()[0];
    fuzz_support::clear(postcard::from_bytes::<Record>(&[raft_tag, 127]).unwrap_err());
}

fn snapshot() -> Snapshot {
    let c = chunk();
    Snapshot {
        last_included: 9,
        promised: ballot(),
        kv: KvState {
            entries: c.entries,
            sessions: Vec::new(),
            deadlines: c.deadlines,
            log_time: c.log_time,
        },
        tail: vec![(10, ballot(), batch(), false)],
    }
}

fn postcard_samples<T: serde::Serialize>(items: &[T]) -> Vec<Vec<u8>> {
    items
        .iter()
        .map(|r| postcard::to_allocvec(r).unwrap())
        .collect()
}

/// A node config as `corepax node --config` reads it, every field written out.
fn node_toml() -> &'static str {
    let mut cfg = NodeConfig::new(
        0,
        "127.0.0.1:6379".parse().unwrap(),
        vec![
            "127.0.0.1:7000".parse().unwrap(),
            "127.0.0.1:7100".parse().unwrap(),
        ],
        "/tmp/corepax-fuzz".into(),
        2,
    );
    cfg.protocol.read_mode = corepax::config::ReadMode::LeaderLease;
    Box::leak(toml::to_string(&cfg).unwrap().into_boxed_str())
}

const WORKLOAD_TOML: &str = include_str!("../workloads/default.toml");

/// Mutations of text that keep it a string (TOML decoders take `&str`).
fn text(valid: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        (prop::collection::vec(mutation(), 1..6)).prop_map(move |ms| String::from_utf8_lossy(
            &mutate(valid.as_bytes().to_vec(), &ms)
        )
        .into_owned()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn resp_values(bytes in input(resp_samples())) {
        fuzz_support::resp_values(&bytes);
    }

    #[test]
    fn resp_commands_fed_in_pieces(bytes in input(resp_samples()), cut in 1usize..64) {
        fuzz_support::resp_commands(&bytes, cut);
    }

    #[test]
    fn peer_frames(bytes in input(frames(&messages()))) {
        fuzz_support::peer_frame(&bytes);
    }

    #[test]
    fn peer_frames_checksum_fixed(bytes in input(postcard_samples(&messages()))) {
        fuzz_support::peer_payload(&bytes);
    }

    #[test]
    fn snapshot_chunks(bytes in input(postcard_samples(&[chunk()]))) {
        fuzz_support::snapshot_chunk(&bytes);
    }

    #[test]
    fn wal_records(bytes in input(postcard_samples(&records()))) {
        fuzz_support::wal_record(&bytes);
    }

    #[test]
    fn snapshot_payloads(bytes in input(postcard_samples(&[snapshot()]))) {
        fuzz_support::snapshot_payload(&bytes);
    }

    #[test]
    fn node_config_toml(t in text(node_toml())) {
        fuzz_support::node_config(&t);
    }

    #[test]
    fn workload_toml(t in text(WORKLOAD_TOML)) {
        fuzz_support::workload(&t);
    }
}

/// Snapshot files: random and damaged files are refused, never half-loaded.
#[test]
fn snapshot_files() {
    let dir = tempfile::tempdir().unwrap();
    let payload = postcard::to_allocvec(&snapshot()).unwrap();
    corepax::runtime::snapshot::write_snapshot(
        dir.path(),
        corepax::runtime::snapshot::SnapshotMeta {
            last_included: 9,
            wal_lsn: 1,
        },
        &payload,
    )
    .unwrap();
    let path = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_none_or(|e| e != "tmp"))
        .expect("a snapshot file");
    let valid = std::fs::read(&path).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: cases() / 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&input(vec![valid.clone()]), |bytes| {
            std::fs::write(&path, &bytes).unwrap();
            match corepax::runtime::snapshot::load_latest(dir.path()) {
                Ok(Some(s)) => {
                    // Only a file that verifies loads, and then it is what was written.
                    prop_assert_eq!(s.bytes(), &payload[..]);
                }
                Ok(None) => {}
                Err(e) => fuzz_support::clear(e),
            }
            Ok(())
        })
        .unwrap();
}
