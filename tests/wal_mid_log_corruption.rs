//! Damage with valid records after it is mid-log corruption, not a torn tail: the lost
//! records had been synced (and may have been acknowledged). Recovery reports it with the
//! LSNs lost, still replays every valid record after it, and new records continue after
//! the last one read, so they are never confused with the old ones.

mod wal_support;

use corepax::runtime::wal::{DamageReason, Lsn, Recovery, Wal};
use wal_support::{layout, record, run, segment_file, small_opts, xor_byte};

const RECORDS: u64 = 300;

/// Writes RECORDS records (synced every 10), applies `damage` to the segment files,
/// reopens, appends one record and reopens again. Returns both recoveries.
fn damage_and_reopen(damage: impl FnOnce(&std::path::Path)) -> (Recovery, Recovery) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = small_opts();
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), opts.clone()).await.expect("open");
        for i in 1..=RECORDS {
            wal.append(&record(i)).expect("append");
            if i % 10 == 0 {
                wal.sync().await.expect("sync");
            }
        }
        wal.sync().await.expect("sync");
    });
    damage(dir.path());
    let first = run(async {
        let (mut wal, rec) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
        assert!(
            rec.damage.is_none(),
            "the log ends cleanly: {:?}",
            rec.damage
        );
        // Writing resumes after the last record read, not at the damage.
        assert_eq!(wal.append(b"resumed").expect("append"), Lsn(RECORDS + 1));
        wal.sync().await.expect("sync");
        rec
    });
    let second = run(async {
        let (_wal, rec) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
        rec
    });
    (first, second)
}

/// Every record but `lost` was replayed, in order and intact.
fn check_records(rec: &Recovery, lost: std::ops::RangeInclusive<u64>, extra: usize) {
    let expected: Vec<u64> = (1..=RECORDS).filter(|i| !lost.contains(i)).collect();
    let got: Vec<u64> = rec.records.iter().map(|(lsn, _)| lsn.0).collect();
    assert_eq!(&got[..expected.len()], &expected[..]);
    assert_eq!(got.len(), expected.len() + extra);
    for (lsn, bytes) in &rec.records[..expected.len()] {
        assert_eq!(bytes, &record(lsn.0));
    }
}

fn places() -> Vec<(usize, u64)> {
    let lens: Vec<usize> = (1..=RECORDS).map(|i| record(i).len()).collect();
    layout(&lens, small_opts().segment_bytes)
}

fn flip_in_record(victim: u64, at: u64, mask: u8, reason: DamageReason) {
    let places = places();
    let (life, offset) = places[victim as usize - 1];
    let (first, second) = damage_and_reopen(|dir| {
        xor_byte(&segment_file(dir, life as u32), offset + at, mask);
    });
    for (n, rec) in [&first, &second].into_iter().enumerate() {
        let mid = rec.mid_log.clone().expect("mid-log corruption is reported");
        assert_eq!(mid.reason, reason);
        assert_eq!(mid.segment, life as u64 + 1);
        assert_eq!(mid.offset, offset);
        assert_eq!((mid.first_lost, mid.last_lost), (Lsn(victim), Lsn(victim)));
        assert_eq!((mid.records_lost, mid.regions), (1, 1));
        check_records(rec, victim..=victim, n);
    }
    assert_eq!(
        second.records.last().map(|r| (r.0, r.1.as_slice())),
        Some((Lsn(RECORDS + 1), &b"resumed"[..]))
    );
}

#[test]
fn wal_mid_log_flipped_payload_is_reported_and_later_records_kept() {
    flip_in_record(40, 32 + 5, 0x04, DamageReason::ChecksumMismatch);
}

#[test]
fn wal_mid_log_flipped_seq_field() {
    flip_in_record(40, 8, 0x01, DamageReason::ChecksumMismatch);
}

#[test]
fn wal_mid_log_flipped_lsn_field() {
    flip_in_record(40, 16, 0x02, DamageReason::BadHeader);
}

#[test]
fn wal_mid_log_damage_at_the_end_of_a_segment_is_proven_by_the_next_segment() {
    // The last record of the first segment: nothing valid follows in that file, but the
    // next segment of the chain holds valid records, so it had been synced.
    let places = places();
    let victim = places
        .iter()
        .rposition(|p| p.0 == 0)
        .expect("a first segment") as u64
        + 1;
    assert!(victim < RECORDS);
    flip_in_record(victim, 32 + 1, 0x80, DamageReason::ChecksumMismatch);
}

#[test]
fn wal_mid_log_zeroed_run_of_records() {
    // Records 100..=105 overwritten with zeros (a lost write of a whole range).
    let places = places();
    let (life, start) = places[99];
    let (life_end, end) = places[105];
    assert_eq!(life, life_end, "the range lies in one segment");
    let (first, _) = damage_and_reopen(|dir| {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(segment_file(dir, life as u32))
            .expect("open segment");
        file.write_all_at(&vec![0u8; (end - start) as usize], start)
            .expect("zero");
    });
    let mid = first.mid_log.clone().expect("reported");
    assert_eq!((mid.first_lost, mid.last_lost), (Lsn(100), Lsn(105)));
    assert_eq!(mid.records_lost, 6);
    check_records(&first, 100..=105, 0);
}

#[test]
fn wal_damaged_last_record_is_still_a_torn_tail() {
    let places = places();
    let (life, offset) = places[RECORDS as usize - 1];
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = small_opts();
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), opts.clone()).await.expect("open");
        for i in 1..=RECORDS {
            wal.append(&record(i)).expect("append");
        }
        wal.sync().await.expect("sync");
    });
    xor_byte(&segment_file(dir.path(), life as u32), offset + 40, 0x10);
    run(async {
        let (_wal, rec) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
        assert!(rec.mid_log.is_none(), "{:?}", rec.mid_log);
        let damage = rec.damage.expect("the torn tail is reported");
        assert_eq!(damage.offset, offset);
        assert_eq!(rec.records.len() as u64, RECORDS - 1);
    });
}
