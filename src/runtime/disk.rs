//! Deleting large files from the disk the WAL shares, without stalling it or the shard.
//!
//! On a file system mounted with `discard`, unlinking a file frees and discards all of it
//! at once: WAL writes wait behind that, and the `unlink` itself blocks its caller. Measured
//! on this project's 2-core VM (ext4 with `discard`, a virtio disk with a write-back cache):
//! the longest 4 KiB `O_DSYNC` write of a loop beside a 48 MiB file unlinked at once was
//! 15-52 ms, and 1.6-1.8 ms with the file truncated [`DELETE_STEP_BYTES`] a step, each
//! step synced (results/snapshot-disk-20261206); unlinking six 64 MiB files took the
//! calling thread 106-110 ms (results/wal-surplus-delete-20261206). So a file is deleted
//! in synced steps, and from a glommio executor on its blocking thread pool
//! ([`remove_all_offloaded`]). `RocksDB`'s `bytes_max_delete_chunk` does the same.
//!
//! A crash midway leaves a shorter file, never shorter than one step: its header is
//! intact. Each caller makes sure such a file is never mistaken for a whole one (a
//! snapshot fails verification; a free WAL segment of the wrong size is deleted when the
//! WAL is opened).

use std::path::{Path, PathBuf};

/// Bytes freed per synced truncation when a large file is deleted.
pub const DELETE_STEP_BYTES: u64 = 4 << 20;

/// Deletes the file at `path`: while at least two steps are left, truncates one
/// [`DELETE_STEP_BYTES`] off its end and syncs, then unlinks the rest (one to two steps).
pub fn remove_in_steps(path: &Path) -> std::io::Result<()> {
    {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        let mut len = file.metadata()?.len();
        while len >= 2 * DELETE_STEP_BYTES {
            len -= DELETE_STEP_BYTES;
            file.set_len(len)?;
            file.sync_data()?;
        }
    }
    std::fs::remove_file(path)
}

/// [`remove_in_steps`] for each path in turn, on glommio's blocking thread pool (call from
/// inside an executor). A file that cannot be deleted is reported on stderr and skipped:
/// each caller's next cleanup or open deletes what is left over.
pub async fn remove_all_offloaded(paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    glommio::executor()
        .spawn_blocking(move || {
            for path in paths {
                if let Err(e) = remove_in_steps(&path) {
                    eprintln!("warning: could not delete {}: {e}", path.display());
                }
            }
        })
        .await;
}
