//! The WAL's disk I/O: aligned block writes, segment creation and headers, and the I/O
//! half of a sync. Everything here runs without a borrow of the [`Wal`](super::Wal).

use super::format::{self, BLOCK_BYTES, SEGMENT_HEADER_BYTES, SegmentHeader, SegmentKind};
use super::job::ChunkTarget;
use super::{LiveSegment, SyncDone, SyncJob, WalError, WalOptions, io_err, segment_path};
use glommio::io::{DmaFile, OpenOptions};
use std::path::Path;
use std::rc::Rc;

/// Rewrites the header of each segment as `Free` (keeping its seq), oldest first.
pub(super) async fn free_segments(victims: &[LiveSegment], sync: bool) -> Result<(), WalError> {
    for seg in victims {
        let header = SegmentHeader {
            kind: SegmentKind::Free,
            seq: seg.seq,
            first_lsn: 0,
            capacity_bytes: seg.capacity_bytes,
        };
        write_header(&seg.file, &seg.path, &header, sync).await?;
    }
    Ok(())
}

/// Writes block 0 of a segment file and, when `sync`, makes it durable.
pub(super) async fn write_header(
    file: &DmaFile,
    path: &Path,
    header: &SegmentHeader,
    sync: bool,
) -> Result<(), WalError> {
    let mut block = vec![0u8; BLOCK_BYTES as usize];
    header.encode(&mut block[..SEGMENT_HEADER_BYTES]);
    let submit = Submit::WithPass;
    write_blocks(file, path, 0, &[&block], 0, BLOCK_BYTES as usize, submit).await?;
    if sync {
        file.fdatasync()
            .await
            .map_err(|e| io_err("fdatasync", path, e))?;
    }
    Ok(())
}

/// When a WAL write is handed to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submit {
    /// At once (`DmaFile::write_at_now`, vendor/glommio/COREPAX-PATCH.md): a sync started
    /// on an idle log. A request waits on it, and a write left for the rest of the
    /// executor's pass reached the disk later than the other replicas' writes
    /// (results/wal-write-now-20261206/).
    AtOnce,
    /// With the executor pass's other requests: a sync that follows the last one at once,
    /// under load. Submitted earlier, it would end earlier and leave fewer records to the
    /// next one: more, smaller syncs for the same requests.
    WithPass,
}

/// Writes the bytes `parts` make one after the other, then `pad_bytes` zeros, at
/// block-aligned `offset`, padding the last block with zeros, in pieces of at most
/// `write_bytes_max` bytes, each submitted as `submit` says.
pub(super) async fn write_blocks(
    file: &DmaFile,
    path: &Path,
    offset: u64,
    parts: &[&[u8]],
    pad_bytes: usize,
    write_bytes_max: usize,
    submit: Submit,
) -> Result<(), WalError> {
    assert_eq!(offset % BLOCK_BYTES, 0);
    let data_len: usize = parts.iter().map(|p| p.len()).sum();
    let total = data_len + pad_bytes;
    let mut done = 0usize;
    while done < total {
        let piece = (total - done).min(write_bytes_max);
        let buf_len = format::align_up(piece as u64) as usize;
        let mut buf = file.alloc_dma_buffer(buf_len);
        let bytes = buf.as_bytes_mut();
        let from_data = data_len.saturating_sub(done).min(piece);
        copy_from_parts(&mut bytes[..from_data], parts, done);
        bytes[from_data..].fill(0);
        let pos = offset + done as u64;
        let written = match submit {
            Submit::AtOnce => file.write_at_now(buf, pos).await,
            Submit::WithPass => file.write_at(buf, pos).await,
        }
        .map_err(|e| io_err("write", path, e))?;
        if written != buf_len {
            return Err(io_err(
                "write",
                path,
                std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    format!("short write: {written} of {buf_len} bytes"),
                ),
            ));
        }
        done += piece;
    }
    Ok(())
}

/// Writes zeros over `[from, to)` (block-aligned), in pieces of `write_bytes_max`.
pub(super) async fn write_zeros(
    file: &DmaFile,
    path: &Path,
    from: u64,
    to: u64,
    write_bytes_max: usize,
) -> Result<(), WalError> {
    assert_eq!(from % BLOCK_BYTES, 0);
    assert_eq!(to % BLOCK_BYTES, 0);
    let mut pos = from;
    while pos < to {
        let piece = ((to - pos) as usize).min(write_bytes_max);
        let mut buf = file.alloc_dma_buffer(piece);
        buf.as_bytes_mut().fill(0);
        let written = file
            .write_at(buf, pos)
            .await
            .map_err(|e| io_err("write zeros", path, e))?;
        if written != piece {
            return Err(io_err(
                "write zeros",
                path,
                std::io::Error::new(std::io::ErrorKind::WriteZero, "short write"),
            ));
        }
        pos += piece as u64;
    }
    Ok(())
}

/// Name of the file [`settle_completion_mode`] writes and removes.
const PROBE_FILE: &str = "iopoll-probe";

/// Makes this thread's glommio take WAL I/O completions from the kernel (interrupts) instead
/// of busy-polling for them, unless the device really supports polled I/O.
///
/// glommio decides once per thread and device, at the first `DmaFile` it opens there, by
/// reading block 0 through its polled (IOPOLL) ring: success means "pollable". A WAL's
/// first file is new and empty, so that read ends at end-of-file before reaching the
/// device and succeeds even on a device without poll queues (this VM's virtio disk). Every
/// WAL write then went to the polled ring, and the executor spun in `io_uring_enter` until
/// each write completed — while the kernel worker that completes it waited for the same
/// core. With three replicas on two cores that made about half of all one-client writes
/// take a scheduler tick (~4 ms). Opening a file whose block 0 holds data first makes the
/// probe ask the device, which answers truthfully; the answer is cached for the thread.
pub(super) async fn settle_completion_mode(dir: &Path) -> Result<(), WalError> {
    let path = dir.join(PROBE_FILE);
    std::fs::write(&path, [0xa5u8; BLOCK_BYTES as usize]).map_err(|e| io_err("write", &path, e))?;
    let opened = OpenOptions::new().read(true).dma_open(&path).await;
    let removed = std::fs::remove_file(&path);
    let file = opened.map_err(|e| io_err("open", &path, e))?;
    file.close().await.map_err(|e| io_err("close", &path, e))?;
    removed.map_err(|e| io_err("remove", &path, e))
}

/// Opens an existing segment file for reading and writing.
pub(super) async fn open_segment_file(path: &Path) -> Result<DmaFile, WalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(path)
        .await
        .map_err(|e| io_err("open", path, e))
}

/// Opens a segment file for appending records: with `durable` (the WAL syncs) it is opened
/// `O_DSYNC`, so each write is durable when it completes and a sync is one io_uring write
/// instead of a write and then an fdatasync. The fdatasync was a second operation that
/// io_uring hands to a kernel worker thread after the executor has woken for the write's
/// completion; with three replicas syncing on one disk the pair took 320–370 µs at the
/// median against 210–220 µs for the `O_DSYNC` write (results/wal-dsync-20261202/).
/// Segments are pre-written with zeros through a plain handle first, so these writes
/// never allocate: the device's cache flush is all the sync adds.
///
/// Without `durable` (`--no-fsync`) the handle is not `O_DIRECT` either: a write copies
/// the records into the page cache and the kernel writes them back later, as Redis's
/// `appendfsync no` does; the records survive the process, not the machine. Written
/// `O_DIRECT` they went to the disk each time, where this VM served three replicas'
/// unsynced writes worse than synced ones (p90 293 against 50 µs,
/// results/no-fsync-page-cache-20261206/). A file on the poll ring stays `O_DIRECT`.
pub(super) async fn open_record_file(path: &Path, durable: bool) -> Result<DmaFile, WalError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if durable {
        options.custom_flags(libc::O_DSYNC);
    }
    let file = options
        .dma_open(path)
        .await
        .map_err(|e| io_err("open", path, e))?;
    if !durable && !file.is_pollable() {
        through_page_cache(&file).map_err(|e| io_err("fcntl", path, e))?;
    }
    Ok(file)
}

/// Clears `O_DIRECT` on `file`'s descriptor: its writes go through the page cache.
fn through_page_cache(file: &DmaFile) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL on a descriptor `file` holds open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Creates segment file `index` pre-written with zeros: written under a temporary name,
/// synced, closed, renamed, and the directory synced, so a half-made file never looks
/// usable. Records go through a handle of their own (`open_record_file`). On failure the
/// temporary is removed: a disk that filled up gets its space back, and a retry can
/// create it again.
pub(super) async fn create_segment_file(
    dir: &Path,
    index: u32,
    segment_bytes: u64,
    write_bytes_max: usize,
    sync: bool,
) -> Result<(), WalError> {
    let tmp = segment_path(dir, index).with_extension("wal.tmp");
    let made = make_segment_file(dir, index, segment_bytes, write_bytes_max, sync).await;
    if made.is_err() {
        // Best effort: a leftover temporary is deleted at the next open anyway.
        let _ = std::fs::remove_file(&tmp);
    }
    made
}

async fn make_segment_file(
    dir: &Path,
    index: u32,
    segment_bytes: u64,
    write_bytes_max: usize,
    sync: bool,
) -> Result<(), WalError> {
    let path = segment_path(dir, index);
    let tmp = path.with_extension("wal.tmp");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .dma_open(&tmp)
        .await
        .map_err(|e| io_err("create", &tmp, e))?;
    write_zeros(&file, &tmp, 0, segment_bytes, write_bytes_max).await?;
    if sync {
        file.fdatasync()
            .await
            .map_err(|e| io_err("fdatasync", &tmp, e))?;
    }
    file.close().await.map_err(|e| io_err("close", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_err("rename", &tmp, e))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fills `dst` with the bytes from `start` on of what `parts` make one after the other.
fn copy_from_parts(dst: &mut [u8], parts: &[&[u8]], mut start: usize) {
    let mut filled = 0;
    for part in parts {
        if filled == dst.len() {
            return;
        }
        if start >= part.len() {
            start -= part.len();
            continue;
        }
        let n = (part.len() - start).min(dst.len() - filled);
        dst[filled..filled + n].copy_from_slice(&part[start..start + n]);
        filled += n;
        start = 0;
    }
    assert_eq!(filled, dst.len(), "parts shorter than the bytes asked for");
}

/// Creates free segment file `index` with `opts`' sizes (see [`create_segment_file`]).
pub(super) async fn create_spare(
    dir: &Path,
    index: u32,
    opts: &WalOptions,
) -> Result<(), WalError> {
    create_segment_file(
        dir,
        index,
        opts.segment_bytes,
        opts.write_bytes_max,
        opts.sync,
    )
    .await
}

/// Makes directory entries (created or renamed files) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("fsync directory", dir, e))
}

impl SyncJob {
    /// Performs the writes and fdatasyncs. Never holds a borrow of the [`Wal`](super::Wal).
    /// After a failure other than of an fdatasync it may be run again (every write goes to
    /// the same place with the same bytes, a segment being created is created anew): that
    /// is how a full disk is waited out (see `GroupCommitter::run`). The records' writes
    /// are submitted as `submit` says.
    pub async fn run(&self, submit: Submit) -> Result<SyncDone, WalError> {
        // Record files are `O_DSYNC` when the WAL syncs (`open_record_file`): a write is
        // durable when it completes, so each segment is durable before the next one is
        // activated (recovery checks the LSN chain) and the sync needs no fdatasync.
        let mut new_segments = Vec::new();
        let mut tail_write_pos = 0;
        let mut tail_partial = Vec::new();
        for chunk in &self.chunks {
            let (file, path, capacity) = match &chunk.target {
                ChunkTarget::Tail {
                    file,
                    path,
                    capacity_bytes,
                } => (file.clone(), path.clone(), *capacity_bytes),
                &ChunkTarget::New {
                    index,
                    create,
                    seq,
                    first_lsn,
                } => {
                    let path = segment_path(&self.dir, index);
                    if create {
                        create_segment_file(
                            &self.dir,
                            index,
                            self.segment_bytes,
                            self.write_bytes_max,
                            self.sync,
                        )
                        .await?;
                    }
                    let file = open_record_file(&path, self.sync).await?;
                    let header = SegmentHeader {
                        kind: SegmentKind::Active,
                        seq,
                        first_lsn,
                        capacity_bytes: self.segment_bytes,
                    };
                    // Durable before any record with this seq is written (see module
                    // docs): the `O_DSYNC` write makes it so, no fdatasync needed.
                    write_header(&file, &path, &header, false).await?;
                    let file = Rc::new(file);
                    new_segments.push(LiveSegment {
                        index,
                        seq,
                        first_lsn,
                        capacity_bytes: self.segment_bytes,
                        file: file.clone(),
                        path: path.clone(),
                    });
                    (file, path, self.segment_bytes)
                }
            };
            let parts = [&chunk.prefix[..], &chunk.data[..]];
            let end = chunk.write_offset + (chunk.prefix.len() + chunk.data.len()) as u64;
            let partial_start = (format::align_down(end) - chunk.write_offset) as usize;
            tail_partial = vec![0; (end - chunk.write_offset) as usize - partial_start];
            copy_from_parts(&mut tail_partial, &parts, partial_start);
            tail_write_pos = end;
            // Keep the header slot after the last record zero on disk.
            let pad_bytes = if end.is_multiple_of(BLOCK_BYTES) && end < capacity {
                BLOCK_BYTES as usize
            } else {
                0
            };
            write_blocks(
                &file,
                &path,
                chunk.write_offset,
                &parts,
                pad_bytes,
                self.write_bytes_max,
                submit,
            )
            .await?;
        }
        Ok(SyncDone {
            new_segments,
            tail_write_pos,
            tail_partial,
            last_lsn: self.last_lsn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::copy_from_parts;

    #[test]
    fn bytes_are_copied_across_the_parts_they_span() {
        let parts: [&[u8]; 4] = [b"abc", b"", b"defg", b"h"];
        let all = b"abcdefgh";
        for start in 0..=all.len() {
            for len in 0..=all.len() - start {
                let mut dst = vec![0u8; len];
                copy_from_parts(&mut dst, &parts, start);
                assert_eq!(dst, &all[start..start + len], "start {start} len {len}");
            }
        }
    }
}
