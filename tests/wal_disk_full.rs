//! A full disk is a state, not a death: on a real tmpfs that fills up, the group committer
//! waits (it reports `disk_full`, acknowledges nothing more, is not poisoned), and once the
//! filesystem grows it resumes by itself; every record is then durable and replays in
//! order. Needs root (it mounts a tmpfs, and unmounts it however the test ends).

mod wal_support;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corepax::runtime::wal::{GroupCommitter, Lsn, Wal};
use wal_support::{record, run, small_opts};

/// A tmpfs mounted for the test, unmounted when dropped (also when the test panics).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(ok.success(), "mounting a tmpfs needs root");
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(ok.success(), "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Polls `cond` on the executor for up to 20 s.
async fn eventually(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    true
}

#[test]
fn a_full_tmpfs_pauses_the_wal_and_more_space_resumes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    let fs = Tmpfs::mount(&mnt, "256k");
    let wal_dir = mnt.join("wal");
    let appended = run(async {
        let (wal, _) = Wal::open(&wal_dir, small_opts()).await.expect("open");
        let committer = GroupCommitter::new(wal);
        let durable = Rc::new(Cell::new(0u64));
        let task = {
            let (c, d) = (committer.clone(), durable.clone());
            glommio::spawn_local(async move { c.run(move |lsn| d.set(lsn.0)).await })
        };
        // 64 KiB segments, a 256 KiB filesystem: the fourth or fifth segment cannot be made.
        let mut last = 0;
        for i in 0..2_000u64 {
            last = committer.append(&record(i)).expect("append").0;
            if i % 20 == 19 {
                let want = last;
                let d = durable.clone();
                let c = committer.clone();
                assert!(
                    eventually(move || d.get() >= want || c.is_disk_full() || c.is_poisoned())
                        .await
                );
                if committer.is_poisoned() {
                    panic!("the WAL was poisoned: {:?}", task.await);
                }
                if committer.is_disk_full() {
                    break;
                }
            }
        }
        assert!(committer.is_disk_full(), "the tmpfs never filled up");
        assert!(
            !committer.is_poisoned(),
            "a full disk does not poison the WAL"
        );
        let why = committer.disk_full().expect("a reason");
        assert!(why.contains("No space left on device"), "{why}");
        // It stays so, acknowledging nothing more, for as long as the disk is full.
        glommio::timer::sleep(Duration::from_millis(1_200)).await;
        assert!(durable.get() < last);
        assert!(committer.is_disk_full());

        fs.resize("4m");
        let (d, c) = (durable.clone(), committer.clone());
        assert!(
            eventually(move || d.get() >= last && !c.is_disk_full()).await,
            "the WAL resumed once space was back"
        );
        // More records after the outage go through as usual.
        for i in 0..20 {
            last = committer
                .append(&record(10_000 + i))
                .expect("append after")
                .0;
        }
        let d = durable.clone();
        assert!(eventually(move || d.get() >= last).await);
        committer.close();
        task.await.expect("the committer ends cleanly");
        last
    });

    // Every record is on disk, in order.
    let records = run(async {
        let (_, recovery) = Wal::open(&wal_dir, small_opts()).await.expect("reopen");
        recovery.records
    });
    assert_eq!(records.len() as u64, appended);
    for (n, (lsn, bytes)) in records.iter().enumerate() {
        assert_eq!(*lsn, Lsn(n as u64 + 1));
        let i = n as u64;
        let want = if n as u64 >= appended - 20 {
            record(10_000 + i - (appended - 20))
        } else {
            record(i)
        };
        assert_eq!(bytes, &want, "record {}", n + 1);
    }
    drop(fs);
}
