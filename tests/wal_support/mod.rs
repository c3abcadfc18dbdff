//! Helpers shared by the WAL scenario tests: a glommio executor that fits this machine's
//! 8 MiB RLIMIT_MEMLOCK, and small segments so a few records span several of them.
#![allow(dead_code)]

use corepax::runtime::wal::WalOptions;
use std::future::Future;

/// io_memory small enough to be locked under an 8 MiB RLIMIT_MEMLOCK (glommio's
/// default of 10 MiB is not).
pub const IO_MEMORY_BYTES: usize = 1 << 20;

/// Runs `fut` to completion on a fresh glommio executor.
pub fn run<T>(fut: impl Future<Output = T>) -> T {
    glommio::LocalExecutorBuilder::default()
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("glommio executor starts")
        .run(fut)
}

/// Options with 64 KiB segments (15 blocks of records each).
pub fn small_opts() -> WalOptions {
    WalOptions {
        segment_bytes: 64 << 10,
        write_bytes_max: 16 << 10,
        pending_bytes_max: 1 << 20,
        segments_free_max: 4,
        sync: true,
    }
}

/// A record whose content depends on `i`, of a length that varies with `i`.
pub fn record(i: u64) -> Vec<u8> {
    let len = 50 + (i * 37 % 700) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

/// Path of segment file `index` in `dir`.
pub fn segment_file(dir: &std::path::Path, index: u32) -> std::path::PathBuf {
    dir.join(format!("seg-{index:06}.wal"))
}
