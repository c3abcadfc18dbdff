//! After a failed sync the WAL refuses appends and syncs (it is poisoned), so nothing that
//! may not be durable is ever acknowledged; the error names the file and the operation.
//! The failure is real: RLIMIT_FSIZE makes the kernel fail the write with EFBIG.

mod wal_support;

use corepax::runtime::wal::{Lsn, Wal, WalError};
use wal_support::{run, small_opts};

#[test]
fn wal_poisoned_after_failed_sync() {
    // An injected failure: finish_sync is told the job failed.
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), small_opts()).await.expect("open");
        wal.append(b"one").expect("append");
        assert_eq!(wal.sync().await.expect("sync"), Lsn(1));
        wal.append(b"two").expect("append");
        let _job = wal.begin_sync().expect("begin").expect("a job");
        assert!(wal.begin_sync().expect("nothing pending").is_none());
        wal.append(b"two and a half").expect("append");
        let _beside = wal.begin_sync().expect("begin").expect("a second job");
        wal.append(b"two and three quarters").expect("append");
        assert!(!wal.can_begin_sync(), "two jobs are in flight");
        assert!(matches!(wal.begin_sync(), Err(WalError::SyncInFlight)));
        let failure = WalError::Io {
            op: "fdatasync",
            path: dir.path().join("seg-000000.wal"),
            source: std::io::Error::other("injected"),
        };
        assert!(wal.finish_sync(Err(failure)).is_err());
        assert!(wal.is_poisoned());
        assert!(matches!(
            wal.append(b"three"),
            Err(WalError::Poisoned { .. })
        ));
        assert!(matches!(wal.sync().await, Err(WalError::Poisoned { .. })));
        assert!(matches!(
            wal.truncate_before(Lsn(1)).await,
            Err(WalError::Poisoned { .. })
        ));
        assert_eq!(
            wal.durable_lsn(),
            Lsn(1),
            "the failed sync acknowledged nothing"
        );
    });

    // A real failure: writes past 8 KiB of any file fail with EFBIG.
    let dir = tempfile::tempdir().expect("tempdir");
    run(async {
        let (mut wal, _) = Wal::open(dir.path(), small_opts()).await.expect("open");
        // SAFETY: plain libc calls on this process; SIGXFSZ would otherwise kill it.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 8192,
                rlim_max: libc::RLIM_INFINITY,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
        }
        wal.append(&[7u8; 100]).expect("append");
        let err = wal
            .sync()
            .await
            .expect_err("creating a 64 KiB segment must fail");
        let text = err.to_string();
        assert!(matches!(err, WalError::Io { .. }), "{text}");
        assert!(text.contains("seg-000000.wal"), "names the file: {text}");
        assert!(text.contains("write"), "names the operation: {text}");
        assert!(matches!(wal.append(b"x"), Err(WalError::Poisoned { .. })));
        assert_eq!(wal.durable_lsn(), Lsn(0));
    });
    // SAFETY: as above; restore the limit for anything else in this process.
    unsafe {
        let limit = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
    }
}
