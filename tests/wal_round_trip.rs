//! Records appended and synced across several segments come back in order after reopen,
//! and truncate_before recycles whole segments without losing the records above it, and
//! deletes those beyond the free pool.

mod wal_support;

use corepax::runtime::wal::{Lsn, Wal, WalOptions};
use wal_support::{record, run, segment_file, small_opts};

#[test]
fn wal_round_trip_across_segments_and_recycling() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut wal, rec) = Wal::open(dir.path(), small_opts()).await.expect("open");
        assert!(rec.records.is_empty());
        assert!(rec.damage.is_none());
        assert_eq!(wal.durable_lsn(), Lsn(0));
        // Spare segments are pre-written up front; the first rolls use them.
        wal.preallocate(2).await.expect("preallocate");
        assert_eq!(wal.free_segments(), 2);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 2);
        // ~400 records of ~400 bytes: about 160 KiB, so at least three 64 KiB segments.
        for i in 1..=400u64 {
            let lsn = wal.append(&record(i)).expect("append");
            assert_eq!(lsn, Lsn(i));
            if i % 7 == 0 {
                assert_eq!(wal.sync().await.expect("sync"), Lsn(i));
            }
        }
        assert_eq!(wal.sync().await.expect("sync"), Lsn(400));
        assert!(wal.live_segments() >= 3, "{} segments", wal.live_segments());
    });

    let segments_before = run(async {
        let (mut wal, rec) = Wal::open(dir.path(), small_opts()).await.expect("reopen");
        assert!(rec.damage.is_none(), "{:?}", rec.damage);
        assert_eq!(rec.records.len(), 400);
        for (i, (lsn, bytes)) in rec.records.iter().enumerate() {
            let i = i as u64 + 1;
            assert_eq!(*lsn, Lsn(i));
            assert_eq!(bytes, &record(i), "record {i}");
        }
        assert_eq!(wal.durable_lsn(), Lsn(400));
        // Continue after the reopen, in the same tail segment.
        for i in 401..=450u64 {
            assert_eq!(wal.append(&record(i)).expect("append"), Lsn(i));
        }
        wal.sync().await.expect("sync");
        let before = wal.live_segments();
        wal.truncate_before(Lsn(300)).await.expect("truncate");
        assert!(wal.live_segments() < before, "some segment was recycled");
        assert!(wal.free_segments() >= 1);
        // New segments now reuse recycled files.
        for i in 451..=800u64 {
            wal.append(&record(i)).expect("append");
        }
        wal.sync().await.expect("sync");
        assert!(wal.free_segments() < 4);
        before
    });

    run(async {
        // The streaming variant sees the same records as the collecting one.
        let mut streamed = Vec::new();
        let (wal, rec) = Wal::open_replaying(dir.path(), small_opts(), |lsn, bytes| {
            streamed.push((lsn, bytes.to_vec()))
        })
        .await
        .expect("reopen streaming");
        assert!(rec.records.is_empty());
        assert!(rec.damage.is_none(), "{:?}", rec.damage);
        drop(wal);
        let (_wal, rec) = Wal::open(dir.path(), small_opts()).await.expect("reopen");
        assert!(rec.damage.is_none(), "{:?}", rec.damage);
        assert_eq!(rec.records, streamed);
        let first = rec.records.first().expect("records survive").0;
        assert!(
            first <= Lsn(300),
            "records at or above the truncation point survive"
        );
        assert!(first > Lsn(1), "recycled segments are gone");
        assert_eq!(rec.records.last().map(|r| r.0), Some(Lsn(800)));
        for (lsn, bytes) in &rec.records {
            assert_eq!(bytes, &record(lsn.0), "record {}", lsn.0);
        }
    });
    let files = std::fs::read_dir(dir.path()).expect("dir").count();
    assert!(files <= segments_before + 4, "{files} files");
}

#[test]
fn a_spare_is_wanted_once_the_tail_is_half_full_and_none_is_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), small_opts()).await.expect("open");
        assert!(!wal.wants_spare(), "nothing appended yet");
        let mut i = 0;
        // ~400-byte records into a 64 KiB segment: half full after ~80.
        while !wal.wants_spare() {
            i += 1;
            assert!(i < 160, "never wanted a spare");
            wal.append(&record(i)).expect("append");
        }
        assert!(i > 40, "wanted a spare after only {i} records");
        wal.preallocate(1).await.expect("preallocate");
        assert!(!wal.wants_spare(), "a spare is ready");
        wal.sync().await.expect("sync");
    });
}

#[test]
fn surplus_segments_are_deleted_and_one_cut_short_by_a_crash_is_dropped_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = || std::fs::read_dir(dir.path()).expect("dir").count();
    let opts = || WalOptions {
        segments_free_max: 1,
        ..small_opts()
    };
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), opts()).await.expect("open");
        // ~400 records of ~400 bytes: at least three 64 KiB segments.
        for i in 1..=400u64 {
            wal.append(&record(i)).expect("append");
        }
        wal.sync().await.expect("sync");
        let live = wal.live_segments();
        assert!(live >= 3, "{live} segments");
        wal.truncate_before(Lsn(400)).await.expect("truncate");
        assert_eq!(wal.live_segments(), 1);
        assert_eq!(wal.free_segments(), 1, "the pool keeps one");
        // The other freed segments are gone once the truncation returns.
        assert_eq!(files(), 2);
    });
    // The oldest segment is the one kept free. A crash midway through deleting it (as a
    // surplus segment is deleted, in steps from its end) leaves it shorter, header intact:
    // the next open deletes it instead of reusing it.
    let first = segment_file(dir.path(), 0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .expect("first segment is the free one")
        .set_len(32 << 10)
        .expect("cut short");
    run(async {
        let (wal, rec) = Wal::open(dir.path(), opts()).await.expect("reopen");
        assert!(rec.damage.is_none(), "{:?}", rec.damage);
        assert_eq!(rec.records.last().map(|r| r.0), Some(Lsn(400)));
        assert_eq!(wal.free_segments(), 0);
        assert!(!first.exists(), "the short free file is deleted");
        assert_eq!(files(), 1);
    });
}
