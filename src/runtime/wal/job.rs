//! Sync jobs: [`Wal::begin_sync`] takes the pending records into a [`SyncJob`] (up to
//! [`SYNCS_IN_FLIGHT_MAX`] in flight, never two writing one block), the job's I/O runs
//! without a borrow of the WAL (`io.rs`), and [`Wal::finish_sync`] applies the outcomes
//! in the order the jobs began.

use super::format::{self, BLOCK_BYTES};
use super::{LiveSegment, Lsn, Wal, WalError};
use glommio::io::DmaFile;
use std::path::PathBuf;
use std::rc::Rc;

/// Sync jobs a [`Wal`] lets run at once. The disk overlaps two `O_DSYNC` writes at about
/// 1.15× the latency of one (results/fio-inflight-20261207.txt), so records appended during a
/// sync need not wait for it to end before their own starts.
pub const SYNCS_IN_FLIGHT_MAX: usize = 2;

/// Where a sync job writes one chunk.
pub(super) enum ChunkTarget {
    /// Continue the tail segment.
    Tail {
        file: Rc<DmaFile>,
        path: PathBuf,
        capacity_bytes: u64,
    },
    /// Activate file `index` (existing free file, or create it) as segment `seq`.
    New {
        index: u32,
        create: bool,
        seq: u64,
        first_lsn: u64,
    },
}

pub(super) struct JobChunk {
    pub(super) target: ChunkTarget,
    /// Block-aligned offset where `prefix` goes.
    pub(super) write_offset: u64,
    /// Re-written prefix of the partial block (empty in a new segment)...
    pub(super) prefix: Vec<u8>,
    /// ...then the new records.
    pub(super) data: Vec<u8>,
}

/// The largest buffer of records a WAL keeps for reuse between syncs.
const SPARE_BYTES_KEPT_MAX: usize = 4 << 20;

/// The I/O half of a sync, taken out of the [`Wal`] by [`Wal::begin_sync`] so that the
/// WAL can keep accepting appends while it runs. Run it with [`SyncJob::run`] and hand the
/// result to [`Wal::finish_sync`].
pub struct SyncJob {
    pub(super) dir: PathBuf,
    pub(super) chunks: Vec<JobChunk>,
    pub(super) last_lsn: u64,
    pub(super) segment_bytes: u64,
    pub(super) write_bytes_max: usize,
    pub(super) sync: bool,
}

/// Result of a finished [`SyncJob`], to give to [`Wal::finish_sync`].
pub struct SyncDone {
    pub(super) new_segments: Vec<LiveSegment>,
    pub(super) tail_write_pos: u64,
    pub(super) tail_partial: Vec<u8>,
    pub(super) last_lsn: u64,
}

impl Wal {
    /// True when [`Wal::begin_sync`] would return a job: records wait, and either no
    /// sync is in flight or one is that a second may overlap (see there).
    pub fn can_begin_sync(&self) -> bool {
        if self.pending.is_empty() || self.poisoned.is_some() {
            return false;
        }
        match self.in_flight.len() {
            0 => true,
            1 => self.overlapping_offset().is_some(),
            _ => false,
        }
    }

    /// Where a job started beside the one in flight writes the pending records, if it may
    /// start: the job in flight writes only the tail segment, the pending records continue
    /// it, and moved to the block after the one in flight ends in they still fit.
    fn overlapping_offset(&self) -> Option<u64> {
        let end = self.flight_end?;
        let [chunk] = &self.pending[..] else {
            return None;
        };
        if chunk.first_lsn_if_new.is_some() {
            return None;
        }
        debug_assert_eq!(chunk.start, end);
        // The block after the last one the job in flight writes: when it ends on a block
        // boundary it writes one more zero block there (`SyncJob::run`).
        let offset = format::align_down(end) + BLOCK_BYTES;
        (offset + chunk.bytes.len() as u64 <= self.cursor_capacity).then_some(offset)
    }

    /// Takes every pending record into a [`SyncJob`] (no I/O). `Ok(None)` when nothing is
    /// pending, or when a job is in flight that this one may not overlap now (the first
    /// one starts a segment, or the records would not fit the segment after the gap): it
    /// may start once that one is finished. Records appended after this call go to the
    /// next job. At most [`SYNCS_IN_FLIGHT_MAX`] jobs are in flight: another is
    /// `Err(SyncInFlight)`.
    ///
    /// A job started beside another never writes a block the other writes: its records
    /// move to the block after the other's last (the gap stays zero), so the two writes
    /// may complete in either order. A job rewrites the partial tail block only when it is
    /// the only one in flight; jobs finish ([`Wal::finish_sync`]) in the order they began.
    pub fn begin_sync(&mut self) -> Result<Option<SyncJob>, WalError> {
        self.check_poisoned()?;
        if self.in_flight.len() >= SYNCS_IN_FLIGHT_MAX {
            return Err(WalError::SyncInFlight);
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        if !self.in_flight.is_empty() {
            let Some(offset) = self.overlapping_offset() else {
                return Ok(None);
            };
            let chunk = self.pending.pop().expect("one pending chunk");
            // Appends go on after the records where they now lie.
            self.cursor_pos += offset - chunk.start;
            self.pending_bytes = 0;
            assert_eq!(offset + chunk.bytes.len() as u64, self.cursor_pos);
            let last_lsn = chunk.last_lsn;
            let beside = self.tail_chunk(chunk.seq, offset, Vec::new(), chunk.bytes);
            return Ok(Some(self.start_job(vec![beside], last_lsn)));
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut chunks = Vec::with_capacity(pending.len());
        let mut last_lsn = 0;
        for chunk in pending {
            last_lsn = chunk.last_lsn;
            match chunk.first_lsn_if_new {
                None => {
                    assert_eq!(chunk.start, self.write_pos);
                    let write_offset = format::align_down(chunk.start);
                    assert_eq!(write_offset + self.tail_partial.len() as u64, chunk.start);
                    let prefix = self.tail_partial.clone();
                    chunks.push(self.tail_chunk(chunk.seq, write_offset, prefix, chunk.bytes));
                }
                Some(first_lsn) => {
                    let (index, create) = match self.free.pop() {
                        Some(index) => (index, false),
                        None => {
                            let index = self.next_index;
                            self.next_index += 1;
                            (index, true)
                        }
                    };
                    chunks.push(JobChunk {
                        target: ChunkTarget::New {
                            index,
                            create,
                            seq: chunk.seq,
                            first_lsn,
                        },
                        write_offset: chunk.start,
                        prefix: Vec::new(),
                        data: chunk.bytes,
                    });
                }
            }
        }
        Ok(Some(self.start_job(chunks, last_lsn)))
    }

    /// A chunk continuing the tail segment (life `seq`): `prefix` then `data` at
    /// block-aligned `write_offset`.
    fn tail_chunk(&self, seq: u64, write_offset: u64, prefix: Vec<u8>, data: Vec<u8>) -> JobChunk {
        let tail = self
            .segments
            .last()
            .expect("a continuing chunk implies a tail segment");
        assert_eq!(tail.seq, seq);
        JobChunk {
            target: ChunkTarget::Tail {
                file: tail.file.clone(),
                path: tail.path.clone(),
                capacity_bytes: tail.capacity_bytes,
            },
            write_offset,
            prefix,
            data,
        }
    }

    /// Puts a job of `chunks` (records up to `last_lsn`) in flight.
    fn start_job(&mut self, chunks: Vec<JobChunk>, last_lsn: u64) -> SyncJob {
        self.flight_end = match &chunks[..] {
            [
                JobChunk {
                    target: ChunkTarget::Tail { .. },
                    write_offset,
                    prefix,
                    data,
                },
            ] => Some(write_offset + (prefix.len() + data.len()) as u64),
            _ => None,
        };
        self.in_flight.push(last_lsn);
        SyncJob {
            dir: self.dir.clone(),
            chunks,
            last_lsn,
            segment_bytes: self.opts.segment_bytes,
            write_bytes_max: self.opts.write_bytes_max,
            sync: self.opts.sync,
        }
    }

    /// Takes back a finished job's largest buffer, emptied, for the next records (kept
    /// only up to [`SPARE_BYTES_KEPT_MAX`]: a burst's buffer is not held for good).
    pub fn recycle(&mut self, job: SyncJob) {
        let Some(mut bytes) = job
            .chunks
            .into_iter()
            .map(|c| c.data)
            .max_by_key(|d| d.capacity())
        else {
            return;
        };
        if bytes.capacity() > self.spare_bytes.capacity()
            && bytes.capacity() <= SPARE_BYTES_KEPT_MAX
        {
            bytes.clear();
            self.spare_bytes = bytes;
        }
    }

    /// Applies the outcome of a [`SyncJob`]: advances the durable LSN, or poisons the WAL.
    pub fn finish_sync(&mut self, done: Result<SyncDone, WalError>) -> Result<Lsn, WalError> {
        assert!(!self.in_flight.is_empty(), "finish_sync without begin_sync");
        let expected = self.in_flight.remove(0);
        if self.in_flight.is_empty() {
            self.flight_end = None;
        }
        match done {
            Err(e) => {
                self.poisoned = Some(e.to_string());
                Err(e)
            }
            Ok(done) => {
                assert_eq!(
                    done.last_lsn, expected,
                    "jobs finish in the order they began"
                );
                assert!(done.last_lsn > self.durable_lsn);
                self.segments.extend(done.new_segments);
                self.write_pos = done.tail_write_pos;
                self.tail_partial = done.tail_partial;
                assert_eq!(
                    format::align_down(self.write_pos) + self.tail_partial.len() as u64,
                    self.write_pos
                );
                self.durable_lsn = done.last_lsn;
                Ok(Lsn(done.last_lsn))
            }
        }
    }
}
