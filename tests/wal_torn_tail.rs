//! A segment file cut in the middle of its last record (a crash mid-write, on a filesystem
//! without a journal) loses only that record: it is reported as Torn, the records before it
//! survive, and the log continues cleanly from there.

mod wal_support;

use corepax::runtime::wal::{DamageReason, Lsn, Wal};
use wal_support::{layout, record, run, segment_file, small_opts};

const RECORDS: u64 = 60;

fn check_cut(cut_into_record: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = small_opts();
    let lens: Vec<usize> = (1..=RECORDS).map(|i| record(i).len()).collect();
    let places = layout(&lens, opts.segment_bytes);
    let (life, last_offset) = places[RECORDS as usize - 1];
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), opts.clone()).await.expect("open");
        for i in 1..=RECORDS {
            wal.append(&record(i)).expect("append");
        }
        assert_eq!(wal.sync().await.expect("sync"), Lsn(RECORDS));
    });
    // Lives map to files 0, 1, 2... while nothing has been recycled.
    let path = segment_file(dir.path(), life as u32);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open segment");
    file.set_len(last_offset + cut_into_record).expect("cut");
    drop(file);

    run(async {
        let (mut wal, rec) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
        let damage = rec.damage.expect("the cut is reported");
        assert_eq!(damage.reason, DamageReason::Torn);
        assert_eq!(damage.segment, life as u64 + 1, "segment seq");
        assert_eq!(damage.offset, last_offset);
        // Counted up to the last non-zero byte, so a zero byte at the cut may not count.
        assert!(damage.dropped_bytes > 0 && damage.dropped_bytes <= cut_into_record);
        assert_eq!(rec.records.len() as u64, RECORDS - 1);
        for (lsn, bytes) in &rec.records {
            assert_eq!(bytes, &record(lsn.0));
        }
        assert_eq!(wal.durable_lsn(), Lsn(RECORDS - 1));
        // The lost LSN is reused by the next record; the log stays contiguous.
        assert_eq!(
            wal.append(b"after the crash").expect("append"),
            Lsn(RECORDS)
        );
        wal.sync().await.expect("sync");
    });

    run(async {
        let (_wal, rec) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
        assert!(
            rec.damage.is_none(),
            "damage is reported once: {:?}",
            rec.damage
        );
        assert_eq!(rec.records.len() as u64, RECORDS);
        assert_eq!(
            rec.records.last().map(|r| r.1.as_slice()),
            Some(&b"after the crash"[..])
        );
    });
}

#[test]
fn wal_torn_tail_mid_payload() {
    check_cut(32 + 20);
}

#[test]
fn wal_torn_tail_mid_header() {
    check_cut(10);
}
