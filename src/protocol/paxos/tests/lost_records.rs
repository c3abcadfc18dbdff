//! Recovery after lost records: a `Chosen` mark does not vouch for a value an older
//! record left in the log.

use super::*;

fn batch_of(cmd: Command) -> Batch {
    vec![Request {
        client: 7,
        seq: 1,
        ack_floor: 1,
        cmd,
    }]
    .into()
}

fn k_of(r: &Replica) -> Option<Bytes> {
    r.kv().get(b"k").map(crate::protocol::kv::Item::value_bytes)
}

fn cfg() -> ProtocolConfig {
    ProtocolConfig {
        replicas: 3,
        ..ProtocolConfig::default()
    }
}

/// Replica 2's records: it led ballot 1 and accepted its own value for slot 1, then
/// accepted the value chosen there at ballot 2 (same command, another payload as a
/// leader's clock stamp would make it), then learned slot 1 chosen.
fn records() -> (Vec<Record>, Batch, Batch) {
    let own = batch_of(set("k", "own"));
    let chosen = batch_of(set("k", "chosen"));
    let old = Ballot {
        round: 1,
        node: ReplicaId(2),
    };
    let new = Ballot {
        round: 2,
        node: ReplicaId(0),
    };
    let records = vec![
        Record::Promise { ballot: old },
        Record::Accept {
            ballot: old,
            slot: 1,
            batch: own.clone(),
        },
        Record::Accept {
            ballot: new,
            slot: 1,
            batch: chosen.clone(),
        },
        Record::Chosen { through: 1 },
    ];
    (records, own, chosen)
}

#[test]
fn a_chosen_mark_after_lost_records_does_not_apply_an_older_accepted_value() {
    let (mut records, _, chosen) = records();
    // Intact, the mark applies the last accepted value: the chosen one.
    let r = Replica::recover(cfg(), ReplicaId(2), 1, None, records.clone(), false);
    assert_eq!(r.applied_index(), 1);
    assert_eq!(k_of(&r), Some(Bytes::from_static(b"chosen")));
    // Storage lost the accept of the chosen value; its own older accept and the mark stay.
    records.remove(2);
    let mut r = Replica::recover(cfg(), ReplicaId(2), 1, None, records, true);
    assert!(r.recovering());
    assert_eq!(r.applied_index(), 0, "applied a value it cannot vouch for");
    assert_eq!(k_of(&r), None);
    // It knows slot 1 was chosen and fetches it; the value a peer sends is applied.
    let msg = Message::CatchUp {
        entries: vec![(1, chosen)],
        commit: 1,
    };
    r.on_message(0, ReplicaId(0), msg);
    assert_eq!(r.applied_index(), 1);
    assert_eq!(k_of(&r), Some(Bytes::from_static(b"chosen")));
}

#[test]
fn a_learned_record_after_lost_records_is_applied() {
    let (mut records, _, chosen) = records();
    records.remove(2);
    records.insert(
        2,
        Record::Learned {
            slot: 1,
            batch: chosen,
        },
    );
    let r = Replica::recover(cfg(), ReplicaId(2), 1, None, records, true);
    assert_eq!(r.applied_index(), 1);
    assert_eq!(k_of(&r), Some(Bytes::from_static(b"chosen")));
}
