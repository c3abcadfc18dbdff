//! WAL commit throughput: records of 100 B and 4 KiB, 1 and 64 records per sync, against
//! the disk's floor measured in the same run (one 4 KiB glommio DmaFile write + fdatasync
//! into an already-written file, queue depth 1).
//!
//! Run: `cargo bench --bench wal -- [--seconds N] [--rounds R] [--dir PATH] [--no-fsync]`
//! (`--dir` must be on the disk under test; the default is a temp dir under ./target).
//! Segments are recycled as they would be after snapshots: whenever three segments are
//! live, `truncate_before` frees the oldest, so steady state never creates files.
//! The machine is shared and noisy, so the cases run interleaved in R rounds (floor first
//! in each round) and the round with the median floor is what is compared.

use corepax::runtime::wal::{Lsn, Wal, WalOptions};
use glommio::io::OpenOptions;
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// io_memory that fits under an 8 MiB RLIMIT_MEMLOCK.
const IO_MEMORY_BYTES: usize = 4 << 20;
/// File size for the floor measurement.
const FLOOR_FILE_BYTES: u64 = 64 << 20;

struct Args {
    seconds: f64,
    rounds: usize,
    dir: Option<PathBuf>,
    sync: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: 2.0,
        rounds: 3,
        dir: None,
        sync: true,
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
            "--rounds" => {
                args.rounds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--rounds needs a number")
            }
            "--dir" => args.dir = Some(PathBuf::from(it.next().expect("--dir needs a path"))),
            "--no-fsync" => args.sync = false,
            // cargo bench passes --bench; filters are not used here.
            _ => {}
        }
    }
    args
}

struct Outcome {
    commits_per_s: f64,
    mib_per_s: f64,
    p50_us: u64,
    p99_us: u64,
}

async fn measure_wal(
    dir: &Path,
    record_bytes: usize,
    per_sync: usize,
    seconds: f64,
    sync: bool,
) -> Outcome {
    let opts = WalOptions {
        sync,
        ..WalOptions::default()
    };
    let (mut wal, _) = Wal::open(dir, opts).await.expect("open WAL");
    let record = vec![0xa5u8; record_bytes];
    // Warm up: pre-write the segments recycling will cycle through, then the first sync
    // activates one; steady state then never creates files.
    wal.preallocate(4).await.expect("preallocate");
    for _ in 0..per_sync {
        wal.append(&record).expect("append");
    }
    wal.sync().await.expect("sync");
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram");
    let mut commits = 0u64;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline {
        for _ in 0..per_sync {
            wal.append(&record).expect("append");
        }
        let t = Instant::now();
        let lsn = wal.sync().await.expect("sync");
        hist.saturating_record(t.elapsed().as_micros() as u64);
        commits += 1;
        if wal.live_segments() >= 3 {
            // What a snapshot would allow: recycle all but the newest segments.
            wal.truncate_before(Lsn(lsn.0.saturating_sub(1)))
                .await
                .expect("truncate");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Outcome {
        commits_per_s: commits as f64 / secs,
        mib_per_s: (commits * per_sync as u64 * (record_bytes as u64 + 32)) as f64
            / secs
            / (1 << 20) as f64,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
    }
}

/// One 4 KiB write + fdatasync at a time into an already-written file.
async fn measure_floor(dir: &Path, seconds: f64, sync: bool) -> Outcome {
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
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram");
    let mut commits = 0u64;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut offset = 0u64;
    while Instant::now() < deadline {
        let t = Instant::now();
        let mut buf = file.alloc_dma_buffer(4096);
        buf.as_bytes_mut().fill(commits as u8);
        file.write_at(buf, offset).await.expect("write");
        if sync {
            file.fdatasync().await.expect("fdatasync");
        }
        hist.saturating_record(t.elapsed().as_micros() as u64);
        commits += 1;
        offset = (offset + 4096) % FLOOR_FILE_BYTES;
    }
    let secs = start.elapsed().as_secs_f64();
    file.close().await.expect("close");
    let _ = std::fs::remove_file(&path);
    Outcome {
        commits_per_s: commits as f64 / secs,
        mib_per_s: (commits * 4096) as f64 / secs / (1 << 20) as f64,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
    }
}

fn main() {
    let args = parse_args();
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("target"));
    std::fs::create_dir_all(&base).expect("bench dir");
    let root = tempfile::tempdir_in(&base).expect("temp dir");
    println!(
        "command: cargo bench --bench wal -- --seconds {} --rounds {} --dir {}{}",
        args.seconds,
        args.rounds,
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
    let (seconds, rounds, sync) = (args.seconds, args.rounds.max(1), args.sync);
    ex.run(async move {
        // rounds[r] = floor outcome, then one outcome per case.
        let mut results: Vec<Vec<Outcome>> = Vec::new();
        for round in 0..rounds {
            let mut row = vec![measure_floor(root.path(), seconds, sync).await];
            for (record_bytes, per_sync) in cases {
                let dir = root
                    .path()
                    .join(format!("wal-{round}-{record_bytes}-{per_sync}"));
                row.push(measure_wal(&dir, record_bytes, per_sync, seconds, sync).await);
                let _ = std::fs::remove_dir_all(&dir);
            }
            eprintln!(
                "round {round}: {}",
                row.iter()
                    .map(|o| format!("{:.0}", o.commits_per_s))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            results.push(row);
        }
        // Ratios within one round; report the median round of each case by its ratio.
        println!(
            "{:<34} {:>12} {:>10} {:>9} {:>9} {:>9}",
            "case (median of rounds)", "commits/s", "vs floor", "MiB/s", "p50 us", "p99 us"
        );
        for case in 0..=cases.len() {
            let mut by_ratio: Vec<(f64, &Outcome)> = results
                .iter()
                .map(|row| (row[case].commits_per_s / row[0].commits_per_s, &row[case]))
                .collect();
            by_ratio.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (ratio, o) = by_ratio[by_ratio.len() / 2];
            let name = if case == 0 {
                "floor: DmaFile 4 KiB + fdatasync".to_string()
            } else {
                let (record_bytes, per_sync) = cases[case - 1];
                format!("wal: {record_bytes} B x {per_sync}/sync")
            };
            println!(
                "{:<34} {:>12.0} {:>9.2}x {:>9.1} {:>9} {:>9}",
                name, o.commits_per_s, ratio, o.mib_per_s, o.p50_us, o.p99_us
            );
        }
    });
}
