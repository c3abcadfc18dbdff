//! Cluster: size limits: no command, batch or peer value larger than a WAL record is ever
//! persisted, and refusing one leaves the group serving.

use super::*;
use crate::limits::{BATCH_BYTES_LIMIT, COMMAND_BYTES_MAX, WAL_RECORD_BYTES_MAX};

/// An MSET of `values` values of `value_bytes` bytes each (keys of 8 bytes).
fn mset(values: usize, value_bytes: usize) -> Command {
    let v = Bytes::from(vec![b'v'; value_bytes]);
    Command::MSet(
        (0..values)
            .map(|i| (Bytes::from(format!("key{i:05}")), v.clone()))
            .collect(),
    )
}

/// The MSET whose encoded bound is exactly `bytes` (one value padded to fit).
fn mset_of(bytes: usize) -> Command {
    let probe = mset((bytes >> 20) - 1, 1 << 20);
    let short = bytes - probe.encoded_bytes_max();
    let Command::MSet(mut kvs) = probe else {
        unreachable!("mset builds an MSet")
    };
    kvs[0].1 = Bytes::from(vec![b'v'; (1 << 20) + short]);
    let cmd = Command::MSet(kvs);
    assert_eq!(cmd.encoded_bytes_max(), bytes);
    cmd
}

fn encoded(record: &Record) -> usize {
    postcard::to_stdvec(record).expect("a record encodes").len()
}

/// Every persisted record of replica `i` fits the WAL.
fn assert_records_fit(c: &Cluster, i: usize) {
    for r in c.durable[i]
        .iter()
        .chain(c.unsynced[i].iter().map(|(_, r)| r))
    {
        assert!(
            encoded(r) <= WAL_RECORD_BYTES_MAX,
            "replica {i}: {} bytes",
            encoded(r)
        );
    }
}

#[test]
fn the_bound_covers_the_encoding_with_the_largest_varints() {
    let commands = [
        Command::Noop,
        get(""),
        set("k", "v"),
        Command::Del(vec![Bytes::new(); 300]),
        Command::MSet(vec![(Bytes::new(), Bytes::from(vec![0; 200])); 200]),
        mset(3, 1 << 16),
    ];
    let batch: Batch = commands
        .iter()
        .map(|cmd| Request {
            client: u64::MAX,
            seq: u64::MAX,
            ack_floor: u64::MAX,
            cmd: cmd.clone(),
        })
        .collect::<Vec<_>>()
        .into();
    let ballot = Ballot {
        round: u64::MAX,
        node: ReplicaId(u8::MAX),
    };
    let records = [
        Record::Accept {
            ballot,
            slot: u64::MAX,
            batch: batch.clone(),
        },
        Record::Learned {
            slot: u64::MAX,
            batch: batch.clone(),
        },
    ];
    for r in &records {
        assert!(
            encoded(r) <= batch_record_bytes_max(&batch),
            "{}",
            encoded(r)
        );
    }
    for req in batch.iter() {
        let len = postcard::to_stdvec(req).expect("encodes").len();
        assert!(
            len <= req.encoded_bytes_max(),
            "{len} > {}",
            req.encoded_bytes_max()
        );
    }
}

#[test]
fn a_command_over_the_limit_is_refused_and_one_at_the_limit_is_logged() {
    let mut c = Cluster::new(3);
    c.elect(0);
    // The reported case: 33 values of 1 MiB.
    let big = mset(33, 1 << 20);
    let bytes = big.encoded_bytes_max();
    c.request(0, 1, 1, 1, big);
    assert_eq!(
        c.reply_of(1),
        Some(&ClientReply::TooLarge {
            bytes,
            bytes_max: COMMAND_BYTES_MAX
        })
    );
    c.request(0, 2, 1, 2, mset_of(COMMAND_BYTES_MAX + 1));
    assert!(matches!(c.reply_of(2), Some(ClientReply::TooLarge { .. })));
    assert!(
        c.unsynced[0].is_empty(),
        "nothing proposed for a refused command"
    );
    c.request(0, 3, 1, 3, mset_of(COMMAND_BYTES_MAX));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(3), Some(&ClientReply::Done(Reply::Ok)));
    for i in 0..3 {
        assert_records_fit(&c, i);
    }
    assert_eq!(c.replicas[0].stats().requests_too_large, 2);
}

#[test]
fn batches_never_outgrow_a_record() {
    let mut c = Cluster::new(3);
    for r in &mut c.replicas {
        r.cfg.batch_bytes_max = BATCH_BYTES_LIMIT;
        r.cfg.pipeline_depth = 1;
    }
    c.elect(0);
    // The first waits alone in the pipeline; the next 40 MiB queue and must be split.
    for seq in 1..=41 {
        let cmd = Command::Set(
            Bytes::from(format!("k{seq}")),
            Bytes::from(vec![1; 1 << 20]),
        );
        c.request(0, seq, 1, seq, cmd);
    }
    c.run(|_, _, _| true);
    for seq in 1..=41 {
        assert_eq!(
            c.reply_of(seq),
            Some(&ClientReply::Done(Reply::Ok)),
            "{seq}"
        );
    }
    assert!(c.replicas[0].stats().slots_proposed >= 3);
    for i in 0..3 {
        assert_records_fit(&c, i);
    }
}

#[test]
fn an_accept_too_large_for_the_log_is_dropped_and_the_acceptor_keeps_going() {
    let mut c = Cluster::new(3);
    c.elect(0);
    let ballot = c.replicas[0].leading().expect("r0 leads");
    let batch: Batch = Arc::from(vec![Request {
        client: 9,
        seq: 1,
        ack_floor: 1,
        cmd: mset(33, 1 << 20),
    }]);
    // What a leader that did not bound its batches would send.
    c.replicas[1].on_message(
        c.now,
        ReplicaId(0),
        Message::Accept {
            ballot,
            slot: 1,
            batch,
            commit: 0,
        },
    );
    c.collect(1);
    assert!(c.unsynced[1].is_empty(), "nothing persisted");
    assert_eq!(c.replicas[1].stats().batches_too_large, 1);
    c.request(0, 1, 1, 1, set("a", "1"));
    c.run(|_, _, _| true);
    assert_eq!(c.reply_of(1), Some(&ClientReply::Done(Reply::Ok)));
}

/// A pipeline handed over in one step goes into as few slots as `batch_max` allows, not
/// one slot per request while the pipeline window has room; every request is answered.
#[test]
fn requests_of_one_step_share_slots() {
    let mut c = Cluster::new(3);
    c.replicas[0].cfg.batch_max = 4;
    c.elect(0);
    let before = c.replicas[0].stats().slots_proposed;
    c.replicas[0].on_requests(c.now, sets_of_one_client(1..=10));
    c.collect(0);
    // 4 + 4, not 10 slots (the default pipeline depth has room for 10); the last 2, a
    // partial batch, wait for the sync of the accepts before them…
    let proposed = |c: &Cluster| c.replicas[0].stats().slots_proposed - before;
    assert_eq!(proposed(&c), 2);
    c.run(|_, _, _| true);
    // …and then leave as one slot.
    assert_eq!(proposed(&c), 3);
    for i in 1..=10u64 {
        assert_eq!(c.reply_of(i), Some(&ClientReply::Done(Reply::Ok)));
        assert_eq!(value(&c, 0, &format!("k{i}")), Some(Bytes::from("v")));
    }
    // One at a time: the first leaves at once, the others wait for its sync (with lazy
    // leader sync, for it to be chosen) and share the next slot.
    for (lazy, first) in [(false, 1), (true, 1)] {
        c.replicas[0].cfg.lazy_leader_sync = lazy;
        c.replicas[0].cfg.lazy_sync_batch_min = 1;
        let before = c.replicas[0].stats().slots_proposed;
        let lazy_before = c.replicas[0].stats().slots_lazy;
        let base = if lazy { 20 } else { 10 };
        for i in base + 1..=base + 4u64 {
            c.request(0, i, 1, i, set(&format!("k{i}"), "w"));
        }
        assert_eq!(
            c.replicas[0].stats().slots_proposed - before,
            first,
            "lazy {lazy}"
        );
        assert_eq!(
            c.replicas[0].stats().slots_lazy - lazy_before,
            u64::from(lazy)
        );
        c.run(|_, _, _| true);
        assert_eq!(c.replicas[0].stats().slots_proposed - before, first + 1);
        for i in base + 1..=base + 4u64 {
            assert_eq!(c.reply_of(i), Some(&ClientReply::Done(Reply::Ok)));
        }
    }
}
