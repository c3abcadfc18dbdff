//! Property: wherever the log is cut (a crash that loses the end of the data) or a bit is
//! flipped, recovery returns exactly the records before the damage, reports it at the
//! damaged record (a flip is always reported), and the log then continues with the next
//! LSN. A flip in a record that was synced before a later one was appended is mid-log
//! corruption: only the damaged record is lost, the later ones are returned, and the log
//! continues after the last of them. A flip in a record synced together with every later
//! one is a torn tail (a crash can leave a write's blocks in any order): those are
//! dropped. Records are synced in batches of `sync_every`.

mod wal_support;

use corepax::runtime::wal::{Lsn, Wal};
use proptest::prelude::*;
use wal_support::{layout, run, segment_file, small_opts};

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn wal_crash_prefix(
        lens in proptest::collection::vec(1usize..3000, 1..120),
        cut_fraction in 0.0f64..1.0,
        fill in 1u8..=255,
        flip in any::<bool>(),
        bit in 0u8..8,
        sync_every in 1usize..6,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = small_opts();
        let places = layout(&lens, opts.segment_bytes);
        let (last_life, _) = places[places.len() - 1];
        // Cut somewhere in the last segment's records.
        let first_in_last = places.iter().position(|p| p.0 == last_life).expect("some");
        let start = places[first_in_last].1;
        let end = places[places.len() - 1].1 + 32 + lens[lens.len() - 1] as u64;
        let cut = start + ((end - start) as f64 * cut_fraction) as u64;
        let records: Vec<Vec<u8>> = lens.iter().map(|&n| vec![fill; n]).collect();
        run(async {
            let (mut wal, _) = Wal::open(dir.path(), opts.clone()).await.expect("open");
            for (i, r) in records.iter().enumerate() {
                wal.append(r).expect("append");
                if (i + 1) % sync_every == 0 {
                    wal.sync().await.expect("sync");
                }
            }
            wal.sync().await.expect("sync");
        });
        let path = segment_file(dir.path(), last_life as u32);
        let damaged_at = if flip {
            // Flip one bit of the byte at `cut` (always inside some record).
            let at = cut.min(end - 1);
            let mut bytes = std::fs::read(&path).expect("read");
            bytes[at as usize] ^= 1 << bit;
            std::fs::write(&path, &bytes).expect("write");
            at
        } else {
            let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open");
            file.set_len(cut).expect("cut");
            cut
        };
        // Records ending at or before the damaged byte (or the cut) survive.
        let survivors = places
            .iter()
            .zip(&lens)
            .take_while(|((life, off), len)| {
                *life < last_life || off + 32 + **len as u64 <= damaged_at
            })
            .count();
        // A flipped record with records after it that were appended once it was synced
        // (after its batch): those prove it had been.
        let batch_end = (survivors / sync_every + 1) * sync_every;
        let mid_log = flip && batch_end < lens.len();
        let expected: Vec<usize> = if mid_log {
            (0..lens.len()).filter(|&i| i != survivors).collect()
        } else {
            (0..survivors).collect()
        };
        run(async {
            let (mut wal, rec) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
            assert_eq!(rec.records.len(), expected.len());
            for ((lsn, bytes), &i) in rec.records.iter().zip(&expected) {
                assert_eq!(*lsn, Lsn(i as u64 + 1));
                assert_eq!(bytes, &records[i]);
            }
            if mid_log {
                let m = rec.mid_log.clone().expect("mid-log corruption is reported");
                let lost = Lsn(survivors as u64 + 1);
                assert_eq!((m.first_lost, m.last_lost, m.records_lost), (lost, lost, 1));
                assert_eq!(m.offset, places[survivors].1, "at the damaged record");
                assert!(rec.damage.is_none(), "the log ends cleanly");
            } else {
                assert!(rec.mid_log.is_none());
                if flip {
                    assert!(rec.damage.is_some(), "a flipped bit is always reported");
                }
                if let Some(d) = &rec.damage {
                    assert_eq!(d.offset, places[survivors].1, "damage is at the damaged record");
                }
            }
            let next = wal.append(b"next").expect("append");
            let last = expected.last().map_or(0, |&i| i as u64 + 1);
            assert_eq!(next, Lsn(last + 1));
            wal.sync().await.expect("sync");
        });
        run(async {
            let (_wal, rec) = Wal::open(dir.path(), opts.clone()).await.expect("reopen");
            assert!(rec.damage.is_none());
            assert_eq!(rec.records.len(), expected.len() + 1);
        });
    }
}
