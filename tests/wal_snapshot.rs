//! Snapshots round-trip through write and load; only the newest two are kept; a corrupt
//! newest snapshot is reported and the older one is used; if none verifies, loading fails
//! rather than silently starting empty.

mod wal_support;

use corepax::runtime::snapshot::{
    SnapshotError, SnapshotMeta, load_latest, load_latest_offloaded, write_snapshot,
    write_snapshot_offloaded,
};

fn state(n: u64) -> Vec<u8> {
    (0..10_000u64).map(|i| (i * 7 + n) as u8).collect()
}

fn meta(n: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_included: n * 100,
        wal_lsn: n * 1000,
    }
}

#[test]
fn wal_snapshot_round_trip_and_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let snaps = dir.path().join("snaps");
    assert!(load_latest(&snaps).expect("empty dir").is_none());

    for n in 1..=3 {
        write_snapshot(&snaps, meta(n), &state(n)).expect("write");
    }
    let count = std::fs::read_dir(&snaps).expect("dir").count();
    assert_eq!(count, 2, "only the newest two are kept");

    let snap = load_latest(&snaps).expect("load").expect("a snapshot");
    assert_eq!(snap.meta, meta(3));
    assert_eq!(snap.bytes(), state(3).as_slice());
    assert!(snap.skipped_corrupt.is_empty());
    let newest = snap.path.clone();
    drop(snap);

    // Flip one payload byte of the newest: the older one is used.
    let mut bytes = std::fs::read(&newest).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&newest, &bytes).expect("write");
    let snap = load_latest(&snaps)
        .expect("load")
        .expect("the older snapshot");
    assert_eq!(snap.meta, meta(2));
    assert_eq!(snap.bytes(), state(2).as_slice());
    assert_eq!(snap.skipped_corrupt, vec![newest.clone()]);
    let older = snap.path.clone();
    drop(snap);

    // Cut the older one short too: nothing valid is an error, not "no snapshot".
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&older)
        .expect("open");
    file.set_len(100).expect("cut");
    match load_latest(&snaps) {
        Err(SnapshotError::AllCorrupt { paths, .. }) => assert_eq!(paths.len(), 2),
        other => panic!("expected AllCorrupt, got {other:?}"),
    }

    // The offloaded variants work from inside an executor.
    wal_support::run(async {
        write_snapshot_offloaded(snaps.clone(), meta(4), state(4))
            .await
            .expect("write offloaded");
        let snap = load_latest_offloaded(snaps.clone())
            .await
            .expect("load")
            .expect("a snapshot");
        assert_eq!(snap.meta, meta(4));
        assert_eq!(snap.bytes(), state(4).as_slice());
    });
}
