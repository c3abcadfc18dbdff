//! The driver: one glommio executor per core, each running its share of the connections,
//! in a closed loop (fixed requests in flight) or an open loop (requests due at a target
//! rate, latency counted from the due time). Each core sends its statistics to the
//! calling thread once a second; the caller merges them, shows progress and keeps the
//! per-second intervals for the HdrHistogram log.
//!
//! - [`closed`]: the closed loop; [`open`]: the open loop;
//! - [`preload`]: SETs every record before the run;
//! - [`progress`]: merges the cores' intervals and shows them;
//! - [`machine`]: the load generator's own CPU and the cores' busy share over the
//!   measured window.
mod closed;
mod machine;
mod open;
mod preload;
mod progress;

pub use machine::{MachineUse, online_cores};

use super::client::{ConnError, InFlight, Reply, value_bytes};
use super::stats::OpStats;
use super::workload::{KeyChooser, LoopMode, Workload};
use glommio::net::TcpStream;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Length of one statistics interval (progress line, interval log entry).
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Pause before reconnecting after a connection failed.
pub const RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// How often an idle open-loop reader wakes to check for timeouts and the end.
pub const READ_POLL: Duration = Duration::from_millis(50);
/// How long an open-loop writer may keep sending late requests after the end.
pub const OPEN_LOOP_GRACE: Duration = Duration::from_secs(1);
/// Requests per write during preload.
pub const PRELOAD_PIPELINE: usize = 64;
/// Capacity a connection's write buffer starts with.
const WRITE_BUFFER_BYTES: usize = 64 << 10;
/// How long connecting to a target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// From the executors' start to the common start of every connection's load: time for
/// each core to connect before the first request is due.
const START_DELAY: Duration = Duration::from_millis(50);
/// A run bounded by an operation count alone ends when that count is reached; its
/// deadline only has to lie beyond any such run.
const OPERATION_COUNT_DEADLINE: Duration = Duration::from_secs(24 * 3600);

// A reader wakes within the grace after the end, and a reconnect fits in it.
const _: () = assert!(READ_POLL.as_nanos() < OPEN_LOOP_GRACE.as_nanos());
const _: () = assert!(RECONNECT_DELAY.as_nanos() < OPEN_LOOP_GRACE.as_nanos());
// Preload writes are pipelines the workload could ask for too.
const _: () = assert!(PRELOAD_PIPELINE <= super::workload::PIPELINE_MAX);
const _: () = assert!(WRITE_BUFFER_BYTES <= super::client::READ_BUF_BYTES_MAX);
/// Most executors (cores) a run uses.
pub const CORES_MAX: usize = 256;

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// An indicatif spinner line (stderr is a terminal).
    Bar,
    /// A plain line per second on stderr.
    Lines,
    /// Nothing.
    Quiet,
}

impl Progress {
    /// `Bar` if stderr is a terminal, else `Lines`.
    pub fn auto() -> Progress {
        use std::io::IsTerminal;
        if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Lines
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The workload.
    pub workload: Workload,
    /// Servers; connections are spread over them round-robin.
    pub targets: Vec<SocketAddr>,
    /// Executors (one per core).
    pub cores: usize,
    /// Progress display.
    pub progress: Progress,
    /// Pin each executor to its own CPU (MaxSpread); `false` lets the kernel move them,
    /// which helps on a machine shared with other busy processes.
    pub pinned: bool,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The executor pool failed to start or a core panicked.
    #[error("executor pool: {0}")]
    Pool(String),
    /// No target given.
    #[error("no target address")]
    NoTarget,
    /// Preloading did not complete.
    #[error("preload failed: {0}")]
    Preload(String),
}

/// Statistics for one interval, merged across cores.
#[derive(Debug, Clone)]
pub struct Interval {
    /// Offset of the interval's start from the run's start (warm-up included).
    pub start: Duration,
    /// Length of the interval.
    pub length: Duration,
    /// Measured requests (after warm-up) in it.
    pub stats: OpStats,
    /// All completed requests, warm-up included (for progress).
    pub ops_all: u64,
}

/// Open-loop bookkeeping, summed over connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpenLoopReport {
    /// Target rate, requests/s.
    pub target_rate_per_s: f64,
    /// Requests that fell due before the end.
    pub intended: u64,
    /// Of those, sent no later than the end.
    pub sent_on_time_window: u64,
    /// Due but never sent (the writer gave up after the grace period).
    pub missed: u64,
    /// Largest delay between a request's due time and its send, µs.
    pub send_lag_us_max: f64,
    /// The load generator's own lateness (due time to send) over the measured requests,
    /// µs: p50, p99, p99.9. Latency counts from the due time, so it includes this.
    #[serde(default)]
    pub send_lag_us: [f64; 3],
    /// Latency counted from each request's send instead of its due time (what the server
    /// and the network took, without the load generator's lateness), µs: p50, p99, p99.9.
    #[serde(default)]
    pub from_send_us: [f64; 3],
    /// Whether the target rate was kept (≥ 95% of due requests sent within the run).
    pub kept_up: bool,
}

impl OpenLoopReport {
    /// Whether the lateness and the latency from the send were measured: false for a
    /// result written before they were (its fields read as zeros).
    pub fn split_measured(&self) -> bool {
        self.from_send_us != [0.0; 3]
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Measured statistics, merged over cores and intervals.
    pub stats: OpStats,
    /// Measured seconds (after warm-up).
    pub measured_s: f64,
    /// Per-second intervals.
    pub intervals: Vec<Interval>,
    /// Wall-clock time the run (warm-up) started.
    pub started: SystemTime,
    /// Open-loop bookkeeping, if open loop.
    pub open_loop: Option<OpenLoopReport>,
    /// Preload: records written and seconds taken.
    pub preload: Option<(u64, f64)>,
    /// CPU time (user + system, s) each target used in the measured window, for the
    /// targets whose INFO reports it at both ends (Redis and corepax do).
    pub server_cpu_s: Vec<(SocketAddr, f64)>,
    /// The load generator's own CPU and how busy the machine was in the measured window,
    /// where `/proc` says.
    pub machine: Option<MachineUse>,
}

/// Read-only plan shared by every core.
struct Plan {
    w: Workload,
    targets: Vec<SocketAddr>,
    cores: usize,
    start: Instant,
    measure_start: Instant,
    end: Instant,
    op_target: Option<u64>,
    measured_ops: AtomicU64,
    stop: AtomicBool,
    latest: Arc<AtomicU64>,
    value: Arc<Vec<u8>>,
    tx: crossbeam_channel::Sender<Msg>,
}

enum Msg {
    Interval {
        idx: u64,
        ops_all: u64,
        stats: Box<OpStats>,
    },
    Done {
        finished: Instant,
        open: Box<OpenCounters>,
    },
}

#[derive(Clone)]
struct OpenCounters {
    intended: u64,
    on_time: u64,
    missed: u64,
    lag_max: Duration,
    /// Due time to send of measured requests, µs.
    lag: Histogram<u64>,
    /// Send to reply of measured requests, µs.
    from_send: Histogram<u64>,
}

impl Default for OpenCounters {
    fn default() -> Self {
        let us = || Histogram::new(3).expect("3 significant figures are valid");
        OpenCounters {
            intended: 0,
            on_time: 0,
            missed: 0,
            lag_max: Duration::ZERO,
            lag: us(),
            from_send: us(),
        }
    }
}

impl OpenCounters {
    fn merge(&mut self, o: &OpenCounters) {
        self.intended += o.intended;
        self.on_time += o.on_time;
        self.missed += o.missed;
        self.lag_max = self.lag_max.max(o.lag_max);
        self.lag.add(&o.lag).expect("auto-resizing histograms add");
        self.from_send
            .add(&o.from_send)
            .expect("auto-resizing histograms add");
    }
}

/// p50, p99 and p99.9 of `h` (0 when empty).
fn quantiles(h: &Histogram<u64>) -> [f64; 3] {
    [0.5, 0.99, 0.999].map(|q| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64
        }
    })
}

struct Shard {
    plan: Arc<Plan>,
    stats: RefCell<OpStats>,
    ops_all: Cell<u64>,
    open: RefCell<OpenCounters>,
}

impl Shard {
    fn complete(&self, f: InFlight, reply: Reply<'_>, now: Instant) {
        self.ops_all.set(self.ops_all.get() + 1);
        if f.start < self.plan.measure_start {
            return;
        }
        match reply {
            Reply::Err(word) => self.stats.borrow_mut().error(f.op, word, 1),
            Reply::Ok => {
                let ns = now.saturating_duration_since(f.start).as_nanos() as u64;
                self.stats.borrow_mut().record(f.op, ns);
                if self.plan.w.load.mode == LoopMode::Open {
                    let us = now.saturating_duration_since(f.sent).as_micros() as u64;
                    // Auto-resizing: no value in u64 is out of its range.
                    let _ = self.open.borrow_mut().from_send.record(us);
                }
            }
        }
        if let Some(t) = self.plan.op_target {
            let n = self.plan.measured_ops.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= t {
                self.plan.stop.store(true, Ordering::Relaxed);
            }
        }
    }

    fn fail(&self, inflight: impl Iterator<Item = InFlight>, e: &ConnError) {
        let mut s = self.stats.borrow_mut();
        for f in inflight {
            if f.start >= self.plan.measure_start {
                s.error(f.op, e.kind(), 1);
            }
        }
    }

    fn connection_failed(&self) {
        // Counted once per failure (not per request) so a dead server is visible
        // even when nothing was in flight.
        let mut s = self.stats.borrow_mut();
        *s.error_kinds.entry("connect".to_string()).or_default() += 1;
    }

    fn finished(&self) -> bool {
        self.plan.stop.load(Ordering::Relaxed) || Instant::now() >= self.plan.end
    }
}

fn placement(pinned: bool, cores: usize) -> PoolPlacement {
    if pinned {
        PoolPlacement::MaxSpread(cores, None)
    } else {
        PoolPlacement::Unbound(cores)
    }
}

/// Runs a workload against the targets (preload, warm-up, measurement) and returns the
/// merged statistics.
pub fn run(cfg: &RunConfig) -> Result<RunOutput, DriverError> {
    if cfg.targets.is_empty() {
        return Err(DriverError::NoTarget);
    }
    let w = &cfg.workload;
    let cores = cfg.cores.clamp(1, CORES_MAX).min(w.connections);
    let preload = if w.preload {
        Some(preload::preload(cfg, cores)?)
    } else {
        None
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let start = Instant::now() + START_DELAY;
    let measure_start = start + Duration::from_secs_f64(w.warmup_s);
    let (end, op_target) = match (w.operation_count, w.load.mode, w.load.rate_per_s) {
        (Some(n), LoopMode::Open, Some(r)) => {
            (measure_start + Duration::from_secs_f64(n as f64 / r), None)
        }
        (Some(n), _, _) => (measure_start + OPERATION_COUNT_DEADLINE, Some(n)),
        (None, _, _) => (
            measure_start + Duration::from_secs_f64(w.duration_s.unwrap_or(1.0)),
            None,
        ),
    };
    let plan = Arc::new(Plan {
        w: w.clone(),
        targets: cfg.targets.clone(),
        cores,
        start,
        measure_start,
        end,
        op_target,
        measured_ops: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        latest: Arc::new(AtomicU64::new(w.record_count)),
        value: value_bytes(w),
        tx,
    });
    let started = SystemTime::now() + START_DELAY;
    let p = plan.clone();
    let next_shard = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // No spin_before_park: spinning starves the kernel's io_uring work on 2 cores.
    let handles = LocalExecutorPoolBuilder::new(placement(cfg.pinned, cores))
        .name("loadgen")
        .on_all_shards(move || {
            let plan = p.clone();
            let me = next_shard.fetch_add(1, Ordering::Relaxed);
            async move { shard_main(plan, me).await }
        })
        .map_err(|e| DriverError::Pool(e.to_string()))?;
    // The servers' CPU clocks (and the machine's) are read when measuring starts and when
    // it ends, from a thread of their own so the first read lands on time whatever the
    // collector does.
    let targets = cfg.targets.clone();
    let cpu_at_start = std::thread::spawn(move || {
        std::thread::sleep(measure_start.saturating_duration_since(Instant::now()));
        (machine::clocks(), progress::read_server_cpu(&targets))
    });
    let collected = progress::collect(&rx, &plan, cfg.progress);
    let machine_at_end = machine::clocks();
    let cpu_at_end = progress::read_server_cpu(&cfg.targets);
    let (machine, server_cpu_s) = match cpu_at_start.join() {
        Ok((machine_at_start, start)) => (
            machine_at_start
                .zip(machine_at_end)
                .and_then(|(a, b)| machine::between(a, b)),
            start
                .into_iter()
                .zip(cpu_at_end)
                .filter_map(|((addr, a), (_, b))| Some((addr, b? - a?)))
                .collect(),
        ),
        Err(_) => (None, Vec::new()),
    };
    for r in handles.join_all() {
        r.map_err(|e| DriverError::Pool(e.to_string()))?;
    }
    let (intervals, finished, open) = collected;
    let mut stats = OpStats::default();
    for i in &intervals {
        stats.merge(&i.stats);
    }
    let measured_s = match op_target {
        Some(_) => finished
            .saturating_duration_since(measure_start)
            .as_secs_f64(),
        None => end.saturating_duration_since(measure_start).as_secs_f64(),
    };
    let open_loop = (w.load.mode == LoopMode::Open).then(|| OpenLoopReport {
        target_rate_per_s: w.load.rate_per_s.unwrap_or(0.0),
        intended: open.intended,
        sent_on_time_window: open.on_time,
        missed: open.missed,
        send_lag_us_max: open.lag_max.as_secs_f64() * 1e6,
        send_lag_us: quantiles(&open.lag),
        from_send_us: quantiles(&open.from_send),
        kept_up: open.missed == 0 && open.on_time as f64 >= 0.95 * open.intended as f64,
    });
    Ok(RunOutput {
        stats,
        measured_s,
        intervals,
        started,
        open_loop,
        preload,
        server_cpu_s,
        machine,
    })
}

/// Connections of core `me`: global indices `me, me + cores, me + 2 cores, ...`.
fn my_connections(plan: &Plan, me: usize) -> Vec<usize> {
    (me..plan.w.connections).step_by(plan.cores).collect()
}

async fn shard_main(plan: Arc<Plan>, me: usize) {
    let shard = Rc::new(Shard {
        plan: plan.clone(),
        stats: RefCell::new(OpStats::default()),
        ops_all: Cell::new(0),
        open: RefCell::new(OpenCounters::default()),
    });
    let ticker = {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            let mut idx = 0u64;
            loop {
                let due = shard.plan.start + INTERVAL * (idx as u32 + 1);
                let now = Instant::now();
                if due > now {
                    glommio::timer::sleep(due - now).await;
                }
                flush(&shard, idx);
                idx += 1;
            }
        })
        .detach()
    };
    let mut tasks = Vec::new();
    for g in my_connections(&plan, me) {
        let shard = shard.clone();
        tasks.push(glommio::spawn_local(async move {
            match shard.plan.w.load.mode {
                LoopMode::Closed => closed::closed_conn(&shard, g).await,
                LoopMode::Open => open::open_conn(shard.clone(), g).await,
            }
        }));
    }
    for t in tasks {
        t.await;
    }
    ticker.cancel();
    let now = Instant::now();
    let idx = (now.saturating_duration_since(plan.start).as_nanos() / INTERVAL.as_nanos()) as u64;
    flush(&shard, idx);
    let open = Box::new(shard.open.take());
    let _ = plan.tx.send(Msg::Done {
        finished: now,
        open,
    });
}

fn flush(shard: &Shard, idx: u64) {
    let stats = Box::new(shard.stats.borrow_mut().take());
    let ops_all = shard.ops_all.replace(0);
    let _ = shard.plan.tx.send(Msg::Interval {
        idx,
        ops_all,
        stats,
    });
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, ConnError> {
    let s = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
        .await
        .map_err(|e| ConnError::Io(e.into()))?;
    s.set_nodelay(true).map_err(|e| ConnError::Io(e.into()))?;
    Ok(s)
}

/// Connects connection `g` to its target, with `read_timeout` on reads. On a failure it
/// counts it (and, if the target did not answer, waits [`RECONNECT_DELAY`]) and returns
/// None: the caller tries again.
async fn connect_conn(shard: &Shard, g: usize, read_timeout: Duration) -> Option<TcpStream> {
    let s = match connect(target_of(&shard.plan, g)).await {
        Ok(s) => s,
        Err(_) => {
            shard.connection_failed();
            glommio::timer::sleep(RECONNECT_DELAY).await;
            return None;
        }
    };
    if s.set_read_timeout(Some(read_timeout)).is_err() {
        shard.connection_failed();
        return None;
    }
    Some(s)
}

fn target_of(plan: &Plan, g: usize) -> SocketAddr {
    plan.targets[g % plan.targets.len()]
}

fn key_chooser(plan: &Plan) -> KeyChooser {
    KeyChooser::new(&plan.w, plan.latest.clone())
}
