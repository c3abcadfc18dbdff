//! Opening a WAL directory: classify segment files, replay the chain of live segments,
//! skip damage that valid records follow (mid-log corruption, reported), stop at damage
//! at the end (a torn tail), and clean up so new writes are safe.
//!
//! New records after a mid-log loss continue at the clean end of the tail with the LSN
//! after the last one replayed, so they never collide with anything read: the lost LSNs
//! lie below that, and the damaged bytes stay where they are (each open reports them
//! again) until a truncation frees their segment.

use super::format::{
    self, BLOCK_BYTES, HeaderParse, HeaderState, RECORD_HEADER_BYTES, SegmentHeader, SegmentKind,
};
use super::io::{
    open_record_file, open_segment_file, settle_completion_mode, write_header, write_zeros,
};
use super::{
    DamageReason, LiveSegment, Lsn, MidLogCorruption, Recovery, TailDamage, Wal, WalError,
    WalOptions, io_err, parse_segment_name,
};
use glommio::io::DmaFile;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Largest read issued while scanning a segment.
const READ_BYTES_MAX: usize = 1 << 20;
// Reads are clamped to [BLOCK_BYTES, READ_BYTES_MAX].
const _: () = assert!(READ_BYTES_MAX as u64 >= BLOCK_BYTES);

/// A segment file found in the directory, with its header.
struct Found {
    index: u32,
    path: PathBuf,
    file: DmaFile,
    header: SegmentHeader,
}

/// Reads a segment file front to back on demand, keeping what was read.
///
/// Reads use std (blocking `pread`), not `DmaFile`: on this machine every glommio
/// `DmaFile` read fails with EOPNOTSUPP (writes work), and recovery runs once at startup.
struct SegmentReader<'a> {
    file: std::fs::File,
    path: &'a Path,
    data: Vec<u8>,
    eof: bool,
}

impl<'a> SegmentReader<'a> {
    fn new(path: &'a Path) -> Result<Self, WalError> {
        let file = std::fs::File::open(path).map_err(|e| io_err("open for reading", path, e))?;
        Ok(SegmentReader {
            file,
            path,
            data: Vec::new(),
            eof: false,
        })
    }

    /// Reads until at least `end` bytes are held or the file ends. The file size is not
    /// trusted for anything but where reads stop: records are validated by checksum.
    fn ensure(&mut self, end: u64) -> Result<(), WalError> {
        use std::os::unix::fs::FileExt;
        while !self.eof && (self.data.len() as u64) < end {
            let pos = self.data.len();
            let want = ((end - pos as u64) as usize).clamp(BLOCK_BYTES as usize, READ_BYTES_MAX);
            self.data.resize(pos + want, 0);
            let got = loop {
                match self.file.read_at(&mut self.data[pos..], pos as u64) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let got = match got {
                Ok(got) => got,
                Err(e) => {
                    self.data.truncate(pos);
                    return Err(io_err("read", self.path, e));
                }
            };
            self.data.truncate(pos + got);
            if got == 0 {
                self.eof = true;
            }
        }
        Ok(())
    }
}

/// How the scan of one segment ended.
struct SegmentEnd {
    /// Offset of the first byte after the last valid record.
    pos: u64,
    /// Bytes of the block holding `pos`, before `pos` (to rewrite with the next records).
    partial: Vec<u8>,
    damage: Option<TailDamage>,
}

/// What the bytes at one record position of a segment hold.
enum Step {
    /// A valid record with the expected LSN, ending at `end`.
    Record { end: u64 },
    /// Nothing more was written in this life here (zeros, a leftover of an older life, or
    /// the end of the file).
    End,
    /// Not a valid record.
    Damage(DamageReason),
}

/// Reads the record expected at `pos` (LSN `next_lsn`) of segment life `seq`.
fn read_step(
    reader: &mut SegmentReader<'_>,
    pos: u64,
    seq: u64,
    capacity: u64,
    next_lsn: u64,
) -> Result<Step, WalError> {
    let header_bytes = RECORD_HEADER_BYTES as u64;
    if pos + header_bytes > capacity {
        return Ok(Step::End);
    }
    reader.ensure(pos + header_bytes)?;
    let avail = reader.data.len() as u64;
    if avail < pos + header_bytes {
        let rest = &reader.data[pos.min(avail) as usize..];
        return Ok(if rest.iter().all(|&b| b == 0) {
            Step::End
        } else {
            Step::Damage(DamageReason::Torn)
        });
    }
    let head = &reader.data[pos as usize..(pos + header_bytes) as usize];
    let (checksum, header, unsynced) = match format::parse_record_header(head) {
        HeaderParse::Zero => return Ok(Step::End),
        HeaderParse::Header {
            checksum,
            header,
            unsynced,
        } => (checksum, header, unsynced),
    };
    let end = pos + header_bytes + u64::from(header.len);
    if header.seq < seq {
        // Looks left over from this file's previous life. A genuine leftover is an
        // intact record of that life: the clean end of this one. Anything else is a
        // damaged record of this life (e.g. a bit flip in its seq), to be reported.
        if end <= capacity {
            reader.ensure(end)?;
        }
        let intact = end <= capacity
            && (reader.data.len() as u64) >= end
            && format::record_checksum(
                &reader.data[(pos + 8) as usize..(pos + header_bytes) as usize],
                &reader.data[(pos + header_bytes) as usize..end as usize],
            ) == checksum;
        return Ok(if intact {
            Step::End
        } else {
            Step::Damage(DamageReason::ChecksumMismatch)
        });
    }
    if header.seq > seq
        || !plausible(header.lsn, unsynced)
        || header.lsn != next_lsn
        || end > capacity
    {
        return Ok(Step::Damage(DamageReason::BadHeader));
    }
    reader.ensure(end)?;
    if (reader.data.len() as u64) < end {
        return Ok(Step::Damage(DamageReason::Torn));
    }
    let payload = &reader.data[(pos + header_bytes) as usize..end as usize];
    let header_tail = &reader.data[(pos + 8) as usize..(pos + header_bytes) as usize];
    if format::record_checksum(header_tail, payload) != checksum {
        return Ok(Step::Damage(DamageReason::ChecksumMismatch));
    }
    Ok(Step::Record { end })
}

/// True when a record's `unsynced` count fits its LSN: only LSNs from 1 on precede it.
fn plausible(lsn: u64, unsynced: u32) -> bool {
    u64::from(unsynced) < lsn
}

/// A valid record found past damage: where it is, its LSN, and its `unsynced` count.
struct Later {
    pos: u64,
    lsn: u64,
    unsynced: u32,
}

impl Later {
    /// True when LSN `lost` was not yet durable when this record was appended: a crash
    /// can have lost it while this record's write completed (a torn tail, not corruption).
    fn may_outlive(&self, lost: u64) -> bool {
        lost >= self.lsn - u64::from(self.unsynced)
    }
}

/// The first position at or after `from` holding a valid record of segment life `seq`
/// with an LSN of at least `lsn_min` that `accept` takes. `data` is the whole segment as
/// read.
///
/// Records are packed at arbitrary offsets, so every byte offset is a candidate; the seq
/// (8 bytes) rules out almost every one before the checksum is computed.
fn find_record(
    data: &[u8],
    from: u64,
    seq: u64,
    capacity: u64,
    lsn_min: u64,
    accept: impl Fn(&Later) -> bool,
) -> Option<Later> {
    let header_bytes = RECORD_HEADER_BYTES as u64;
    let limit = capacity.min(data.len() as u64);
    let seq_le = seq.to_le_bytes();
    let mut pos = from;
    while pos + header_bytes <= limit {
        let at = pos as usize;
        if data[at + 8..at + 16] == seq_le {
            let head = &data[at..at + RECORD_HEADER_BYTES];
            if let HeaderParse::Header {
                checksum,
                header,
                unsynced,
            } = format::parse_record_header(head)
            {
                let end = pos + header_bytes + u64::from(header.len);
                if header.lsn >= lsn_min
                    && plausible(header.lsn, unsynced)
                    && end <= limit
                    && format::record_checksum(
                        &data[at + 8..at + RECORD_HEADER_BYTES],
                        &data[at + RECORD_HEADER_BYTES..end as usize],
                    ) == checksum
                {
                    let later = Later {
                        pos,
                        lsn: header.lsn,
                        unsynced,
                    };
                    if accept(&later) {
                        return Some(later);
                    }
                }
            }
        }
        pos += 1;
    }
    None
}

/// True when segment `found` holds at least one valid record with an LSN of at least
/// `lsn_min`: proof that the log went on after whatever precedes it.
fn segment_holds_record(found: &Found, lsn_min: u64) -> Result<bool, WalError> {
    let mut reader = SegmentReader::new(&found.path)?;
    let capacity = found.header.capacity_bytes;
    reader.ensure(capacity)?;
    Ok(find_record(
        &reader.data,
        BLOCK_BYTES,
        found.header.seq,
        capacity,
        lsn_min,
        |_| true,
    )
    .is_some())
}

/// Adds the LSNs `first..=last` to the mid-log loss, first found first.
fn note_loss(
    mid: &mut Option<MidLogCorruption>,
    segment: u64,
    offset: u64,
    reason: DamageReason,
    first: u64,
    last: u64,
) {
    debug_assert!(first <= last);
    match mid {
        None => {
            *mid = Some(MidLogCorruption {
                segment,
                offset,
                reason,
                first_lost: Lsn(first),
                last_lost: Lsn(last),
                records_lost: last - first + 1,
                regions: 1,
            })
        }
        Some(m) => {
            m.last_lost = m.last_lost.max(Lsn(last));
            m.records_lost += last - first + 1;
            m.regions += 1;
        }
    }
}

/// Replays the records of one live segment into `records`, expecting LSNs from
/// `*next_lsn`. Where the expected record is not (zeros, or bytes that are not a record
/// header), the scan goes on at the next block if the expected record is there: a sync
/// that overlapped another started there. Damage
/// followed by a valid record of this life with a higher LSN is mid-log corruption (the
/// lost LSNs go into `mid` and replay goes on from that record) unless the lost records
/// were not yet durable when that one was appended: then, as with damage with nothing
/// valid after it in this segment, the scan ends (`damage`): a torn tail.
fn scan_segment(
    found: &Found,
    next_lsn: &mut u64,
    mid: &mut Option<MidLogCorruption>,
    on_record: &mut dyn FnMut(Lsn, &[u8]),
) -> Result<SegmentEnd, WalError> {
    let seq = found.header.seq;
    let capacity = found.header.capacity_bytes;
    let mut reader = SegmentReader::new(&found.path)?;
    let mut pos = BLOCK_BYTES;
    let header_bytes = RECORD_HEADER_BYTES as u64;
    let reason = loop {
        let step = read_step(&mut reader, pos, seq, capacity, *next_lsn)?;
        if let Step::Record { end } = step {
            let payload = &reader.data[(pos + header_bytes) as usize..end as usize];
            on_record(Lsn(*next_lsn), payload);
            *next_lsn += 1;
            pos = end;
            continue;
        }
        // A sync that started beside another wrote from the next block on: the expected
        // record there means the bytes here are the gap before it (zeros, or, with less
        // than a record header left in this block, zeros then that record's first bytes).
        let next_block = format::align_down(pos) + BLOCK_BYTES;
        if let Step::Record { .. } = read_step(&mut reader, next_block, seq, capacity, *next_lsn)? {
            pos = next_block;
            continue;
        }
        let reason = match step {
            Step::Damage(reason) => Some(reason),
            _ => None,
        };
        // A clean end or damage: if a later record of this life follows, the bytes here
        // were synced before it (corruption, or zeros where records were), not a tail,
        // unless they were still on their way to the disk when it and every later record
        // were appended.
        reader.ensure(capacity)?;
        let lost = *next_lsn;
        match find_record(&reader.data, pos + 1, seq, capacity, lost + 1, |_| true) {
            Some(later)
                if later.may_outlive(lost)
                    && find_record(
                        &reader.data,
                        later.pos + 1,
                        seq,
                        capacity,
                        later.lsn + 1,
                        |r| !r.may_outlive(lost),
                    )
                    .is_none() =>
            {
                break Some(reason.unwrap_or(DamageReason::Torn));
            }
            Some(later) => {
                note_loss(
                    mid,
                    seq,
                    pos,
                    reason.unwrap_or(DamageReason::BadHeader),
                    *next_lsn,
                    later.lsn - 1,
                );
                *next_lsn = later.lsn;
                pos = later.pos;
            }
            None => break reason,
        }
    };
    let damage = match reason {
        None => None,
        Some(reason) => {
            reader.ensure(capacity)?;
            let last_nonzero = reader
                .data
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |i| i + 1);
            Some(TailDamage {
                segment: seq,
                offset: pos,
                reason,
                dropped_bytes: (last_nonzero as u64).saturating_sub(pos),
                dropped_segments: 0,
            })
        }
    };
    let block_start = format::align_down(pos);
    let held = reader.data.len() as u64;
    let partial = reader.data[block_start.min(held) as usize..pos.min(held) as usize].to_vec();
    Ok(SegmentEnd {
        pos,
        partial,
        damage,
    })
}

/// Lists `seg-*.wal` files, deleting temporaries left by an interrupted creation.
fn list_segments(dir: &Path) -> Result<Vec<(u32, PathBuf)>, WalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| io_err("read directory", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("seg-") && name.ends_with(".wal.tmp") {
            std::fs::remove_file(entry.path()).map_err(|e| io_err("remove", &entry.path(), e))?;
        } else if let Some(index) = parse_segment_name(name) {
            out.push((index, entry.path()));
        }
    }
    out.sort_by_key(|(index, _)| *index);
    Ok(out)
}

/// See [`Wal::open_replaying`].
pub(super) async fn open(
    dir: &Path,
    opts: WalOptions,
    on_record: &mut dyn FnMut(Lsn, &[u8]),
) -> Result<(Wal, Recovery), WalError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("create directory", dir, e))?;
    settle_completion_mode(dir).await?;
    let listed = list_segments(dir)?;
    let next_index = listed.last().map_or(0, |(index, _)| index + 1);
    let mut recovery = Recovery::default();
    let Segments {
        mut active,
        mut free,
        max_seq,
    } = classify_segments(listed, &mut recovery).await?;
    let Replayed {
        next_lsn,
        chain_len,
        tail_end,
    } = replay_chain(&active, &mut recovery, on_record)?;

    // Free the orphans (segments after a break), keeping their seq so it is never reused.
    for found in active.split_off(chain_len) {
        let header = SegmentHeader {
            kind: SegmentKind::Free,
            first_lsn: 0,
            ..found.header
        };
        write_header(&found.file, &found.path, &header, opts.sync).await?;
        free.push((found.index, found.path, found.file));
    }

    let (write_pos, tail_partial) = match (active.last(), tail_end) {
        (Some(tail), Some(end)) => zero_tail(tail, end, &opts).await?,
        _ => (0, Vec::new()),
    };
    let free_indexes = keep_free(free, &opts)?;

    // The chain's files are reopened for appending (`O_DSYNC` when the WAL syncs); the
    // plain handles zeroed the tail above without a flush per write.
    let mut segments = Vec::with_capacity(active.len());
    for f in active {
        f.file
            .close()
            .await
            .map_err(|e| io_err("close", &f.path, e))?;
        segments.push(LiveSegment {
            index: f.index,
            seq: f.header.seq,
            first_lsn: f.header.first_lsn,
            capacity_bytes: f.header.capacity_bytes,
            file: Rc::new(open_record_file(&f.path, opts.sync).await?),
            path: f.path,
        });
    }
    let (cursor_seq, cursor_capacity) = segments
        .last()
        .map_or((0, 0), |s| (s.seq, s.capacity_bytes));
    let durable_lsn = next_lsn - 1;
    let wal = Wal {
        dir: dir.to_path_buf(),
        opts,
        segments,
        free: free_indexes,
        next_index,
        next_seq: max_seq + 1,
        next_lsn,
        cursor_seq,
        cursor_pos: write_pos,
        cursor_capacity,
        pending: Vec::new(),
        pending_bytes: 0,
        spare_bytes: Vec::new(),
        write_pos,
        tail_partial,
        durable_lsn,
        in_flight: Vec::new(),
        flight_end: None,
        poisoned: None,
    };
    Ok((wal, recovery))
}

/// The segment files found, by their header.
struct Segments {
    /// Active segments, by seq.
    active: Vec<Found>,
    /// Free (or blank) segments: (index, path, file).
    free: Vec<(u32, PathBuf, DmaFile)>,
    /// The highest seq of any header read.
    max_seq: u64,
}

/// Reads every listed segment's header: active segments (sorted by seq), free ones, and
/// the highest seq seen; a corrupt header's file is renamed aside and noted in `recovery`.
async fn classify_segments(
    listed: Vec<(u32, PathBuf)>,
    recovery: &mut Recovery,
) -> Result<Segments, WalError> {
    let mut active = Vec::new();
    let mut free = Vec::new();
    let mut max_seq = 0u64;
    for (index, path) in listed {
        let mut reader = SegmentReader::new(&path)?;
        reader.ensure(BLOCK_BYTES)?;
        let block = std::mem::take(&mut reader.data);
        drop(reader);
        let file = open_segment_file(&path).await?;
        match SegmentHeader::decode(&block) {
            HeaderState::Blank => free.push((index, path, file)),
            HeaderState::Valid(header) => {
                max_seq = max_seq.max(header.seq);
                match header.kind {
                    SegmentKind::Free => free.push((index, path, file)),
                    SegmentKind::Active => active.push(Found {
                        index,
                        path,
                        file,
                        header,
                    }),
                }
            }
            HeaderState::Bad => {
                // Its seq is unknown, so its records could collide with a future life:
                // never reuse it; keep it for inspection.
                drop(file);
                let corrupt = path.with_extension("wal.corrupt");
                std::fs::rename(&path, &corrupt).map_err(|e| io_err("rename", &path, e))?;
                eprintln!(
                    "warning: WAL segment {} has a corrupt header; renamed to {}",
                    path.display(),
                    corrupt.display()
                );
                recovery.corrupt_files.push(corrupt);
            }
        }
    }
    active.sort_by_key(|f| f.header.seq);
    Ok(Segments {
        active,
        free,
        max_seq,
    })
}

/// Where replay ended.
struct Replayed {
    /// The LSN the next record gets.
    next_lsn: u64,
    /// Active segments in the unbroken chain; those after it are orphans.
    chain_len: usize,
    /// Where the last segment of the chain ends.
    tail_end: Option<SegmentEnd>,
}

/// Replays the chain of active segments, oldest first, into `on_record`; notes tail
/// damage and mid-log losses in `recovery`.
fn replay_chain(
    active: &[Found],
    recovery: &mut Recovery,
    on_record: &mut dyn FnMut(Lsn, &[u8]),
) -> Result<Replayed, WalError> {
    // Replay the chain, oldest first. Damage (or a gap in LSNs) with valid records after
    // it in a later segment is mid-log corruption: every segment but the tail was
    // durable before the next was activated, so what was lost had been synced.
    let mut next_lsn = active.first().map_or(1, |f| f.header.first_lsn.max(1));
    let mut chain_len = 0;
    let mut tail_end: Option<SegmentEnd> = None;
    let mut mid: Option<MidLogCorruption> = None;
    // Where the previous segment's scan stopped at damage, if it did.
    let mut open_damage: Option<TailDamage> = None;
    for (i, found) in active.iter().enumerate() {
        let first = found.header.first_lsn;
        if first != next_lsn || open_damage.is_some() {
            let continues = first >= next_lsn && segment_holds_record(found, first)?;
            if !continues {
                recovery.damage = Some(open_damage.take().unwrap_or(TailDamage {
                    segment: found.header.seq,
                    offset: 0,
                    reason: DamageReason::LsnGap,
                    dropped_bytes: 0,
                    dropped_segments: 0,
                }));
                break;
            }
            if first > next_lsn {
                let (segment, offset, reason) = match &open_damage {
                    Some(d) => (d.segment, d.offset, d.reason),
                    None => (found.header.seq, 0, DamageReason::LsnGap),
                };
                note_loss(&mut mid, segment, offset, reason, next_lsn, first - 1);
                next_lsn = first;
            }
        }
        let end = scan_segment(found, &mut next_lsn, &mut mid, on_record)?;
        chain_len = i + 1;
        open_damage = end.damage.clone();
        tail_end = Some(end);
    }
    if let Some(damage) = open_damage {
        // Damage in the last segment replayed, with nothing valid after it.
        recovery.damage = Some(damage);
    }
    if let Some(damage) = &mut recovery.damage {
        damage.dropped_segments = (active.len() - chain_len) as u64;
        eprintln!("warning: {damage}");
    }
    if let Some(m) = &mid {
        eprintln!("warning: {m}");
    }
    recovery.mid_log = mid;
    Ok(Replayed {
        next_lsn,
        chain_len,
        tail_end,
    })
}

/// Zeroes the rest of the tail segment after `end`, so bytes of a crashed sync can never
/// be read as records behind new ones. Returns the write position and the partial block
/// before it.
async fn zero_tail(
    tail: &Found,
    end: SegmentEnd,
    opts: &WalOptions,
) -> Result<(u64, Vec<u8>), WalError> {
    let from = format::align_down(end.pos);
    let capacity = tail.header.capacity_bytes;
    let mut first = tail.file.alloc_dma_buffer(BLOCK_BYTES as usize);
    let bytes = first.as_bytes_mut();
    bytes.fill(0);
    bytes[..end.partial.len()].copy_from_slice(&end.partial);
    if from < capacity {
        let written = tail
            .file
            .write_at(first, from)
            .await
            .map_err(|e| io_err("write", &tail.path, e))?;
        if written as u64 != BLOCK_BYTES {
            return Err(io_err(
                "write",
                &tail.path,
                std::io::Error::new(std::io::ErrorKind::WriteZero, "short write"),
            ));
        }
        write_zeros(
            &tail.file,
            &tail.path,
            from + BLOCK_BYTES,
            capacity,
            opts.write_bytes_max,
        )
        .await?;
        if opts.sync {
            tail.file
                .fdatasync()
                .await
                .map_err(|e| io_err("fdatasync", &tail.path, e))?;
        }
    }
    Ok((end.pos, end.partial))
}

/// Keeps free files of the right size, up to the limit, and deletes the rest; returns
/// the indexes kept.
fn keep_free(free: Vec<(u32, PathBuf, DmaFile)>, opts: &WalOptions) -> Result<Vec<u32>, WalError> {
    let mut free_indexes = Vec::new();
    for (index, path, file) in free {
        let size = std::fs::metadata(&path)
            .map_err(|e| io_err("stat", &path, e))?
            .len();
        if size == opts.segment_bytes && free_indexes.len() < opts.segments_free_max {
            free_indexes.push(index);
        } else {
            drop(file);
            std::fs::remove_file(&path).map_err(|e| io_err("remove", &path, e))?;
        }
    }
    Ok(free_indexes)
}
