//! WAL commit throughput: records of 100 B and 4 KiB, 1 and 64 records per sync, against
//! the disk's floor measured in the same run (one 4 KiB glommio DmaFile write + fdatasync
//! into an already-written file, queue depth 1).
//!
//! Run: `cargo bench --bench wal -- [--seconds N] [--dir PATH] [--no-fsync]`
//! (`--dir` must be on the disk under test; the default is a temp dir under ./target).
//! Segments are recycled as they would be after snapshots: whenever three segments are
//! live, `truncate_before` frees the oldest, so steady state never creates files. A last
//! line measures the shard loop's pattern: a stream of appends and a GroupCommitter task.
//! The machine is shared and noisy, so each case alternates 100 ms slices of the floor
//! and of the WAL for N seconds: the ratio compares the two under the same conditions.
//! Rates are commits over the time spent committing.
//!
//! `-- --truncation [--dir PATH]` measures something else instead, 3 rounds: how long the
//! executor stalls while `truncate_before` frees 6 segments of 64 MiB beyond the free
//! pool (`segments_free_max` 0, so all of them are deleted): the longest gap of a task
//! that sleeps 1 ms at a time beside it, and how long the truncation took.

use corepax::runtime::wal::{GroupCommitter, Lsn, Wal, WalOptions};
use glommio::io::{DmaFile, OpenOptions};
use hdrhistogram::Histogram;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// io_memory that fits under an 8 MiB RLIMIT_MEMLOCK.
const IO_MEMORY_BYTES: usize = 4 << 20;
/// File size for the floor measurement.
const FLOOR_FILE_BYTES: u64 = 64 << 20;
/// Length of each alternating floor / WAL slice.
const SLICE_MS: u64 = 100;

struct Args {
    seconds: f64,
    dir: Option<PathBuf>,
    sync: bool,
    truncation: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: 6.0,
        dir: None,
        sync: true,
        truncation: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                args.seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds needs a number")
            }
            "--dir" => args.dir = Some(PathBuf::from(it.next().expect("--dir needs a path"))),
            "--no-fsync" => args.sync = false,
            "--truncation" => args.truncation = true,
            // cargo bench passes --bench; filters are not used here.
            _ => {}
        }
    }
    args
}

/// Commits counted over the time spent in them, with sync latencies.
struct Tally {
    commits: u64,
    bytes: u64,
    busy: Duration,
    hist: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            commits: 0,
            bytes: 0,
            busy: Duration::ZERO,
            hist: Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram"),
        }
    }

    fn commits_per_s(&self) -> f64 {
        self.commits as f64 / self.busy.as_secs_f64().max(1e-9)
    }

    fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / self.busy.as_secs_f64().max(1e-9) / (1 << 20) as f64
    }
}

/// The floor: one 4 KiB write + fdatasync at a time into an already-written file.
struct Floor {
    file: DmaFile,
    offset: u64,
}

impl Floor {
    async fn new(dir: &Path) -> Floor {
        let path = dir.join("floor.dat");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .dma_open(&path)
            .await
            .expect("create floor file");
        let chunk = 1usize << 20;
        let mut pos = 0;
        while pos < FLOOR_FILE_BYTES {
            let mut buf = file.alloc_dma_buffer(chunk);
            buf.as_bytes_mut().fill(0);
            file.write_at(buf, pos).await.expect("pre-write");
            pos += chunk as u64;
        }
        file.fdatasync().await.expect("fdatasync");
        Floor { file, offset: 0 }
    }

    async fn commit(&mut self, sync: bool) {
        let mut buf = self.file.alloc_dma_buffer(4096);
        buf.as_bytes_mut().fill(self.offset as u8);
        self.file.write_at(buf, self.offset).await.expect("write");
        if sync {
            self.file.fdatasync().await.expect("fdatasync");
        }
        self.offset = (self.offset + 4096) % FLOOR_FILE_BYTES;
    }
}

/// Runs one case for `seconds`, alternating short slices of the floor and of the WAL so
/// both see the same disk conditions on this shared machine.
async fn run_case(
    floor: &mut Floor,
    dir: &Path,
    record_bytes: usize,
    per_sync: usize,
    seconds: f64,
    sync: bool,
) -> (Tally, Tally) {
    let opts = WalOptions {
        sync,
        ..WalOptions::default()
    };
    let (mut wal, _) = Wal::open(dir, opts).await.expect("open WAL");
    let record = vec![0xa5u8; record_bytes];
    // Warm up: pre-write the segments recycling cycles through; the first sync activates
    // one, so steady state never creates files.
    wal.preallocate(4).await.expect("preallocate");
    for _ in 0..per_sync {
        wal.append(&record).expect("append");
    }
    wal.sync().await.expect("sync");
    let (mut f, mut w) = (Tally::new(), Tally::new());
    let slice = Duration::from_millis(SLICE_MS);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        let slice_start = Instant::now();
        while slice_start.elapsed() < slice {
            let t = Instant::now();
            floor.commit(sync).await;
            let took = t.elapsed();
            f.hist.saturating_record(took.as_micros() as u64);
            f.busy += took;
            f.commits += 1;
            f.bytes += 4096;
        }
        let slice_start = Instant::now();
        while slice_start.elapsed() < slice {
            let t = Instant::now();
            for _ in 0..per_sync {
                wal.append(&record).expect("append");
            }
            let lsn = wal.sync().await.expect("sync");
            if wal.live_segments() >= 3 {
                // What a snapshot would allow: recycle all but the newest segments.
                wal.truncate_before(Lsn(lsn.0.saturating_sub(1)))
                    .await
                    .expect("truncate");
            }
            let took = t.elapsed();
            w.hist.saturating_record(took.as_micros() as u64);
            w.busy += took;
            w.commits += 1;
            w.bytes += (per_sync * (record_bytes + 32)) as u64;
        }
    }
    (f, w)
}

/// Returns Pending once, so other tasks on the executor run before this one continues.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// Records in flight in the group-commit case, like that many closed-loop clients each
/// waiting for its write to be durable.
const CLIENTS_MAX: usize = 64;

/// The shard loop's pattern: a producer appends 100 B records, one at a time with a
/// yield between, keeping at most CLIENTS_MAX not yet durable (then it waits for the
/// committer), while a GroupCommitter task syncs whatever is pending. Reports durable
/// records/s, syncs/s and append-to-durable latency.
async fn run_group_commit(dir: &Path, seconds: f64, sync: bool) {
    let opts = WalOptions {
        sync,
        ..WalOptions::default()
    };
    let (mut wal, _) = Wal::open(dir, opts).await.expect("open WAL");
    wal.preallocate(4).await.expect("preallocate");
    let committer = GroupCommitter::new(wal);
    let appended: Rc<RefCell<VecDeque<(Lsn, Instant)>>> = Rc::default();
    let latency = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram"),
    ));
    let syncs = Rc::new(RefCell::new(0u64));
    let (durable_tx, durable_rx) = glommio::channels::local_channel::new_bounded::<()>(1);
    let task = glommio::spawn_local({
        let (committer, appended, latency, syncs) = (
            committer.clone(),
            appended.clone(),
            latency.clone(),
            syncs.clone(),
        );
        async move {
            committer
                .run(|lsn| {
                    // Full means the producer has a wake-up waiting already.
                    let _ = durable_tx.try_send(());
                    *syncs.borrow_mut() += 1;
                    let now = Instant::now();
                    let mut appended = appended.borrow_mut();
                    while appended.front().is_some_and(|(l, _)| *l <= lsn) {
                        if let Some((_, at)) = appended.pop_front() {
                            latency
                                .borrow_mut()
                                .saturating_record((now - at).as_micros() as u64);
                        }
                    }
                })
                .await
        }
    });
    let record = [0x5au8; 100];
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        if appended.borrow().len() < CLIENTS_MAX {
            let lsn = committer.append(&record).expect("append");
            appended.borrow_mut().push_back((lsn, Instant::now()));
            yield_now().await;
        } else {
            // Waiting (not spinning) also lets glommio poll for I/O completions: a task
            // that only ever yields starves them until the preemption timer fires.
            durable_rx.recv().await;
        }
    }
    committer.close();
    task.await.expect("committer");
    let secs = start.elapsed().as_secs_f64();
    let durable = committer.durable_lsn().0;
    let syncs = *syncs.borrow();
    let latency = latency.borrow();
    println!(
        "group commit, 100 B, {CLIENTS_MAX} in flight: {:.0} records/s durable, {:.0} syncs/s, {:.1} records/sync, append->durable p50 {} us p99 {} us",
        durable as f64 / secs,
        syncs as f64 / secs,
        durable as f64 / syncs.max(1) as f64,
        latency.value_at_quantile(0.5),
        latency.value_at_quantile(0.99)
    );
}

/// Segments the truncation measurement fills, then frees at once.
const TRUNCATED_SEGMENTS: u64 = 6;

/// One round of `--truncation`: returns the longest gap between wake-ups of a task sleeping
/// 1 ms at a time, and the truncation's duration.
async fn truncation_stall(dir: &Path) -> (Duration, Duration) {
    let opts = WalOptions {
        segments_free_max: 0,
        ..WalOptions::default()
    };
    let record = vec![0x5au8; 64 << 10];
    let (mut wal, _) = Wal::open(dir, opts.clone()).await.expect("open WAL");
    let mut last = Lsn(0);
    while wal.live_segments() as u64 <= TRUNCATED_SEGMENTS {
        for _ in 0..16 {
            last = wal.append(&record).expect("append");
        }
        wal.sync().await.expect("sync");
    }
    let done = Rc::new(std::cell::Cell::new(false));
    let ticker = glommio::spawn_local({
        let done = done.clone();
        async move {
            let mut longest = Duration::ZERO;
            let mut at = Instant::now();
            while !done.get() {
                glommio::timer::sleep(Duration::from_millis(1)).await;
                longest = longest.max(at.elapsed());
                at = Instant::now();
            }
            longest
        }
    });
    // Let the ticker start.
    glommio::timer::sleep(Duration::from_millis(5)).await;
    let start = Instant::now();
    wal.truncate_before(last).await.expect("truncate");
    let took = start.elapsed();
    done.set(true);
    let longest = ticker.await;
    assert_eq!(wal.free_segments(), 0);
    (longest, took)
}

fn main() {
    let args = parse_args();
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("target"));
    std::fs::create_dir_all(&base).expect("bench dir");
    let root = tempfile::tempdir_in(&base).expect("temp dir");
    if args.truncation {
        println!(
            "command: cargo bench --bench wal -- --truncation --dir {}",
            base.display()
        );
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(IO_MEMORY_BYTES)
            .make()
            .expect("glommio executor");
        ex.run(async move {
            for round in 1..=3 {
                let dir = root.path().join(format!("truncation-{round}"));
                let (longest, took) = truncation_stall(&dir).await;
                let _ = std::fs::remove_dir_all(&dir);
                println!(
                    "round {round}: {TRUNCATED_SEGMENTS} segments of 64 MiB deleted: longest executor \
                     gap {:.1} ms (a 1 ms sleep), truncation took {:.1} ms",
                    longest.as_secs_f64() * 1e3,
                    took.as_secs_f64() * 1e3
                );
            }
        });
        return;
    }
    println!(
        "command: cargo bench --bench wal -- --seconds {} --dir {}{}",
        args.seconds,
        base.display(),
        if args.sync { "" } else { " --no-fsync" }
    );
    println!(
        "config: segment 64 MiB, write_bytes_max 1 MiB, io_memory {} MiB, fsync {}, recycling on",
        IO_MEMORY_BYTES >> 20,
        args.sync
    );
    let ex = glommio::LocalExecutorBuilder::default()
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("glommio executor");
    let cases = [(100usize, 1usize), (100, 64), (4096, 1), (4096, 64)];
    let (seconds, sync) = (args.seconds, args.sync);
    ex.run(async move {
        let mut floor = Floor::new(root.path()).await;
        println!(
            "{:<26} {:>11} {:>9} {:>8} {:>8} | {:>11} {:>8} {:>8} | {:>8}",
            "case",
            "commits/s",
            "MiB/s",
            "p50 us",
            "p99 us",
            "floor c/s",
            "p50 us",
            "p99 us",
            "vs floor"
        );
        for (record_bytes, per_sync) in cases {
            let dir = root.path().join(format!("wal-{record_bytes}-{per_sync}"));
            let (f, w) = run_case(&mut floor, &dir, record_bytes, per_sync, seconds, sync).await;
            let _ = std::fs::remove_dir_all(&dir);
            println!(
                "{:<26} {:>11.0} {:>9.1} {:>8} {:>8} | {:>11.0} {:>8} {:>8} | {:>7.2}x",
                format!("wal: {record_bytes} B x {per_sync}/sync"),
                w.commits_per_s(),
                w.mib_per_s(),
                w.hist.value_at_quantile(0.5),
                w.hist.value_at_quantile(0.99),
                f.commits_per_s(),
                f.hist.value_at_quantile(0.5),
                f.hist.value_at_quantile(0.99),
                w.commits_per_s() / f.commits_per_s(),
            );
        }
        let dir = root.path().join("wal-group");
        run_group_commit(&dir, seconds, sync).await;
    });
}
