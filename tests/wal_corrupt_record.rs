//! A flipped bit is caught by the record checksum: in the last record it drops only that
//! record; in the middle of the log it stops replay there (and drops later segments),
//! reporting where and why, because records after a hole cannot be trusted.

mod wal_support;

use corepax::runtime::wal::{DamageReason, Lsn, Wal};
use wal_support::{flip_byte, layout, record, run, segment_file, small_opts};

const RECORDS: u64 = 300;

/// Writes RECORDS records, flips a byte in the payload of record `victim`, reopens, and
/// returns what recovery reported.
fn corrupt_and_reopen(victim: u64) -> corepax::runtime::wal::Recovery {
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
    flip_byte(&segment_file(dir.path(), life as u32), offset + 32 + 5);
    let rec = run(async {
        let (mut wal, rec) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
        let damage = rec.damage.clone().expect("corruption is reported");
        assert_eq!(damage.reason, DamageReason::ChecksumMismatch);
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
    let rec = corrupt_and_reopen(RECORDS);
    assert_eq!(rec.damage.map(|d| d.dropped_segments), Some(0));
}

#[test]
fn wal_corrupt_middle_record_stops_replay() {
    let rec = corrupt_and_reopen(40);
    assert!(
        rec.damage.map(|d| d.dropped_segments) > Some(0),
        "later segments are dropped"
    );
}
