//! Write-ahead log on glommio `DmaFile` (O_DIRECT, io_uring) with group commit.
//!
//! One [`Wal`] per shard, used only from that shard's glommio executor (it is `!Send`).
//! Records are opaque bytes; the caller serialises them.
//!
//! # Layout and why
//!
//! The log lives in fixed-size segment files `seg-NNNNNN.wal` in one directory (see
//! [`mod@format`] for the bytes). Files are pre-written with zeros when created and recycled
//! after [`Wal::truncate_before`]: on this machine, writing into already-written blocks gives
//! 1.5–1.9× the commits/s of appending or of fallocate'd (unwritten) extents, because those
//! cost a metadata update at every sync. Files keep fixed names; which one is which is
//! decided by the header in block 0 (its `seq`), so recycling needs no rename and no
//! directory fsync.
//!
//! Every write is whole 4 KiB blocks from a `DmaBuffer`. Records are packed; the partially
//! filled last block is written again, with more records in it, by the next sync (a sync
//! that starts while another is in flight starts at the next block instead: two writes
//! in flight never share a block, and the rest of the block stays zero). That
//! relies on a 4 KiB write being atomic (the device's physical block is 4 KiB): a torn
//! rewrite could lose records already acknowledged in that block.
//!
//! # Invariants that make recovery safe
//!
//! - A segment's header is durable before any record carrying its `seq` is written, and a
//!   recycled file keeps its last `seq` in a `Free` header, so a new life always gets a
//!   `seq` larger than any record left in any file: stale records are never replayed.
//! - The previous segment is durable before the next one is activated (records go through
//!   `O_DSYNC` handles: a write is durable when it completes), so records never skip: the
//!   chain is checked by LSN (`first_lsn` of each segment).
//! - After recovery the rest of the tail segment is overwritten with zeros before anything
//!   new is written, and segments after a damage point are freed: bytes from a crashed
//!   sync can never be picked up later behind new records.
//! - The header slot right after the last written record is always zero on disk (a write
//!   ending exactly on a block boundary carries one more zero block), unless the next
//!   block starts the next record (a sync begun beside the previous one).
//! - The LSN reported durable only grows through syncs that completed, all of them, in
//!   the order they began; each record says how many LSNs before it were not yet durable
//!   when it was appended (`unsynced`, see [`mod@format`]), which is how recovery tells a
//!   torn tail (a crash mid-write, blocks landed in any order) from mid-log corruption.
//!
//! # Group commit
//!
//! [`Wal::append`] only copies into memory; [`Wal::sync`] writes everything appended so far
//! through `O_DSYNC` handles (durable when the writes complete, no fdatasync). To keep appending while a sync is in flight, use
//! [`GroupCommitter`] (it splits a sync into [`Wal::begin_sync`], the I/O, and
//! [`Wal::finish_sync`], so appends made meanwhile go into the next sync, which starts
//! beside the one in flight when the WAL lets it: [`SYNCS_IN_FLIGHT_MAX`]).
//!
//! # glommio on this machine (measured)
//!
//! - glommio sends a `DmaFile`'s I/O to its polled (IOPOLL) ring when a probe read of the
//!   first file it opens succeeds. On an empty file that read stops at end-of-file and
//!   "succeeds" although this VM's disk has no poll queues; every WAL write then went to the
//!   polled ring and the executor busy-polled until it completed, starving the kernel worker
//!   that completes it (a ~4 ms scheduler tick on about half of all one-client writes).
//!   [`Wal::open`] first opens a probe file with data (`io::settle_completion_mode`), so the
//!   probe asks the device and writes complete by interrupt on the main ring.
//! - `DmaFile` reads on the polled ring fail with EOPNOTSUPP here (that was the symptom of the
//!   above); recovery reads with std `pread` (blocking, once, at startup).
//! - `io_memory` is registered with io_uring, which locks it. glommio's default (10 MiB)
//!   is above this machine's 8 MiB `RLIMIT_MEMLOCK`; glommio then only logs a warning and
//!   hands out unregistered buffers, which still work. Tests and the benchmark use
//!   `LocalExecutorBuilder::default().io_memory(1–4 MiB)` so buffers stay registered.

pub mod format;
mod group;
mod io;
mod job;
mod recovery;

pub use group::{GroupCommitter, SLOW_SYNC, SyncTimes};
pub use io::Submit;
pub use job::{SYNCS_IN_FLIGHT_MAX, SyncDone, SyncJob};

use io::{create_spare, free_segments};

use format::{BLOCK_BYTES, RECORD_HEADER_BYTES};
use glommio::io::DmaFile;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Log sequence number: 1 for the first record ever appended, then +1 per record.
/// `Lsn(0)` means "nothing".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lsn {}", self.0)
    }
}

/// Tuning of a [`Wal`].
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// Size of each segment file, a multiple of 4 KiB, at least 64 KiB (default 64 MiB).
    pub segment_bytes: u64,
    /// Largest single write submitted to the kernel, a multiple of 4 KiB (default 1 MiB).
    pub write_bytes_max: usize,
    /// Bytes that may wait in memory for a sync; `append` refuses beyond (default 32 MiB).
    pub pending_bytes_max: usize,
    /// Recycled segment files kept for reuse; more are deleted (default 4).
    pub segments_free_max: usize,
    /// `false` skips every fdatasync (`--no-fsync`): for benchmarks only, never durable.
    pub sync: bool,
}

/// Default [`WalOptions::segment_bytes`].
const SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// Default [`WalOptions::write_bytes_max`].
const WRITE_BYTES_MAX_DEFAULT: usize = 1 << 20;
/// Default [`WalOptions::segments_free_max`].
const SEGMENTS_FREE_MAX_DEFAULT: usize = 4;

// A write of the default size is whole blocks and fits a segment after its header block.
const _: () = assert!((WRITE_BYTES_MAX_DEFAULT as u64).is_multiple_of(BLOCK_BYTES));
const _: () = assert!(WRITE_BYTES_MAX_DEFAULT as u64 <= SEGMENT_BYTES_DEFAULT - BLOCK_BYTES);
const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT);

// With the default options a record of the node's largest size fits a segment and the
// pending buffer, so `record_bytes_max` is exactly `limits::WAL_RECORD_BYTES_MAX`.
const _: () = assert!(
    crate::limits::WAL_RECORD_BYTES_MAX + RECORD_HEADER_BYTES
        <= crate::limits::WAL_PENDING_BYTES_MAX
);
const _: () = assert!(
    (crate::limits::WAL_RECORD_BYTES_MAX + RECORD_HEADER_BYTES) as u64
        <= SEGMENT_BYTES_DEFAULT - BLOCK_BYTES
);

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            write_bytes_max: WRITE_BYTES_MAX_DEFAULT,
            pending_bytes_max: crate::limits::WAL_PENDING_BYTES_MAX,
            segments_free_max: SEGMENTS_FREE_MAX_DEFAULT,
            sync: true,
        }
    }
}

/// Smallest allowed segment: a header block and room for a few records.
const SEGMENT_BYTES_MIN: u64 = 16 * BLOCK_BYTES;

impl WalOptions {
    /// Checks the relations between the limits.
    pub fn validate(&self) -> Result<(), WalError> {
        let bad = |why: String| Err(WalError::BadOptions { reason: why });
        if self.segment_bytes < SEGMENT_BYTES_MIN || !self.segment_bytes.is_multiple_of(BLOCK_BYTES)
        {
            return bad(format!(
                "segment_bytes = {} must be a multiple of {BLOCK_BYTES} and at least {SEGMENT_BYTES_MIN}",
                self.segment_bytes
            ));
        }
        if self.write_bytes_max == 0 || !(self.write_bytes_max as u64).is_multiple_of(BLOCK_BYTES) {
            return bad(format!(
                "write_bytes_max = {} must be a positive multiple of {BLOCK_BYTES}",
                self.write_bytes_max
            ));
        }
        if self.pending_bytes_max < RECORD_HEADER_BYTES {
            return bad(format!(
                "pending_bytes_max = {} is smaller than one record header",
                self.pending_bytes_max
            ));
        }
        Ok(())
    }

    /// Largest payload one record may carry with these options: what a segment and the
    /// pending buffer hold, and never more than [`crate::limits::WAL_RECORD_BYTES_MAX`], the
    /// size every layer above sizes its batches for (so replicas with different options
    /// still refuse the same records).
    pub fn record_bytes_max(&self) -> usize {
        let room = self.segment_bytes - BLOCK_BYTES - RECORD_HEADER_BYTES as u64;
        let room = room.min(u32::MAX as u64) as usize;
        room.min(self.pending_bytes_max - RECORD_HEADER_BYTES)
            .min(crate::limits::WAL_RECORD_BYTES_MAX)
    }
}

/// Why recovery stopped before the end of the written data.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DamageReason {
    /// A record runs past the end of the data in the file (the file was cut short).
    Torn,
    /// A complete record whose checksum does not match: a torn or corrupted write.
    ChecksumMismatch,
    /// A record header that cannot be right (wrong LSN, impossible length, future seq).
    BadHeader,
    /// A segment does not continue where the previous one ended (LSN gap).
    LsnGap,
}

/// Where and why recovery stopped replaying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailDamage {
    /// `seq` of the segment holding the first bad record.
    pub segment: u64,
    /// Byte offset of the first bad record in that segment's file.
    pub offset: u64,
    /// What was wrong with it.
    pub reason: DamageReason,
    /// Non-zero bytes discarded from `offset` to the end of that segment (an upper bound:
    /// it may count stale bytes of the segment's previous life).
    pub dropped_bytes: u64,
    /// Later segments discarded because the log broke before them.
    pub dropped_segments: u64,
}

impl fmt::Display for TailDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WAL damage in segment seq {} at offset {}: {:?}; dropped {} bytes and {} later segment(s)",
            self.segment, self.offset, self.reason, self.dropped_bytes, self.dropped_segments
        )
    }
}

/// Records lost in the middle of the log: damage with valid records after it. Those
/// records had been synced (a later one was, and every segment is synced before the next
/// is activated), so the caller may have acknowledged what they said: unlike a torn tail,
/// this is not a crash but storage corruption, and the caller must treat what they held
/// as forgotten rather than as never written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MidLogCorruption {
    /// `seq` of the segment holding the first damage.
    pub segment: u64,
    /// Byte offset of the first damage in that segment's file.
    pub offset: u64,
    /// What was wrong at the first damage.
    pub reason: DamageReason,
    /// The first LSN that could not be read.
    pub first_lost: Lsn,
    /// The last LSN that could not be read (every lost LSN is in `first_lost..=last_lost`).
    pub last_lost: Lsn,
    /// LSNs lost in all, over every damaged region.
    pub records_lost: u64,
    /// Damaged regions, each followed by valid records.
    pub regions: u64,
}

impl fmt::Display for MidLogCorruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WAL corruption in the middle of the log (synced records lost) from segment seq {} offset {}: {:?}; \
             {} record(s) lost between {} and {} in {} region(s); the records after them were kept",
            self.segment,
            self.offset,
            self.reason,
            self.records_lost,
            self.first_lost,
            self.last_lost,
            self.regions
        )
    }
}

/// What [`Wal::open`] found on disk.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Every valid record in LSN order, including those below a past `truncate_before`
    /// that are still in a live segment: skip what your snapshot already covers.
    pub records: Vec<(Lsn, Vec<u8>)>,
    /// Set when replay stopped at a torn or corrupt record rather than a clean end (the
    /// end of the log: records never synced, so never acknowledged).
    pub damage: Option<TailDamage>,
    /// Set when records were lost before valid ones (see [`MidLogCorruption`]); replay
    /// skipped them and went on. Every open reports it again while the damaged segment is
    /// live: it is freed only by a `truncate_before` past it.
    pub mid_log: Option<MidLogCorruption>,
    /// Segment files with an unreadable header, renamed to `*.corrupt` and left alone.
    pub corrupt_files: Vec<PathBuf>,
}

/// Errors of the WAL; each names the file and the operation.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A system call failed (ENOSPC shows up here as "No space left on device").
    #[error("WAL {op} failed on {}: {source}", path.display())]
    Io {
        /// The operation, e.g. "fdatasync".
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A write or sync failed earlier; nothing more is accepted, to never acknowledge
    /// records that may not be durable. Reopen the WAL to recover.
    #[error("WAL refuses work after an earlier failure: {reason}")]
    Poisoned {
        /// The first failure.
        reason: String,
    },
    /// The record is larger than one segment (or the pending limit) can hold. Refusing it
    /// changes nothing in the WAL: the WAL is not poisoned and takes later records.
    #[error("WAL record of {len_bytes} bytes exceeds the limit of {len_bytes_max} bytes")]
    RecordTooLarge {
        /// The record's length.
        len_bytes: usize,
        /// [`WalOptions::record_bytes_max`].
        len_bytes_max: usize,
    },
    /// `pending_bytes_max` bytes already wait for a sync.
    #[error(
        "WAL has {pending_bytes} bytes waiting for a sync (pending_bytes_max {pending_bytes_max}); sync first"
    )]
    PendingFull {
        /// Bytes waiting.
        pending_bytes: usize,
        /// The limit.
        pending_bytes_max: usize,
    },
    /// [`Wal::begin_sync`] was called while another sync was still in flight.
    #[error("a WAL sync is already in flight")]
    SyncInFlight,
    /// [`GroupCommitter::close`] was called: no more appends are accepted.
    #[error("the WAL group committer is closed")]
    Closed,
    /// The options are inconsistent.
    #[error("invalid WAL options: {reason}")]
    BadOptions {
        /// What is wrong.
        reason: String,
    },
}

impl WalError {
    /// The disk (or the user's quota) is full, and the failed operation is one that may be
    /// retried once space is back: a write, a segment's creation. Not an fdatasync or
    /// fsync, even one reporting ENOSPC: after a failed sync the state of the page cache
    /// is unknown (the kernel may have dropped the dirty pages), so that stays fatal. A
    /// record write is `O_DSYNC` and `O_DIRECT`: it passes no page cache, so writing the
    /// same bytes to the same place again and having that write complete makes them
    /// durable; it stays retryable.
    pub fn is_no_space(&self) -> bool {
        match self {
            WalError::Io { op, source, .. } => {
                // glommio hands its errors back as `Custom` ones: by kind, not errno.
                !matches!(*op, "fdatasync" | "fsync directory")
                    && (matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
                        || matches!(
                            source.kind(),
                            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                        ))
            }
            _ => false,
        }
    }
}

fn io_err(op: &'static str, path: &Path, e: impl Into<std::io::Error>) -> WalError {
    WalError::Io {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// File name of segment file number `index`.
fn segment_path(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("seg-{index:06}.wal"))
}

/// Parses `seg-NNNNNN.wal` back into its index.
fn parse_segment_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".wal")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment in the live chain.
struct LiveSegment {
    index: u32,
    seq: u64,
    first_lsn: u64,
    capacity_bytes: u64,
    file: Rc<DmaFile>,
    path: PathBuf,
}

/// Records appended but not yet handed to a sync, for one segment.
struct PendingChunk {
    seq: u64,
    /// Set when this chunk starts a new segment life.
    first_lsn_if_new: Option<u64>,
    /// Offset in the segment where `bytes` go.
    start: u64,
    bytes: Vec<u8>,
    last_lsn: u64,
}

/// The write-ahead log of one shard. See the module documentation.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    /// The live chain, oldest first; the last one is the tail being written.
    segments: Vec<LiveSegment>,
    /// Indexes of free files of exactly `opts.segment_bytes`, ready to be activated.
    free: Vec<u32>,
    next_index: u32,
    next_seq: u64,
    // The append cursor: where the next record goes, counting pending records.
    next_lsn: u64,
    cursor_seq: u64,
    cursor_pos: u64,
    cursor_capacity: u64,
    pending: Vec<PendingChunk>,
    pending_bytes: usize,
    /// An emptied buffer of a finished sync, to hold the next chunk's records: appends
    /// reuse its room instead of growing a new one by doubling through every sync.
    spare_bytes: Vec<u8>,
    // What is on disk in the tail segment (changed only by `finish_sync`).
    write_pos: u64,
    tail_partial: Vec<u8>,
    durable_lsn: u64,
    /// The last LSN of each sync job in flight, oldest first (at most [`SYNCS_IN_FLIGHT_MAX`]).
    in_flight: Vec<u64>,
    /// Where the newest job in flight ends in the tail segment, when it writes nothing
    /// else (starts no segment): a second job may then start at the block after it.
    flight_end: Option<u64>,
    poisoned: Option<String>,
}

impl Wal {
    /// Opens (or creates) the WAL in `dir`, replays it into [`Recovery::records`], and
    /// makes it ready for appends. Holds every live record in memory at once: for large
    /// logs prefer [`Wal::open_replaying`].
    pub async fn open(dir: &Path, opts: WalOptions) -> Result<(Wal, Recovery), WalError> {
        let mut records = Vec::new();
        let (wal, mut recovery) = Wal::open_replaying(dir, opts, |lsn, bytes| {
            records.push((lsn, bytes.to_vec()));
        })
        .await?;
        recovery.records = records;
        Ok((wal, recovery))
    }

    /// Like [`Wal::open`], but hands each valid record to `on_record` in LSN order instead
    /// of collecting them (`Recovery::records` stays empty). The records stop at damage
    /// at the end of the log and skip damage in the middle; both are reported in the
    /// returned [`Recovery`].
    pub async fn open_replaying(
        dir: &Path,
        opts: WalOptions,
        mut on_record: impl FnMut(Lsn, &[u8]),
    ) -> Result<(Wal, Recovery), WalError> {
        opts.validate()?;
        recovery::open(dir, opts, &mut on_record).await
    }

    /// Buffers one record in memory (no I/O) and returns its LSN. It becomes durable with
    /// the next [`Wal::sync`] (or sync job) that starts after this call.
    pub fn append(&mut self, record: &[u8]) -> Result<Lsn, WalError> {
        self.append_parts(&[record])
    }

    /// [`Wal::append`] of the record `parts` make one after the other (written from its
    /// pieces, never joined in a buffer of their own).
    pub fn append_parts(&mut self, parts: &[&[u8]]) -> Result<Lsn, WalError> {
        self.check_poisoned()?;
        let len_bytes_max = self.opts.record_bytes_max();
        let record_bytes: usize = parts.iter().map(|p| p.len()).sum();
        if record_bytes > len_bytes_max {
            return Err(WalError::RecordTooLarge {
                len_bytes: record_bytes,
                len_bytes_max,
            });
        }
        let need = (RECORD_HEADER_BYTES + record_bytes) as u64;
        if self.pending_bytes + need as usize > self.opts.pending_bytes_max {
            return Err(WalError::PendingFull {
                pending_bytes: self.pending_bytes,
                pending_bytes_max: self.opts.pending_bytes_max,
            });
        }
        let lsn = self.next_lsn;
        if self.cursor_seq == 0 || self.cursor_pos + need > self.cursor_capacity {
            // Roll to a new segment life: its seq and first LSN are fixed now, so the
            // record can be encoded now; the sync that writes it activates the file.
            self.cursor_seq = self.next_seq;
            self.next_seq += 1;
            self.cursor_pos = BLOCK_BYTES;
            self.cursor_capacity = self.opts.segment_bytes;
            self.pending.push(PendingChunk {
                seq: self.cursor_seq,
                first_lsn_if_new: Some(lsn),
                start: BLOCK_BYTES,
                bytes: std::mem::take(&mut self.spare_bytes),
                last_lsn: 0,
            });
        } else if self.pending.last().is_none_or(|c| c.seq != self.cursor_seq) {
            self.pending.push(PendingChunk {
                seq: self.cursor_seq,
                first_lsn_if_new: None,
                start: self.cursor_pos,
                bytes: std::mem::take(&mut self.spare_bytes),
                last_lsn: 0,
            });
        }
        let chunk = self.pending.last_mut().expect("a chunk was just ensured");
        assert_eq!(chunk.seq, self.cursor_seq);
        assert_eq!(chunk.start + chunk.bytes.len() as u64, self.cursor_pos);
        // Everything after the durable LSN may still be lost in a crash (see format docs).
        let unsynced = u32::try_from(lsn - 1 - self.durable_lsn).unwrap_or(u32::MAX);
        format::encode_record(&mut chunk.bytes, self.cursor_seq, lsn, unsynced, parts);
        chunk.last_lsn = lsn;
        self.cursor_pos += need;
        assert!(self.cursor_pos <= self.cursor_capacity);
        self.pending_bytes += need as usize;
        self.next_lsn += 1;
        Ok(Lsn(lsn))
    }

    /// Writes everything appended so far, durable when the writes complete (`O_DSYNC`
    /// handles). Returns the highest durable LSN. On failure the WAL is poisoned.
    pub async fn sync(&mut self) -> Result<Lsn, WalError> {
        match self.begin_sync()? {
            None => Ok(self.durable_lsn()),
            Some(job) => {
                let done = job.run(io::Submit::AtOnce).await;
                let lsn = self.finish_sync(done);
                self.recycle(job);
                lsn
            }
        }
    }

    /// Highest LSN known durable (`Lsn(0)` if none).
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(self.durable_lsn)
    }

    /// LSN the next appended record will get.
    pub fn next_lsn(&self) -> Lsn {
        Lsn(self.next_lsn)
    }

    /// True when records were appended that no sync has taken yet.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// True after a failed sync or truncation.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Number of live segments (tests and metrics).
    pub fn live_segments(&self) -> usize {
        self.segments.len()
    }

    /// Number of free segment files ready for reuse (tests and metrics).
    pub fn free_segments(&self) -> usize {
        self.free.len()
    }

    /// True when no free segment is ready and appends have filled at least half of the
    /// current one: the roll after it would create its segment inside a sync. (A WAL that
    /// never gets that far never pays for a spare.)
    pub fn wants_spare(&self) -> bool {
        self.free.is_empty()
            && self.cursor_seq != 0
            && self.cursor_pos.saturating_mul(2) >= self.cursor_capacity
    }

    /// Recycles every segment whose records all have LSNs below `lsn` (call it once a
    /// snapshot covers them). The tail segment is never recycled. Segments are freed oldest
    /// first, each durably, so a crash leaves a contiguous chain.
    pub async fn truncate_before(&mut self, lsn: Lsn) -> Result<(), WalError> {
        self.check_poisoned()?;
        let victims = self.take_truncatable(lsn);
        let result = free_segments(&victims, self.opts.sync).await;
        let surplus = self.finish_truncate(victims, result)?;
        crate::runtime::disk::remove_all_offloaded(surplus).await;
        Ok(())
    }

    /// Creates pre-written free segment files until `free_min` (at most
    /// `segments_free_max`) are ready, so a later roll does not stall a sync on writing a
    /// whole new segment. Call it at startup or when idle. A failure here acknowledges
    /// nothing, so it does not poison the WAL.
    pub async fn preallocate(&mut self, free_min: usize) -> Result<(), WalError> {
        let target = free_min.min(self.opts.segments_free_max);
        while self.free.len() < target {
            let index = self.next_index;
            self.next_index += 1;
            create_spare(&self.dir, index, &self.opts).await?;
            self.free.push(index);
        }
        Ok(())
    }

    /// `Err(Poisoned)` once a sync or truncation has failed.
    fn check_poisoned(&self) -> Result<(), WalError> {
        match &self.poisoned {
            None => Ok(()),
            Some(reason) => Err(WalError::Poisoned {
                reason: reason.clone(),
            }),
        }
    }

    /// Removes from the chain the segments wholly below `lsn` (no I/O).
    fn take_truncatable(&mut self, lsn: Lsn) -> Vec<LiveSegment> {
        let mut count = 0;
        while count + 1 < self.segments.len() && self.segments[count + 1].first_lsn <= lsn.0 {
            count += 1;
        }
        self.segments.drain(..count).collect()
    }

    /// Puts freed segments into the free pool; returns the surplus, for the caller to
    /// delete off the executor thread ([`crate::runtime::disk`]: unlinked inline, six
    /// 64 MiB segments stalled the shard ~0.1 s). A crash before they are gone leaves free
    /// files that the next open reuses or deletes (`recovery::keep_free`).
    fn finish_truncate(
        &mut self,
        victims: Vec<LiveSegment>,
        result: Result<(), WalError>,
    ) -> Result<Vec<PathBuf>, WalError> {
        if let Err(e) = result {
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        let mut surplus = Vec::new();
        for seg in victims {
            if seg.capacity_bytes == self.opts.segment_bytes
                && self.free.len() < self.opts.segments_free_max
            {
                self.free.push(seg.index);
            } else {
                surplus.push(seg.path);
            }
        }
        Ok(surplus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        let p = segment_path(Path::new("/x"), 42);
        let name = p.file_name().and_then(|n| n.to_str());
        assert_eq!(name, Some("seg-000042.wal"));
        assert_eq!(name.and_then(parse_segment_name), Some(42));
        assert_eq!(parse_segment_name("seg-.wal"), None);
        assert_eq!(parse_segment_name("seg-12.wal.tmp"), None);
        assert_eq!(parse_segment_name("seg-1a.wal"), None);
    }

    #[test]
    fn only_a_full_disk_outside_a_sync_is_retried() {
        let err = |op, code| io_err(op, Path::new("/x"), std::io::Error::from_raw_os_error(code));
        assert!(err("write", libc::ENOSPC).is_no_space());
        assert!(err("write zeros", libc::EDQUOT).is_no_space());
        assert!(err("create", libc::ENOSPC).is_no_space());
        let wrapped = io_err(
            "write zeros",
            Path::new("/x"),
            std::io::Error::new(std::io::ErrorKind::StorageFull, "as glommio reports it"),
        );
        assert!(wrapped.is_no_space());
        assert!(
            !err("fdatasync", libc::ENOSPC).is_no_space(),
            "a failed sync is fatal"
        );
        assert!(!err("write", libc::EIO).is_no_space());
        assert!(!WalError::Closed.is_no_space());
    }

    /// Small segments and writes, so that a test crosses several of each.
    fn small_segments(sync: bool) -> WalOptions {
        WalOptions {
            segment_bytes: 64 << 10,
            write_bytes_max: 16 << 10,
            sync,
            ..WalOptions::default()
        }
    }

    /// Runs `f` on a glommio executor with room for the WAL's buffers.
    fn on_executor(f: impl std::future::Future<Output = ()>) {
        glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .make()
            .expect("glommio executor starts")
            .run(f);
    }

    /// Every live segment's handle is `O_DSYNC` exactly when the WAL syncs, whether the
    /// segment was made by a sync (a new file, a recycled one) or found by recovery: the
    /// sync issues no fdatasync, so a plain handle would acknowledge records still in the
    /// disk's cache. Without syncs (`--no-fsync`) it is not `O_DIRECT` either: records go
    /// through the page cache.
    #[test]
    fn records_are_written_through_o_dsync_handles_exactly_when_the_wal_syncs() {
        use std::os::fd::AsRawFd;
        /// (`O_DSYNC`, `O_DIRECT`) of each live segment's handle.
        fn modes(wal: &Wal) -> Vec<(bool, bool)> {
            wal.segments
                .iter()
                .map(|s| {
                    // SAFETY: F_GETFL on a descriptor the segment's file holds open.
                    let flags = unsafe { libc::fcntl(s.file.as_raw_fd(), libc::F_GETFL) };
                    assert!(flags >= 0, "fcntl: {}", std::io::Error::last_os_error());
                    assert!(!s.file.is_pollable(), "a test directory on the poll ring");
                    (flags & libc::O_DSYNC != 0, flags & libc::O_DIRECT != 0)
                })
                .collect()
        }
        for sync in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let opts = small_segments(sync);
            on_executor(async {
                let (mut wal, _) = Wal::open(dir.path(), opts.clone()).await.expect("open");
                wal.preallocate(1).await.expect("preallocate");
                // ~200 KiB of records: a recycled spare, then new files.
                for i in 0..200u64 {
                    wal.append(&[i as u8; 1000]).expect("append");
                    if i % 10 == 9 {
                        wal.sync().await.expect("sync");
                    }
                }
                assert!(wal.live_segments() >= 3, "{}", wal.live_segments());
                assert_eq!(modes(&wal), vec![(sync, sync); wal.live_segments()]);
                drop(wal);
                let (wal, rec) = Wal::open(dir.path(), opts).await.expect("reopen");
                assert_eq!(rec.records.len(), 200);
                assert_eq!(modes(&wal), vec![(sync, sync); wal.live_segments()]);
            });
        }
    }

    /// A sync's records buffer comes back, emptied, for the next records (appends do
    /// not grow a new one by doubling after every sync), and what it held before is
    /// never written again: every record reads back as appended, from records that span
    /// the partial block a sync leaves and continue after it.
    #[test]
    fn a_syncs_buffer_holds_the_next_records_and_only_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = small_segments(true);
        on_executor(async {
            let (mut wal, _) = Wal::open(dir.path(), opts.clone()).await.expect("open");
            let record = |i: usize| vec![i as u8; 100 + i * 37 % 900];
            for i in 0..300 {
                wal.append(&record(i)).expect("append");
                if i % 7 == 6 {
                    wal.sync().await.expect("sync");
                    assert!(wal.spare_bytes.is_empty());
                    assert!(wal.spare_bytes.capacity() > 0, "the buffer came back");
                }
            }
            wal.sync().await.expect("sync");
            drop(wal);
            let (_, rec) = Wal::open(dir.path(), opts).await.expect("reopen");
            let got: Vec<Vec<u8>> = rec.records.into_iter().map(|(_, r)| r).collect();
            assert_eq!(got, (0..300).map(record).collect::<Vec<_>>());
        });
    }

    #[test]
    fn options_are_validated() {
        assert!(WalOptions::default().validate().is_ok());
        let bad = WalOptions {
            segment_bytes: 5000,
            ..WalOptions::default()
        };
        assert!(matches!(bad.validate(), Err(WalError::BadOptions { .. })));
        let bad = WalOptions {
            write_bytes_max: 100,
            ..WalOptions::default()
        };
        assert!(matches!(bad.validate(), Err(WalError::BadOptions { .. })));
    }
}
