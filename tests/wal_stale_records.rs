//! A recycled segment still holds its previous life's records; they carry an older
//! segment seq, so they are never replayed, even when they sit exactly where the next
//! record of the new life would be.

mod wal_support;

use corepax::runtime::wal::{Lsn, Wal};
use wal_support::{header_seq, layout, run, segment_file, small_opts};

const LEN: usize = 200;

fn rec(i: u64) -> Vec<u8> {
    vec![(i % 251) as u8 + 1; LEN]
}

#[test]
fn wal_stale_records_of_recycled_segment_are_not_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = small_opts();
    // Equal lengths, so the new life's records sit where the old life's did.
    let places = layout(&vec![LEN; 2000], opts.segment_bytes);
    let first_of = |life: usize| places.iter().position(|p| p.0 == life).expect("life") as u64 + 1;
    let file0 = segment_file(dir.path(), 0);
    let mut old_life = Vec::new();
    let new_count = 3u64;

    let last = run(async {
        let (mut wal, _) = Wal::open(dir.path(), opts.clone()).await.expect("open");
        // Three full lives in files 0, 1, 2.
        let mut lsn = 0;
        while lsn + 1 < first_of(3) {
            lsn = wal.append(&rec(lsn + 1)).expect("append").0;
        }
        wal.sync().await.expect("sync");
        assert_eq!(header_seq(&file0), 1);
        old_life = std::fs::read(&file0).expect("read file 0");
        // Only file 0 (life 1) is wholly below the first LSN of life 2.
        wal.truncate_before(Lsn(first_of(1)))
            .await
            .expect("truncate");
        assert_eq!(wal.free_segments(), 1);
        // The next records start a fourth life (seq 4), which must reuse file 0.
        for _ in 0..new_count {
            lsn = wal.append(&rec(lsn + 1)).expect("append").0;
        }
        wal.sync().await.expect("sync");
        lsn
    });
    assert_eq!(last, first_of(3) + new_count - 1);
    assert_eq!(header_seq(&file0), 4, "file 0 was recycled for life 4");

    // Put the old life's bytes back after the new records, as if the zero block that
    // follows them had never reached the disk.
    let end = 4096 + new_count as usize * (32 + LEN);
    let mut bytes = std::fs::read(&file0).expect("read");
    bytes[end..].copy_from_slice(&old_life[end..]);
    std::fs::write(&file0, &bytes).expect("write");

    run(async {
        let (wal, rec_) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
        assert!(
            rec_.damage.is_none(),
            "a stale record is a clean end: {:?}",
            rec_.damage
        );
        let lsns: Vec<u64> = rec_.records.iter().map(|r| r.0.0).collect();
        assert_eq!(lsns.first(), Some(&first_of(1)));
        assert_eq!(
            lsns.last(),
            Some(&last),
            "nothing after the new life's records"
        );
        for (lsn, bytes) in &rec_.records {
            assert_eq!(bytes, &rec(lsn.0));
        }
        assert_eq!(wal.durable_lsn(), Lsn(last));
    });
}
