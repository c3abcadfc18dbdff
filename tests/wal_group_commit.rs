//! The shard loop's pattern: one task appends while a committer task syncs; appends made
//! during a sync go into the next one, so one fdatasync covers many records, and every
//! LSN reported durable really is on disk after reopen.

mod wal_support;

use corepax::runtime::wal::{GroupCommitter, Lsn, Wal, WalOptions};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use wal_support::{on_file, record, run, small_opts};

const BURSTS: u64 = 20;
const BURST_RECORDS: u64 = 50;

/// Waits (30 s at most) until `committer` reports `lsn` durable.
async fn wait_durable(committer: &GroupCommitter, lsn: Lsn) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while committer.durable_lsn() < lsn {
        assert!(std::time::Instant::now() < deadline, "never synced");
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn wal_group_commit_batches_appends_made_during_a_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reported = run(async {
        let (wal, _) = Wal::open(dir.path(), small_opts()).await.expect("open");
        let committer = GroupCommitter::new(wal);
        let reported = Rc::new(RefCell::new(Vec::new()));
        let task = glommio::spawn_local({
            let committer = committer.clone();
            let reported = reported.clone();
            async move { committer.run(|lsn| reported.borrow_mut().push(lsn)).await }
        });
        // Spare segments are prepared beside the committer, without blocking its syncs.
        let spares = glommio::spawn_local({
            let committer = committer.clone();
            async move { committer.preallocate(2).await }
        });
        let mut lsn = Lsn(0);
        for burst in 0..BURSTS {
            for i in 0..BURST_RECORDS {
                lsn = committer
                    .append(&record(burst * BURST_RECORDS + i + 1))
                    .expect("append");
                if i % 10 == 0 {
                    // Let the committer start a sync in the middle of the burst.
                    glommio::yield_if_needed().await;
                    glommio::executor().yield_task_queue_now().await;
                }
            }
        }
        wait_durable(&committer, lsn).await;
        spares.await.expect("preallocate");
        // Recycling through the committer while it may be syncing.
        committer.truncate_before(lsn).await.expect("truncate");
        committer.close();
        task.await.expect("committer ends cleanly");
        assert!(matches!(
            committer.append(b"late"),
            Err(corepax::runtime::wal::WalError::Closed)
        ));
        assert!(!committer.is_poisoned());
        reported.borrow().clone()
    });
    let total = BURSTS * BURST_RECORDS;
    assert_eq!(reported.last(), Some(&Lsn(total)));
    assert!(
        reported.windows(2).all(|w| w[0] < w[1]),
        "durable LSNs only grow"
    );
    assert!(
        (reported.len() as u64) < total / 2,
        "{} syncs for {total} records: appends were not grouped",
        reported.len()
    );
    run(async {
        let (_wal, rec) = Wal::open(dir.path(), small_opts()).await.expect("reopen");
        assert!(rec.damage.is_none());
        // Whole segments below the last LSN were recycled; the rest survive in order.
        let first = rec.records.first().map_or(0, |r| r.0.0);
        assert!(first > 1, "truncate_before recycled the oldest segments");
        assert_eq!(rec.records.last().map(|r| r.0), Some(Lsn(total)));
        assert_eq!(rec.records.len() as u64, total - first + 1);
        for (lsn, bytes) in &rec.records {
            assert_eq!(bytes, &record(lsn.0));
        }
    });
}

/// A lazy record starts no sync of its own: it becomes durable with the next ordinary
/// append's sync, or when flushed; closing syncs whatever is left.
#[test]
fn wal_lazy_records_wait_for_the_next_sync() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (wal, _) = Wal::open(dir.path(), small_opts()).await.expect("open");
        let committer = GroupCommitter::new(wal);
        let task = glommio::spawn_local({
            let committer = committer.clone();
            async move { committer.run(|_| {}).await }
        });
        let settle = || glommio::timer::sleep(Duration::from_millis(50));
        let lazy = committer.append_lazy(&record(1)).expect("append");
        settle().await;
        assert_eq!(
            committer.durable_lsn(),
            Lsn(0),
            "a lazy record alone is not synced"
        );
        let urgent = committer.append(&record(2)).expect("append");
        wait_durable(&committer, urgent).await;
        assert!(
            committer.durable_lsn() >= lazy,
            "the next sync took the lazy one too"
        );
        let lazy = committer.append_lazy(&record(3)).expect("append");
        settle().await;
        assert!(committer.durable_lsn() < lazy);
        committer.flush();
        wait_durable(&committer, lazy).await;
        let last = committer.append_lazy(&record(4)).expect("append");
        committer.close();
        task.await.expect("committer ends cleanly");
        assert_eq!(
            committer.durable_lsn(),
            last,
            "closing synced the lazy record"
        );
    });
}

/// How a leader's step sends its accepts before its own write (`SyncStart::AfterSends`):
/// it appends the record without waking the committer, its sends wake the peer links'
/// writers, and it flushes last, so the committer runs after them. A task woken between
/// the append and the flush, as a writer is, blocks its thread and watches the file: the
/// record stays out of it meanwhile. Appended the ordinary way (the committer woken
/// first), the write goes out before that task runs and the record shows up while it
/// blocks.
#[test]
fn wal_a_record_flushed_after_a_wake_is_written_after_the_woken_task() {
    const WATCHED: [u8; 1000] = [0xA5; 1000];
    for flushed_after in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let seen = run(async move {
            let (wal, _) = Wal::open(&path, small_opts()).await.expect("open");
            let committer = GroupCommitter::new(wal);
            let task = glommio::spawn_local({
                let committer = committer.clone();
                async move { committer.run(|_| {}).await }
            });
            // The watcher waits to be woken, as a peer link's writer waits for a send.
            let (go, woken) = futures_channel::oneshot::channel::<()>();
            let watch = glommio::spawn_local({
                let path = path.clone();
                async move {
                    woken.await.expect("woken");
                    let watch_for = Duration::from_millis(if flushed_after { 300 } else { 10_000 });
                    let until = std::time::Instant::now() + watch_for;
                    while std::time::Instant::now() < until {
                        if on_file(&path, &WATCHED) {
                            return true;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    false
                }
            });
            // An idle log whose tail segment is in place; the watcher waits.
            wait_durable(&committer, committer.append(&record(1)).expect("append")).await;
            let lsn = if flushed_after {
                let lsn = committer.append_lazy(&WATCHED).expect("append");
                go.send(()).expect("the watcher waits");
                committer.flush();
                lsn
            } else {
                let lsn = committer.append(&WATCHED).expect("append");
                go.send(()).expect("the watcher waits");
                lsn
            };
            let seen = watch.await;
            wait_durable(&committer, lsn).await;
            assert!(on_file(&path, &WATCHED), "durable, so in the file");
            committer.close();
            task.await.expect("committer ends cleanly");
            seen
        });
        assert_eq!(
            seen, !flushed_after,
            "flushed after the wake: {flushed_after}; record in the file while the task \
             woken after the append ran: {seen}"
        );
    }
}

/// A sync hands its write to the kernel before the task that started it yields
/// (`DmaFile::write_at_now`): a sync polled once, and not again while this task blocks
/// its thread, still gets its record into the file. A write left for the executor's
/// next poll would go out only after this task yields, which it never does here: the
/// test fails after 10 s.
#[test]
fn wal_a_sync_hands_its_write_to_the_kernel_before_its_task_yields() {
    use std::future::Future;
    for sync in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = WalOptions {
            sync,
            ..small_opts()
        };
        run(async {
            let (mut wal, _) = Wal::open(dir.path(), opts).await.expect("open");
            // The tail segment is in place: the next sync's first poll reaches its write.
            wal.append(&[1u8; 100]).expect("append");
            wal.sync().await.expect("first sync");
            let record = [0xA5u8; 1000];
            wal.append(&record).expect("append");
            let mut syncing = std::pin::pin!(wal.sync());
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let _ = syncing.as_mut().poll(&mut cx);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !on_file(dir.path(), &record) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "sync {sync}: the record was not written while its task ran"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            syncing.await.expect("sync");
        });
    }
}
