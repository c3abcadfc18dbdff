//! Two syncs in flight at once: the second writes from the block after the first's last,
//! so their writes may complete in either order; recovery reads across the zeros between
//! them; and whichever of the two a crash cuts short, recovery keeps exactly what was
//! durable before both and reports a torn tail, never mid-log corruption: records still on
//! their way to the disk were never reported durable, so nothing acknowledged is lost.

mod wal_support;

use corepax::runtime::wal::{
    DamageReason, GroupCommitter, Lsn, Submit, SyncJob, Wal, WalError, WalOptions,
};
use std::time::Duration;
use wal_support::{record, run, segment_file, small_opts};

/// Records 1..=`n` appended and synced one sync at a time, so the tail block is partly
/// filled before the jobs under test begin.
async fn synced_log(dir: &std::path::Path, n: u64) -> Wal {
    let (mut wal, _) = Wal::open(dir, small_opts()).await.expect("open");
    for i in 1..=n {
        wal.append(&record(i)).expect("append");
    }
    assert_eq!(wal.sync().await.expect("sync"), Lsn(n));
    wal
}

/// Appends records `from..=to` and begins a job for them.
fn job_of(wal: &mut Wal, from: u64, to: u64) -> SyncJob {
    for i in from..=to {
        wal.append(&record(i)).expect("append");
    }
    wal.begin_sync().expect("begin").expect("a job may start")
}

/// Reopens the log; returns what it replayed and how it ended.
fn reopen(dir: &std::path::Path) -> corepax::runtime::wal::Recovery {
    run(async {
        let (_wal, recovery) = Wal::open(dir, small_opts()).await.expect("reopen");
        recovery
    })
}

/// Reopens the log and checks it replays records 1..=`last` with no damage of any kind.
fn assert_clean_replay(dir: &std::path::Path, last: u64) {
    let recovery = reopen(dir);
    assert_records(&recovery, last);
    assert!(recovery.damage.is_none() && recovery.mid_log.is_none());
}

/// Runs two jobs, the second's writes first, and finishes them in the order they began;
/// returns the durable LSN after each.
async fn run_both(wal: &mut Wal, first: SyncJob, second: SyncJob) -> (Lsn, Lsn) {
    let second_done = second.run(Submit::AtOnce).await;
    let first_done = first.run(Submit::AtOnce).await;
    let a = wal.finish_sync(first_done).expect("first");
    let b = wal.finish_sync(second_done).expect("second");
    (a, b)
}

fn assert_records(recovery: &corepax::runtime::wal::Recovery, last: u64) {
    let lsns: Vec<u64> = recovery.records.iter().map(|(l, _)| l.0).collect();
    assert_eq!(lsns, (1..=last).collect::<Vec<_>>());
    for (lsn, bytes) in &recovery.records {
        assert_eq!(bytes, &record(lsn.0), "record {lsn} intact");
    }
}

#[test]
fn two_jobs_in_flight_complete_in_either_order_and_replay_in_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut wal = synced_log(dir.path(), 3).await;
        let first = job_of(&mut wal, 4, 9);
        let second = job_of(&mut wal, 10, 12);
        // The second job's writes end first.
        assert_eq!(run_both(&mut wal, first, second).await, (Lsn(9), Lsn(12)));
        // One job alone again: it continues after the second's records.
        wal.append(&record(13)).expect("append");
        assert_eq!(wal.sync().await.expect("sync"), Lsn(13));
    });
    assert_clean_replay(dir.path(), 13);
}

#[test]
fn a_job_beside_one_ending_less_than_a_header_before_a_block_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut wal = synced_log(dir.path(), 1).await;
        // Record 1 ends at 4096 + 32 + 87; record 2 ends 10 bytes before the block at 8192.
        assert_eq!(record(1).len(), 87);
        let len = 8192 - 10 - (4096 + 32 + 87) - 32;
        wal.append(&vec![2u8; len]).expect("append");
        let first = wal.begin_sync().expect("begin").expect("a job");
        wal.append(&record(3)).expect("append");
        let second = wal.begin_sync().expect("begin").expect("a job beside");
        run_both(&mut wal, first, second).await;
    });
    let recovery = reopen(dir.path());
    let lsns: Vec<u64> = recovery.records.iter().map(|(l, _)| l.0).collect();
    assert_eq!(lsns, vec![1, 2, 3]);
    assert_eq!(recovery.records[2].1, record(3));
    assert!(recovery.damage.is_none() && recovery.mid_log.is_none());
}

#[test]
fn a_crash_that_lands_only_the_second_job_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut wal = synced_log(dir.path(), 3).await;
        let _first = job_of(&mut wal, 4, 9);
        let second = job_of(&mut wal, 10, 12);
        second
            .run(Submit::AtOnce)
            .await
            .expect("second job's writes");
        // The crash: the first job's writes never reach the disk.
    });
    let recovery = reopen(dir.path());
    assert_records(&recovery, 3);
    assert!(recovery.mid_log.is_none(), "nothing durable was lost");
    let damage = recovery
        .damage
        .expect("the second job's records are reported");
    assert_eq!(damage.reason, DamageReason::Torn);
    // The log goes on from the last durable record, and the dropped job's bytes are gone.
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), small_opts()).await.expect("reopen");
        assert_eq!(wal.append(&record(4)).expect("append"), Lsn(4));
        wal.sync().await.expect("sync");
    });
    assert_clean_replay(dir.path(), 4);
}

#[test]
fn a_crash_that_lands_only_the_first_job_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let mut wal = synced_log(dir.path(), 3).await;
        let first = job_of(&mut wal, 4, 9);
        let _second = job_of(&mut wal, 10, 12);
        first.run(Submit::AtOnce).await.expect("first job's writes");
    });
    assert_clean_replay(dir.path(), 9);
}

/// A block of a multi-block write that did not reach the disk, with later blocks of the
/// same write (or of the job beside it) that did: a torn tail, as a crash leaves it.
#[test]
fn a_lost_block_inside_a_job_in_flight_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first_block_of_job = run(async {
        let mut wal = synced_log(dir.path(), 3).await;
        let first = job_of(&mut wal, 4, 40);
        let second = job_of(&mut wal, 41, 45);
        run_both(&mut wal, first, second).await;
        // Record 4 starts in the block records 1..=3 end in; the job's next block is lost.
        let end_of_3: u64 = 4096 + (1..=3).map(|i| 32 + record(i).len() as u64).sum::<u64>();
        (end_of_3 / 4096 + 1) * 4096
    });
    let path = segment_file(dir.path(), 0);
    zero_block(&path, first_block_of_job);
    let recovery = reopen(dir.path());
    assert!(
        recovery.mid_log.is_none(),
        "records in flight together are a tail"
    );
    let damage = recovery.damage.clone().expect("reported");
    let kept = recovery.records.len() as u64;
    assert!((3..40).contains(&kept), "kept {kept}");
    assert_records(&recovery, kept);
    assert!(damage.offset < first_block_of_job + 4096);
}

/// The same loss in a record that was durable before a later one was appended is
/// mid-log corruption: the later record proves it had been synced.
#[test]
fn a_lost_block_of_an_earlier_sync_is_still_mid_log_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lost_block = run(async {
        let mut wal = synced_log(dir.path(), 40).await;
        wal.append(&record(41)).expect("append");
        wal.sync().await.expect("sync");
        // A block in the middle of records 1..=40, none of which starts it.
        4096 * 3
    });
    zero_block(&segment_file(dir.path(), 0), lost_block);
    let recovery = reopen(dir.path());
    let mid = recovery.mid_log.expect("synced records were lost");
    assert!(mid.first_lost.0 <= 40 && mid.last_lost.0 <= 40);
    assert_eq!(recovery.records.last().map(|r| r.0), Some(Lsn(41)));
}

#[test]
fn a_job_that_starts_a_segment_is_never_overlapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), small_opts()).await.expect("open");
        // Fill the first segment almost to its end, then roll into the next in one job.
        let big = vec![7u8; 20_000];
        for _ in 0..3 {
            wal.append(&big).expect("append");
        }
        wal.sync().await.expect("sync");
        let rolling = job_of(&mut wal, 1, 1);
        wal.append(&record(2)).expect("append");
        assert!(!wal.can_begin_sync(), "the first job activates a segment");
        assert!(wal.begin_sync().expect("no error").is_none());
        let done = rolling.run(Submit::AtOnce).await;
        wal.finish_sync(done).expect("rolled");
        assert!(wal.can_begin_sync(), "it starts once the roll is done");
        wal.sync().await.expect("sync");
    });
    let recovery = reopen(dir.path());
    assert_eq!(recovery.records.len(), 5);
    assert!(recovery.damage.is_none() && recovery.mid_log.is_none());
}

#[test]
fn a_job_that_would_not_fit_after_the_gap_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), small_opts()).await.expect("open");
        // 64 KiB segments: after one 61,400-byte record (ending mid-block), a 100-byte
        // record still fits the segment but not after the block the first job ends in.
        let first = {
            wal.append(&vec![1u8; 61_400]).expect("append");
            wal.begin_sync().expect("begin").expect("a job")
        };
        wal.append(&[2u8; 100]).expect("append");
        assert!(!wal.can_begin_sync());
        let done = first.run(Submit::AtOnce).await;
        wal.finish_sync(done).expect("first");
        assert_eq!(wal.sync().await.expect("sync"), Lsn(2));
    });
    let recovery = reopen(dir.path());
    assert_eq!(recovery.records.len(), 2);
    assert!(recovery.damage.is_none() && recovery.mid_log.is_none());
}

#[test]
fn the_committer_overlaps_syncs_and_reports_them_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let last = 400u64;
    let overlapped = run(async {
        // The first record's segment and spares exist: no sync waits for a file's creation.
        let mut wal = synced_log(dir.path(), 1).await;
        wal.preallocate(4).await.expect("spares");
        let committer = GroupCommitter::new(wal);
        let reported = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let task = glommio::spawn_local({
            let (committer, reported) = (committer.clone(), reported.clone());
            async move { committer.run(|lsn| reported.borrow_mut().push(lsn)).await }
        });
        for i in 2..=last {
            assert_eq!(committer.append(&record(i)).expect("append"), Lsn(i));
            // Let the committer start a sync, then append while it is in flight; now and
            // then let every sync end.
            futures_lite::future::yield_now().await;
            if i % 20 == 0 {
                glommio::timer::sleep(Duration::from_millis(2)).await;
            }
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while committer.durable_lsn() < Lsn(last) {
            assert!(std::time::Instant::now() < deadline, "never synced");
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let times = committer.sync_times();
        committer.close();
        task.await.expect("committer ends cleanly");
        let reported = reported.borrow().clone();
        assert!(
            reported.windows(2).all(|w| w[0] < w[1]),
            "durable LSNs only grow: {reported:?}"
        );
        assert_eq!(reported.last(), Some(&Lsn(last)));
        times.overlapped
    });
    assert!(
        overlapped > 0,
        "appends during a sync started one beside it"
    );
    assert_clean_replay(dir.path(), last);
}

#[test]
fn a_wal_without_fsync_overlaps_too() {
    // Page-cache writes complete at once; the bookkeeping is the same.
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = WalOptions {
        sync: false,
        ..small_opts()
    };
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), opts.clone()).await.expect("open");
        wal.append(&record(1)).expect("append");
        wal.sync().await.expect("the first record starts a segment");
        wal.append(&record(2)).expect("append");
        let first = wal.begin_sync().expect("begin").expect("job");
        wal.append(&record(3)).expect("append");
        let second = wal.begin_sync().expect("begin").expect("job beside");
        wal.append(&record(4)).expect("append");
        assert!(matches!(wal.begin_sync(), Err(WalError::SyncInFlight)));
        run_both(&mut wal, first, second).await;
        assert_eq!(wal.sync().await.expect("sync"), Lsn(4));
    });
    let recovery = run(async {
        let (_wal, recovery) = Wal::open(dir.path(), opts).await.expect("reopen");
        recovery
    });
    assert_records(&recovery, 4);
}

/// Writes 4 KiB of zeros at `offset` of `path`: a block whose write never landed.
fn zero_block(path: &std::path::Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open segment");
    file.write_all_at(&[0u8; 4096], offset).expect("zero block");
    file.sync_all().expect("sync");
}
