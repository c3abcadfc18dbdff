//! A flipped bit in the last record is caught by the record checksum and drops only that
//! record, as a torn tail: nothing after it shows it was ever synced. (A flip with valid
//! records after it is mid-log corruption: tests/wal_mid_log_corruption.rs.)

mod wal_support;

use corepax::runtime::wal::{DamageReason, Lsn, Wal};
use wal_support::{layout, record, run, segment_file, small_opts, xor_byte};

const RECORDS: u64 = 300;

/// Writes RECORDS records, XORs byte `at` of record `victim` (counted from its header)
/// with `mask`, reopens, checks the damage is reported as `reason` at that record, and
/// returns what recovery reported.
fn corrupt_and_reopen(
    victim: u64,
    at: u64,
    mask: u8,
    reason: DamageReason,
) -> corepax::runtime::wal::Recovery {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = small_opts();
    let lens: Vec<usize> = (1..=RECORDS).map(|i| record(i).len()).collect();
    let places = layout(&lens, opts.segment_bytes);
    let (life, offset) = places[victim as usize - 1];
    let lives = places.last().map_or(0, |p| p.0) + 1;
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
    xor_byte(&segment_file(dir.path(), life as u32), offset + at, mask);
    let rec = run(async {
        let (mut wal, rec) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
        let damage = rec.damage.clone().expect("corruption is reported");
        assert_eq!(damage.reason, reason);
        assert_eq!(damage.segment, life as u64 + 1);
        assert_eq!(damage.offset, offset);
        assert!(damage.dropped_bytes >= 32 + lens[victim as usize - 1] as u64);
        assert_eq!(damage.dropped_segments, (lives - life - 1) as u64);
        assert_eq!(rec.records.len() as u64, victim - 1);
        for (lsn, bytes) in &rec.records {
            assert_eq!(bytes, &record(lsn.0));
        }
        // Writing resumes at the damage point with the next LSN.
        assert_eq!(wal.append(b"resumed").expect("append"), Lsn(victim));
        wal.sync().await.expect("sync");
        rec
    });
    run(async {
        let (_wal, again) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
        assert!(again.damage.is_none(), "{:?}", again.damage);
        assert_eq!(again.records.len() as u64, victim);
        assert_eq!(
            again.records.last().map(|r| (r.0, r.1.as_slice())),
            Some((Lsn(victim), &b"resumed"[..]))
        );
    });
    rec
}

#[test]
fn wal_corrupt_last_record() {
    let rec = corrupt_and_reopen(RECORDS, 32 + 5, 0x04, DamageReason::ChecksumMismatch);
    assert!(
        rec.mid_log.is_none(),
        "a damaged last record is a torn tail"
    );
    assert_eq!(rec.damage.map(|d| d.dropped_segments), Some(0));
}

#[test]
fn wal_corrupt_last_record_seq_field() {
    // Clearing bit 0 of its seq makes it look like a record of an older life (its
    // checksum shows it is damage, not a stale end).
    let rec = corrupt_and_reopen(RECORDS, 8, 0x01, DamageReason::ChecksumMismatch);
    assert!(rec.mid_log.is_none());
}

#[test]
fn wal_corrupt_last_record_lsn_field_is_a_bad_header() {
    let rec = corrupt_and_reopen(RECORDS, 16, 0x02, DamageReason::BadHeader);
    assert!(rec.mid_log.is_none());
}
