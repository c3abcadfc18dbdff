//! Group commit: appends from any task of the shard, one committer task that syncs
//! whenever records are pending, so every sync covers everything queued meanwhile.

use super::io::{Submit, create_spare, free_segments};
use super::{Lsn, SYNCS_IN_FLIGHT_MAX, Wal, WalError};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// How long syncs took, for INFO.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncTimes {
    /// Syncs done.
    pub count: u64,
    /// Their time, summed (µs).
    pub total_us: u64,
    /// Syncs (`O_DSYNC` writes) that took [`SLOW_SYNC`] or longer.
    pub slow: u64,
    /// Their time, summed (ms).
    pub slow_ms: u64,
    /// The longest sync so far (ms).
    pub max_ms: u64,
    /// Syncs that started while another was in flight.
    pub overlapped: u64,
}

/// A sync this long counts as slow in [`SyncTimes`].
pub const SLOW_SYNC: std::time::Duration = std::time::Duration::from_millis(50);

/// How long the committer waits before trying a sync again on a full disk.
pub const DISK_FULL_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// A sync job in flight: its I/O, then its outcome once that ended.
struct Flight<'a> {
    sync: Pin<Box<dyn Future<Output = SyncOutcome> + 'a>>,
    done: Option<SyncOutcome>,
}

/// A sync job handed back with its result and how long it took.
type SyncOutcome = (super::SyncJob, Result<super::SyncDone, WalError>, Duration);

struct Shared {
    wal: Wal,
    times: SyncTimes,
    /// Set while the sync in flight failed for lack of space and waits to be retried: why.
    disk_full: Option<String>,
    /// A test's stand-in for a full disk (`COREPAX.DEBUG DISKFULL`): syncs fail as if the
    /// disk had no space.
    inject_no_space: bool,
    /// Set by `append` and `close`; cleared by the committer when it looks.
    wake: bool,
    waker: Option<Waker>,
    closed: bool,
}

impl Shared {
    /// True when an append, flush or close asked for a sync.
    fn asked(&self) -> bool {
        self.wake || self.closed
    }
}

/// Owns a [`Wal`] and lets one shard append while a committer task syncs.
///
/// ```text
/// let committer = GroupCommitter::new(wal);
/// glommio::spawn_local({ let c = committer.clone(); async move {
///     c.run(|lsn| replica_inputs.push(WalDurable(lsn))).await }}).detach();
/// let lsn = committer.append(&bytes)?;   // anywhere in the shard, no I/O
/// // ... the callback later reports a durable LSN >= lsn; only then reply / send accept-ok
/// committer.close();                      // run() flushes what is pending and returns
/// ```
///
/// Appends made while a sync is in flight go into the next sync, which starts beside it
/// when the WAL lets it (at most [`SYNCS_IN_FLIGHT_MAX`] in flight). A sync that failed
/// because the disk is full ([`WalError::is_no_space`]) is tried again every
/// [`DISK_FULL_RETRY`] until it succeeds, and [`GroupCommitter::disk_full`] says so
/// meanwhile: nothing is reported durable until it is, and the WAL resumes by itself once
/// space is back. After any other failed sync the WAL is poisoned: `append` fails and
/// `run` returns the error, so nothing not durable is ever reported durable.
#[derive(Clone)]
pub struct GroupCommitter {
    shared: Rc<RefCell<Shared>>,
}

impl GroupCommitter {
    /// Wraps an opened WAL.
    pub fn new(wal: Wal) -> Self {
        GroupCommitter {
            shared: Rc::new(RefCell::new(Shared {
                wal,
                times: SyncTimes::default(),
                disk_full: None,
                inject_no_space: false,
                wake: false,
                waker: None,
                closed: false,
            })),
        }
    }

    /// Buffers a record (no I/O) and wakes the committer; returns the record's LSN.
    pub fn append(&self, record: &[u8]) -> Result<Lsn, WalError> {
        self.append_parts(&[record], false)
    }

    /// Buffers a record without waking the committer: it becomes durable with the next
    /// sync that an [`append`](Self::append) or a [`flush`](Self::flush) starts. For
    /// records nothing waits on soon, so they do not cost a sync of their own.
    pub fn append_lazy(&self, record: &[u8]) -> Result<Lsn, WalError> {
        self.append_parts(&[record], true)
    }

    /// [`append`](Self::append) (or, `lazy`, [`append_lazy`](Self::append_lazy)) of the
    /// record `parts` make one after the other.
    pub fn append_parts(&self, parts: &[&[u8]], lazy: bool) -> Result<Lsn, WalError> {
        let lsn = {
            let mut shared = self.shared.borrow_mut();
            if shared.closed {
                return Err(WalError::Closed);
            }
            shared.wal.append_parts(parts)?
        };
        if !lazy {
            self.flush();
        }
        Ok(lsn)
    }

    /// Wakes the committer if records wait to be synced.
    pub fn flush(&self) {
        let mut shared = self.shared.borrow_mut();
        if !shared.wal.has_pending() {
            return;
        }
        shared.wake = true;
        if let Some(waker) = shared.waker.take() {
            waker.wake();
        }
    }

    /// How long syncs took so far.
    pub fn sync_times(&self) -> SyncTimes {
        self.shared.borrow().times
    }

    /// Highest LSN known durable.
    pub fn durable_lsn(&self) -> Lsn {
        self.shared.borrow().wal.durable_lsn()
    }

    /// True after a failed sync or truncation.
    pub fn is_poisoned(&self) -> bool {
        self.shared.borrow().wal.is_poisoned()
    }

    /// True while syncs wait for disk space.
    pub fn is_disk_full(&self) -> bool {
        self.shared.borrow().disk_full.is_some()
    }

    /// Why syncs are waiting for disk space, while they are.
    pub fn disk_full(&self) -> Option<String> {
        self.shared.borrow().disk_full.clone()
    }

    /// Makes every sync from now on fail as on a full disk (`true`), or stops (`false`):
    /// for tests of what a full disk does to the node.
    pub fn inject_no_space(&self, on: bool) {
        self.shared.borrow_mut().inject_no_space = on;
    }

    /// Asks [`GroupCommitter::run`] to flush what is pending and return; later appends
    /// fail with [`WalError::Closed`].
    pub fn close(&self) {
        let mut shared = self.shared.borrow_mut();
        shared.closed = true;
        if let Some(waker) = shared.waker.take() {
            waker.wake();
        }
    }

    /// Recycles segments wholly below `lsn`; may run while a sync is in flight.
    pub async fn truncate_before(&self, lsn: Lsn) -> Result<(), WalError> {
        let (victims, sync) = {
            let mut shared = self.shared.borrow_mut();
            shared.wal.check_poisoned()?;
            (shared.wal.take_truncatable(lsn), shared.wal.opts.sync)
        };
        let result = free_segments(&victims, sync).await;
        let surplus = self
            .shared
            .borrow_mut()
            .wal
            .finish_truncate(victims, result)?;
        crate::runtime::disk::remove_all_offloaded(surplus).await;
        Ok(())
    }

    /// See [`Wal::wants_spare`].
    pub fn wants_spare(&self) -> bool {
        self.shared.borrow().wal.wants_spare()
    }

    /// Creates free segment files until `free_min` are ready (see [`Wal::preallocate`]).
    /// Holds no borrow during the I/O, so it may run as its own task beside
    /// [`GroupCommitter::run`]: syncs continue meanwhile.
    pub async fn preallocate(&self, free_min: usize) -> Result<(), WalError> {
        loop {
            let (index, dir, opts) = {
                let mut shared = self.shared.borrow_mut();
                let wal = &mut shared.wal;
                if wal.free.len() >= free_min.min(wal.opts.segments_free_max) {
                    return Ok(());
                }
                let index = wal.next_index;
                wal.next_index += 1;
                (index, wal.dir.clone(), wal.opts.clone())
            };
            create_spare(&dir, index, &opts).await?;
            self.shared.borrow_mut().wal.free.push(index);
        }
    }

    /// The committer loop: whenever an append or flush asks, syncs the pending records and
    /// calls `on_durable` with the new durable LSN. Returns `Ok` after [`GroupCommitter::close`]
    /// once everything appended before it is durable, or the first error.
    ///
    /// Up to [`SYNCS_IN_FLIGHT_MAX`] syncs run at once: records appended while one is in
    /// flight start their own at once when the WAL lets them
    /// ([`Wal::begin_sync`](super::Wal::begin_sync)) instead of waiting for it to end.
    /// Syncs are reported durable in the order they began.
    pub async fn run(&self, mut on_durable: impl FnMut(Lsn)) -> Result<(), WalError> {
        // A sync started on an idle log goes to the kernel at once; one that follows or
        // overlaps another (records came meanwhile: load) with the pass (`io::Submit`).
        let mut submit = Submit::AtOnce;
        let mut flights: VecDeque<Flight<'_>> = VecDeque::with_capacity(SYNCS_IN_FLIGHT_MAX);
        loop {
            if let Some(job) = self.begin_if_asked()? {
                if !flights.is_empty() {
                    self.shared.borrow_mut().times.overlapped += 1;
                }
                flights.push_back(Flight {
                    sync: Box::pin(self.timed(job, submit)),
                    done: None,
                });
                submit = Submit::WithPass;
                continue;
            }
            if flights.is_empty() {
                if self.shared.borrow().closed {
                    return Ok(());
                }
                self.wait_for_work().await;
                submit = Submit::AtOnce;
                continue;
            }
            // The oldest sync's end, or records a new sync may take meanwhile.
            let oldest_done = poll_fn(|cx| {
                for flight in flights.iter_mut().filter(|f| f.done.is_none()) {
                    if let Poll::Ready(done) = flight.sync.as_mut().poll(cx) {
                        flight.done = Some(done);
                    }
                }
                if flights[0].done.is_some() {
                    return Poll::Ready(true);
                }
                let mut shared = self.shared.borrow_mut();
                if shared.asked() && shared.wal.can_begin_sync() {
                    return Poll::Ready(false);
                }
                shared.waker = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            if !oldest_done {
                continue;
            }
            let flight = flights.pop_front().expect("the oldest sync ended");
            let (job, done, took) = flight.done.expect("the oldest sync ended");
            let mut shared = self.shared.borrow_mut();
            let ms = took.as_millis() as u64;
            shared.times.count += 1;
            shared.times.total_us += took.as_micros() as u64;
            shared.times.max_ms = shared.times.max_ms.max(ms);
            if took >= SLOW_SYNC {
                shared.times.slow += 1;
                shared.times.slow_ms += ms;
            }
            let lsn = shared.wal.finish_sync(done)?;
            shared.wal.recycle(job);
            drop(shared);
            on_durable(lsn);
        }
    }

    /// A new sync job, if an append, flush or close asked for one and the WAL can start
    /// it now. The request stays standing while the WAL cannot (a sync in flight that this
    /// one may not overlap), so it starts when that one ends.
    fn begin_if_asked(&self) -> Result<Option<super::SyncJob>, WalError> {
        let mut shared = self.shared.borrow_mut();
        if !shared.asked() {
            return Ok(None);
        }
        // A poisoned WAL answers with its error.
        if shared.wal.can_begin_sync() || shared.wal.is_poisoned() {
            shared.wake = false;
            return shared.wal.begin_sync();
        }
        if !shared.wal.has_pending() {
            shared.wake = false;
        }
        Ok(None)
    }

    /// Runs a sync job to its end, timing it; hands the job back for recycling.
    async fn timed(&self, job: super::SyncJob, submit: Submit) -> SyncOutcome {
        let started = Instant::now();
        let done = self.run_job(&job, submit).await;
        (job, done, started.elapsed())
    }

    /// Runs a sync job, again and again while it fails for lack of disk space.
    async fn run_job(
        &self,
        job: &super::SyncJob,
        submit: Submit,
    ) -> Result<super::SyncDone, WalError> {
        loop {
            let done = if self.shared.borrow().inject_no_space {
                Err(WalError::Io {
                    op: "write",
                    path: self.shared.borrow().wal.dir.clone(),
                    source: std::io::Error::from_raw_os_error(libc::ENOSPC),
                })
            } else {
                job.run(submit).await
            };
            match done {
                Err(e) if e.is_no_space() => {
                    self.note_disk_full(&e);
                    glommio::timer::sleep(DISK_FULL_RETRY).await;
                }
                done => {
                    let mut shared = self.shared.borrow_mut();
                    if shared.disk_full.take().is_some() && done.is_ok() {
                        eprintln!(
                            "WAL in {}: space is back, writes resume",
                            shared.wal.dir.display()
                        );
                    }
                    return done;
                }
            }
        }
    }

    /// Records (and logs, when it starts) that syncs wait for disk space.
    fn note_disk_full(&self, e: &WalError) {
        let mut shared = self.shared.borrow_mut();
        if shared.disk_full.is_none() {
            eprintln!(
                "WAL in {}: disk full, writes wait for space (retrying every {} ms): {e}",
                shared.wal.dir.display(),
                DISK_FULL_RETRY.as_millis()
            );
        }
        shared.disk_full = Some(e.to_string());
    }

    /// Resolves when an append or close happened since the committer last looked.
    async fn wait_for_work(&self) {
        poll_fn(|cx| {
            let mut shared = self.shared.borrow_mut();
            if shared.asked() {
                Poll::Ready(())
            } else {
                shared.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}
