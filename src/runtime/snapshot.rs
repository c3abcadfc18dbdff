//! Snapshots of a shard's state machine, written atomically and loaded with memmap2.
//!
//! A snapshot file `snap-<last_included, 20 digits>.snap` holds a 64-byte header and the
//! caller's bytes (opaque here):
//!
//! ```text
//!   0..8   magic "CPXSNAP1"        8..12  version (5)        12..16 reserved (0)
//!  16..24  last_included (slot)   24..32  wal_lsn           32..40 payload length
//!  40..48  xxh3-64 of the payload 48..56  xxh3-64 of bytes 0..48 (the header)
//!  56..64  reserved (0)
//! ```
//!
//! Writing: temp file, fsync, rename, fsync the directory; then only the newest
//! [`SNAPSHOTS_KEPT_MAX`] are kept. A file is never modified after its rename until it is
//! deleted, and only the load at start maps one (its items are copied out and the mapping
//! dropped before any snapshot is written), which is what makes mapping it safe. Loading
//! verifies both checksums and falls back to an older snapshot when the newest is corrupt.
//!
//! The disk is shared with the WAL, whose every sync is on a client's path. A snapshot's
//! file is synced every [`SYNC_STEP_BYTES`] as it is written, so the device never holds
//! more than that of it ahead of a WAL write; written whole and synced once, the file went
//! to the device at once and a WAL write waited behind all of it. Measured on this
//! project's 2-core VM (ext4 with `discard`, a virtio disk with a write-back cache), the
//! longest 4 KiB `O_DSYNC` write of a loop beside (results/snapshot-disk-20261206): a
//! 12 MiB file written and synced once, 7.8-9.4 ms (48 MiB: 24-34 ms); synced every MiB,
//! 1.4-1.8 ms (48 MiB: 1.1-4.4 ms, none while it was written). `RocksDB`'s
//! `bytes_per_sync` does the same. An old snapshot is deleted in synced steps
//! ([`super::disk::remove_in_steps`]); one a crash cut short fails verification.
//!
//! These functions block (std fs). They run rarely; from a glommio executor, call the
//! `*_offloaded` variants, which run them on glommio's blocking thread pool.

use super::disk::remove_in_steps;
use memmap2::Mmap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many snapshot files are kept: the newest and one to fall back on.
pub const SNAPSHOTS_KEPT_MAX: usize = 2;
/// Size of the header in front of the payload.
pub const SNAPSHOT_HEADER_BYTES: usize = 64;
/// Bytes of a snapshot being written between two syncs of its file (see the module doc).
pub const SYNC_STEP_BYTES: u64 = 1 << 20;

const MAGIC: u64 = u64::from_le_bytes(*b"CPXSNAP1");
/// 5: every state machine item carries its kind (string or list), `(version, key, value,
/// kind)`; 4: the payload names its protocol (the shard writes a `ConsensusSnapshot`); 3: the
/// state carries keys' deadlines and the log's time (a Multi-Paxos snapshot, still
/// loaded: [`Snapshot::version`] tells the caller how to read the payload); 2: state
/// machine items encoded as `(version, key, value)` (1: `(key, Entry)`). A file of
/// another version is refused as corrupt by name ("unknown version"), not misread.
pub const VERSION: u32 = 5;
/// The oldest version still loaded.
pub const VERSION_OLDEST_LOADED: u32 = 3;

/// What a snapshot covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// The last applied slot included in the state.
    pub last_included: u64,
    /// The WAL LSN the state covers (the caller's choice; pass `Lsn(wal_lsn + 1)` to
    /// `Wal::truncate_before` once the snapshot is written).
    pub wal_lsn: u64,
}

/// A loaded, verified snapshot; the payload stays mapped, not copied.
pub struct Snapshot {
    /// What it covers.
    pub meta: SnapshotMeta,
    /// The file it came from.
    pub path: PathBuf,
    /// Newer snapshot files that failed verification and were skipped.
    pub skipped_corrupt: Vec<PathBuf>,
    /// The format version of the file (`VERSION_OLDEST_LOADED..=VERSION`).
    pub version: u32,
    map: Mmap,
}

impl Snapshot {
    /// The caller's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map[SNAPSHOT_HEADER_BYTES..]
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("meta", &self.meta)
            .field("path", &self.path)
            .field("len", &self.bytes().len())
            .finish()
    }
}

/// Errors of snapshot writing and loading.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A system call failed.
    #[error("snapshot {op} failed on {}: {source}", path.display())]
    Io {
        /// The operation.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid snapshot.
    #[error("snapshot {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What check failed.
        reason: &'static str,
    },
    /// Snapshot files exist but none verifies: starting empty would lose data.
    #[error("no valid snapshot in {}; corrupt: {paths:?}", dir.display())]
    AllCorrupt {
        /// The directory.
        dir: PathBuf,
        /// The files that failed.
        paths: Vec<PathBuf>,
    },
    /// The blocking thread pool task failed.
    #[error("snapshot task on the blocking pool failed: {reason}")]
    Offload {
        /// Why.
        reason: String,
    },
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> SnapshotError {
    SnapshotError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn snapshot_path(dir: &Path, last_included: u64) -> PathBuf {
    dir.join(format!("snap-{last_included:020}.snap"))
}

/// Parses `snap-NNNN.snap` back into its `last_included`.
fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn encode_header(
    meta: &SnapshotMeta,
    payload_len: u64,
    payload_sum: u64,
) -> [u8; SNAPSHOT_HEADER_BYTES] {
    let mut h = [0u8; SNAPSHOT_HEADER_BYTES];
    h[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&meta.last_included.to_le_bytes());
    h[24..32].copy_from_slice(&meta.wal_lsn.to_le_bytes());
    h[32..40].copy_from_slice(&payload_len.to_le_bytes());
    h[40..48].copy_from_slice(&payload_sum.to_le_bytes());
    let header_sum = xxhash_rust::xxh3::xxh3_64(&h[0..48]);
    h[48..56].copy_from_slice(&header_sum.to_le_bytes());
    h
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Checks a whole snapshot file's bytes; returns its meta and format version.
fn verify(path: &Path, bytes: &[u8]) -> Result<(SnapshotMeta, u32), SnapshotError> {
    let corrupt = |reason| SnapshotError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(corrupt("shorter than its header"));
    }
    let h = &bytes[..SNAPSHOT_HEADER_BYTES];
    if le_u64(&h[48..56]) != xxhash_rust::xxh3::xxh3_64(&h[0..48]) {
        return Err(corrupt("header checksum mismatch"));
    }
    if le_u64(&h[0..8]) != MAGIC {
        return Err(corrupt("bad magic"));
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if !(VERSION_OLDEST_LOADED..=VERSION).contains(&version) {
        return Err(corrupt("unknown version"));
    }
    let payload = &bytes[SNAPSHOT_HEADER_BYTES..];
    if le_u64(&h[32..40]) != payload.len() as u64 {
        return Err(corrupt("length does not match the file size"));
    }
    if le_u64(&h[40..48]) != xxhash_rust::xxh3::xxh3_64(payload) {
        return Err(corrupt("payload checksum mismatch"));
    }
    let meta = SnapshotMeta {
        last_included: le_u64(&h[16..24]),
        wal_lsn: le_u64(&h[24..32]),
    };
    Ok((meta, version))
}

/// Snapshot files in `dir`, newest (highest `last_included`) first.
fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SnapshotError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read directory", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("read directory", dir, e))?;
        if let Some(n) = entry.file_name().to_str().and_then(parse_snapshot_name) {
            out.push((n, entry.path()));
        }
    }
    out.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    Ok(out)
}

/// Writes a snapshot durably and atomically, then deletes all but the newest
/// [`SNAPSHOTS_KEPT_MAX`]. Blocks. Returns the new file's path.
pub fn write_snapshot(
    dir: &Path,
    meta: SnapshotMeta,
    bytes: &[u8],
) -> Result<PathBuf, SnapshotError> {
    write_snapshot_with(dir, meta, |w| w.write_all(bytes))
}

/// Counts and hashes what passes through on its way to the file.
struct Summing<W> {
    inner: W,
    len: u64,
    hasher: xxhash_rust::xxh3::Xxh3Default,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.len += n as u64;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Like [`write_snapshot`], with the payload written by `payload` as it is produced: a
/// state of any size goes to the file through a 1 MiB buffer, never whole in memory.
pub fn write_snapshot_with(
    dir: &Path,
    meta: SnapshotMeta,
    payload: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<PathBuf, SnapshotError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create directory", dir, e))?;
    let path = snapshot_path(dir, meta.last_included);
    let tmp = path.with_extension("snap.tmp");
    let written = write_tmp(&tmp, &meta, payload);
    if written.is_err() {
        // A full disk gets its space back; the WAL still holds everything the snapshot
        // would have covered. Best effort: a leftover `.tmp` is never loaded.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    std::fs::rename(&tmp, &path).map_err(|e| io_err("rename", &tmp, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("fsync directory", dir, e))?;
    for (_, old) in list(dir)?.into_iter().skip(SNAPSHOTS_KEPT_MAX) {
        remove_in_steps(&old).map_err(|e| io_err("remove", &old, e))?;
    }
    Ok(path)
}

/// What [`Stepped`] needs of the file it writes to.
trait SyncData: Write {
    /// `fdatasync`.
    fn sync_data(&self) -> std::io::Result<()>;
}

impl SyncData for &mut std::fs::File {
    fn sync_data(&self) -> std::io::Result<()> {
        std::fs::File::sync_data(self)
    }
}

/// The file a snapshot is written to, synced every [`SYNC_STEP_BYTES`] (see the module
/// doc).
struct Stepped<W> {
    inner: W,
    unsynced: u64,
}

impl<W: SyncData> Write for Stepped<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= SYNC_STEP_BYTES {
            self.inner.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the snapshot file under its temporary name `tmp`, synced.
fn write_tmp(
    tmp: &Path,
    meta: &SnapshotMeta,
    payload: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), SnapshotError> {
    use std::io::{Seek, SeekFrom};
    const BUFFER_BYTES: usize = 1 << 20;
    {
        let mut file = std::fs::File::create(tmp).map_err(|e| io_err("create", tmp, e))?;
        // The header goes in last, once the payload's length and checksum are known; a
        // crash before then leaves a `.tmp` file that is never loaded.
        file.write_all(&[0u8; SNAPSHOT_HEADER_BYTES])
            .map_err(|e| io_err("write", tmp, e))?;
        // Buffered before the checksum: it hashes 1 MiB pieces, not every field.
        let mut out = std::io::BufWriter::with_capacity(
            BUFFER_BYTES,
            Summing {
                inner: Stepped {
                    inner: &mut file,
                    unsynced: 0,
                },
                len: 0,
                hasher: xxhash_rust::xxh3::Xxh3Default::new(),
            },
        );
        payload(&mut out).map_err(|e| io_err("write", tmp, e))?;
        let summed = out
            .into_inner()
            .map_err(|e| io_err("write", tmp, e.into_error()))?;
        let header = encode_header(meta, summed.len, summed.hasher.digest());
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header))
            .map_err(|e| io_err("write", tmp, e))?;
        file.sync_all().map_err(|e| io_err("fsync", tmp, e))?;
    }
    Ok(())
}

/// Loads the newest snapshot that verifies, mapping it. A corrupt newer one is reported
/// (stderr and [`Snapshot::skipped_corrupt`]) and the older one used. `Ok(None)` when
/// there is no snapshot at all; an error when there are some but none is valid.
pub fn load_latest(dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    let mut skipped = Vec::new();
    for (_, path) in list(dir)? {
        let file = std::fs::File::open(&path).map_err(|e| io_err("open", &path, e))?;
        let len = file.metadata().map_err(|e| io_err("stat", &path, e))?.len();
        let checked = if len < SNAPSHOT_HEADER_BYTES as u64 {
            Err(SnapshotError::Corrupt {
                path: path.clone(),
                reason: "shorter than its header",
            })
        } else {
            // SAFETY: snapshot files are never modified after their rename (only deleted,
            // which leaves an existing mapping valid), so the mapped bytes cannot change.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| io_err("mmap", &path, e))?;
            verify(&path, &map).map(|meta| (meta, map))
        };
        match checked {
            Ok(((meta, version), map)) => {
                return Ok(Some(Snapshot {
                    meta,
                    path,
                    skipped_corrupt: skipped,
                    version,
                    map,
                }));
            }
            Err(e) => {
                eprintln!("warning: {e}; trying an older snapshot");
                skipped.push(path);
            }
        }
    }
    if skipped.is_empty() {
        Ok(None)
    } else {
        Err(SnapshotError::AllCorrupt {
            dir: dir.to_path_buf(),
            paths: skipped,
        })
    }
}

/// [`write_snapshot`] on glommio's blocking thread pool (call from inside an executor).
pub async fn write_snapshot_offloaded(
    dir: PathBuf,
    meta: SnapshotMeta,
    bytes: Vec<u8>,
) -> Result<PathBuf, SnapshotError> {
    glommio::executor()
        .spawn_blocking(move || write_snapshot(&dir, meta, &bytes))
        .await
}

/// [`load_latest`] on glommio's blocking thread pool (call from inside an executor).
pub async fn load_latest_offloaded(dir: PathBuf) -> Result<Option<Snapshot>, SnapshotError> {
    glommio::executor()
        .spawn_blocking(move || load_latest(&dir))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::disk::DELETE_STEP_BYTES;

    #[test]
    fn names_round_trip() {
        let p = snapshot_path(Path::new("/d"), 17);
        let name = p.file_name().and_then(|n| n.to_str());
        assert_eq!(name.and_then(parse_snapshot_name), Some(17));
        assert_eq!(parse_snapshot_name("snap-1.snap.tmp"), None);
        assert_eq!(parse_snapshot_name("snap-x.snap"), None);
    }

    /// A valid snapshot file of the payload `state`, and its meta.
    fn sample_file() -> (SnapshotMeta, Vec<u8>) {
        let meta = SnapshotMeta {
            last_included: 5,
            wal_lsn: 9,
        };
        let mut file = encode_header(&meta, 5, xxhash_rust::xxh3::xxh3_64(b"state")).to_vec();
        file.extend_from_slice(b"state");
        (meta, file)
    }

    #[test]
    fn verify_catches_each_kind_of_damage() {
        let (meta, file) = sample_file();
        let p = Path::new("x");
        assert_eq!(verify(p, &file).ok(), Some((meta, VERSION)));
        let mut flipped = file.clone();
        flipped[SNAPSHOT_HEADER_BYTES + 1] ^= 1;
        assert!(verify(p, &flipped).is_err());
        let mut header_flipped = file.clone();
        header_flipped[17] ^= 1;
        assert!(verify(p, &header_flipped).is_err());
        assert!(verify(p, &file[..file.len() - 1]).is_err());
        assert!(verify(p, &file[..10]).is_err());
    }

    /// `file` with its header's version set to `version` (and its checksum made right).
    fn with_version(file: &[u8], version: u32) -> Vec<u8> {
        let mut f = file.to_vec();
        f[8..12].copy_from_slice(&version.to_le_bytes());
        let sum = xxhash_rust::xxh3::xxh3_64(&f[0..48]);
        f[48..56].copy_from_slice(&sum.to_le_bytes());
        f
    }

    #[test]
    fn the_previous_version_loads_and_others_are_refused() {
        let (meta, file) = sample_file();
        let p = Path::new("x");
        let old = with_version(&file, VERSION_OLDEST_LOADED);
        assert_eq!(verify(p, &old).ok(), Some((meta, VERSION_OLDEST_LOADED)));
        for v in [VERSION_OLDEST_LOADED - 1, VERSION + 1] {
            assert!(matches!(
                verify(p, &with_version(&file, v)),
                Err(SnapshotError::Corrupt {
                    reason: "unknown version",
                    ..
                })
            ));
        }
    }

    #[test]
    fn a_payload_written_in_pieces_loads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let meta = SnapshotMeta {
            last_included: 3,
            wal_lsn: 4,
        };
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        write_snapshot_with(dir.path(), meta, |w| {
            payload.chunks(999).try_for_each(|c| w.write_all(c))
        })
        .unwrap();
        let snap = load_latest(dir.path()).unwrap().expect("written");
        assert_eq!(snap.meta, meta);
        assert!(snap.bytes() == &payload[..]);
    }

    /// Records what is written and where each sync fell.
    #[derive(Default)]
    struct Recorder {
        written: Vec<u8>,
        synced_at: std::cell::RefCell<Vec<usize>>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl SyncData for &mut Recorder {
        fn sync_data(&self) -> std::io::Result<()> {
            self.synced_at.borrow_mut().push(self.written.len());
            Ok(())
        }
    }

    #[test]
    fn a_snapshot_is_synced_every_step_as_it_is_written() {
        let step = SYNC_STEP_BYTES as usize;
        for piece in [999, 64 << 10, step] {
            let mut rec = Recorder::default();
            let payload: Vec<u8> = (0..3 * step + step / 2).map(|i| (i % 251) as u8).collect();
            let mut w = Stepped {
                inner: &mut rec,
                unsynced: 0,
            };
            payload
                .chunks(piece)
                .try_for_each(|c| w.write_all(c))
                .unwrap();
            assert!(rec.written == payload);
            let synced = rec.synced_at.into_inner();
            assert_eq!(synced.len(), 3, "pieces of {piece}: synced at {synced:?}");
            let mut last = 0;
            for at in synced {
                assert!(
                    at - last >= step && at - last < step + piece,
                    "{at} after {last}"
                );
                last = at;
            }
        }
    }

    #[test]
    fn old_snapshots_are_deleted_even_when_a_crash_cut_one_short() {
        let dir = tempfile::tempdir().unwrap();
        let meta = |n| SnapshotMeta {
            last_included: n,
            wal_lsn: n,
        };
        // Large enough to be deleted in steps (`remove_in_steps` truncates while two or
        // more steps are left).
        let big = vec![7u8; 2 * DELETE_STEP_BYTES as usize + 5];
        let first = write_snapshot(dir.path(), meta(1), &big).unwrap();
        write_snapshot(dir.path(), meta(2), &big).unwrap();
        let third = write_snapshot(dir.path(), meta(3), b"small").unwrap();
        assert!(!first.exists(), "the oldest beyond the two kept is deleted");
        // A crash midway through deleting the second: it is shorter, fails verification,
        // is never loaded in place of the newest, and the next cleanup deletes it.
        let second = snapshot_path(dir.path(), 2);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&second)
            .unwrap();
        f.set_len(DELETE_STEP_BYTES).unwrap();
        drop(f);
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().path, third);
        write_snapshot(dir.path(), meta(4), b"newer").unwrap();
        let left: Vec<u64> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(left, [4, 3]);
        remove_in_steps(&third).unwrap();
        assert!(!third.exists());
        assert!(
            remove_in_steps(&third).is_err(),
            "a missing file is an error"
        );
    }
}
