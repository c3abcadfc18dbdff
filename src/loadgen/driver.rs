//! The driver: one glommio executor per core, each running its share of the connections,
//! in a closed loop (fixed requests in flight) or an open loop (requests due at a target
//! rate, latency counted from the due time). Each core sends its statistics to the
//! calling thread once a second; the caller merges them, shows progress and keeps the
//! per-second intervals for the HdrHistogram log.
use super::client::{ConnError, InFlight, Reply, ReplyReader, RequestGen, value_bytes};
use super::stats::{OpStats, new_histogram};
use super::workload::{Arrival, KeyChooser, LoopMode, Op, Workload};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
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
    /// Whether the target rate was kept (≥ 95% of due requests sent within the run).
    pub kept_up: bool,
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
        open: OpenCounters,
    },
}

#[derive(Default, Clone, Copy)]
struct OpenCounters {
    intended: u64,
    on_time: u64,
    missed: u64,
    lag_max: Duration,
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
        Some(preload(cfg, cores)?)
    } else {
        None
    };
    let (tx, rx) = crossbeam_channel::unbounded();
    let start = Instant::now() + Duration::from_millis(50);
    let measure_start = start + Duration::from_secs_f64(w.warmup_s);
    let (end, op_target) = match (w.operation_count, w.load.mode, w.load.rate_per_s) {
        (Some(n), LoopMode::Open, Some(r)) => {
            (measure_start + Duration::from_secs_f64(n as f64 / r), None)
        }
        (Some(n), _, _) => (measure_start + Duration::from_secs(24 * 3600), Some(n)),
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
    let started = SystemTime::now() + Duration::from_millis(50);
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
    // The servers' CPU clocks are read when measuring starts and when it ends, from a
    // thread of their own so the first read lands on time whatever the collector does.
    let targets = cfg.targets.clone();
    let cpu_at_start = std::thread::spawn(move || {
        std::thread::sleep(measure_start.saturating_duration_since(Instant::now()));
        read_server_cpu(&targets)
    });
    let collected = collect(&rx, &plan, cfg.progress);
    let cpu_at_end = read_server_cpu(&cfg.targets);
    let server_cpu_s = match cpu_at_start.join() {
        Ok(start) => start
            .into_iter()
            .zip(cpu_at_end)
            .filter_map(|((addr, a), (_, b))| Some((addr, b? - a?)))
            .collect(),
        Err(_) => Vec::new(),
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
    })
}

/// Each target's CPU time so far (s), if its INFO says.
fn read_server_cpu(targets: &[SocketAddr]) -> Vec<(SocketAddr, Option<f64>)> {
    targets
        .iter()
        .map(|a| (*a, super::info::cpu_s(*a)))
        .collect()
}

/// Receives interval messages until every core is done; shows progress.
fn collect(
    rx: &crossbeam_channel::Receiver<Msg>,
    plan: &Plan,
    progress: Progress,
) -> (Vec<Interval>, Instant, OpenCounters) {
    let bar = (progress == Progress::Bar).then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut pending: BTreeMap<u64, (usize, Interval)> = BTreeMap::new();
    let mut done_cores = 0;
    let mut finished = plan.start;
    let mut open = OpenCounters::default();
    let mut shown = 0u64;
    // A core that panicked never reports; give up on it well after the run should end.
    let give_up = plan.end + Duration::from_millis(plan.w.timeout_ms) + Duration::from_secs(30);
    while done_cores < plan.cores {
        let Ok(msg) = rx.recv_timeout(Duration::from_secs(1)) else {
            if Instant::now() > give_up {
                break;
            }
            continue;
        };
        match msg {
            Msg::Interval {
                idx,
                ops_all,
                stats,
            } => {
                let e = pending.entry(idx).or_insert_with(|| {
                    (
                        0,
                        Interval {
                            start: INTERVAL * idx as u32,
                            length: INTERVAL,
                            stats: OpStats::default(),
                            ops_all: 0,
                        },
                    )
                });
                e.0 += 1;
                e.1.ops_all += ops_all;
                e.1.stats.merge(&stats);
                if e.0 >= plan.cores && idx >= shown {
                    shown = idx + 1;
                    show(&e.1, plan, progress, bar.as_ref());
                }
            }
            Msg::Done {
                finished: f,
                open: o,
            } => {
                done_cores += 1;
                finished = finished.max(f);
                open.intended += o.intended;
                open.on_time += o.on_time;
                open.missed += o.missed;
                open.lag_max = open.lag_max.max(o.lag_max);
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut intervals: Vec<Interval> = pending.into_values().map(|(_, i)| i).collect();
    // The final flush covers only the part of its second before the run ended.
    if let Some(last) = intervals.last_mut() {
        let left = finished.saturating_duration_since(plan.start + last.start);
        last.length = left.clamp(Duration::from_millis(1), INTERVAL);
    }
    (intervals, finished, open)
}

fn show(i: &Interval, plan: &Plan, progress: Progress, bar: Option<&indicatif::ProgressBar>) {
    let t = i.start + i.length;
    if plan.start + i.start >= plan.end {
        // The final flush after the end: its requests count, but it is no second of load.
        return;
    }
    let warm = plan.start + i.start + i.length <= plan.measure_start;
    let mut all = new_histogram();
    for h in &i.stats.hist {
        all.add(h).expect("same bounds");
    }
    let p99 = if all.is_empty() {
        "-".to_string()
    } else {
        format!("{:.0} µs", all.value_at_quantile(0.99) as f64 / 1000.0)
    };
    let line = format!(
        "t={:>4}s {}{:>10.0} ops/s  p99 {}  errors {}",
        t.as_secs(),
        if warm { "(warm-up) " } else { "" },
        i.ops_all as f64 / i.length.as_secs_f64(),
        p99,
        i.stats.error_kinds.values().sum::<u64>()
    );
    match (progress, bar) {
        (Progress::Bar, Some(b)) => b.set_message(line),
        (Progress::Lines, _) => eprintln!("{line}"),
        _ => {}
    }
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
                LoopMode::Closed => closed_conn(&shard, g).await,
                LoopMode::Open => open_conn(shard.clone(), g).await,
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
    let open = *shard.open.borrow();
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
    let s = TcpStream::connect_timeout(addr, Duration::from_secs(5))
        .await
        .map_err(|e| ConnError::Io(e.into()))?;
    s.set_nodelay(true).map_err(|e| ConnError::Io(e.into()))?;
    Ok(s)
}

fn target_of(plan: &Plan, g: usize) -> SocketAddr {
    plan.targets[g % plan.targets.len()]
}

fn key_chooser(plan: &Plan) -> KeyChooser {
    KeyChooser::new(&plan.w, plan.latest.clone())
}

/// Closed loop: write a whole pipeline in one write, read every reply, repeat.
async fn closed_conn(shard: &Shard, g: usize) {
    let plan = &shard.plan;
    let mut generator = RequestGen::new(&plan.w, g, key_chooser(plan), plan.value.clone());
    let mut followups: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut wbuf = Vec::with_capacity(64 * 1024);
    let mut inflight: VecDeque<InFlight> = VecDeque::with_capacity(plan.w.pipeline);
    let timeout = Duration::from_millis(plan.w.timeout_ms);
    // Connect early, but send nothing before the common start.
    let mut first = true;
    while !shard.finished() {
        let mut s = match connect(target_of(plan, g)).await {
            Ok(s) => s,
            Err(_) => {
                shard.connection_failed();
                glommio::timer::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if s.set_read_timeout(Some(timeout)).is_err() {
            shard.connection_failed();
            continue;
        }
        let mut reader = ReplyReader::default();
        followups.clear();
        if first {
            first = false;
            let now = Instant::now();
            if plan.start > now {
                glommio::timer::sleep(plan.start - now).await;
            }
        }
        let result: Result<(), ConnError> = async {
            while !shard.finished() {
                wbuf.clear();
                inflight.clear();
                let now = Instant::now();
                for _ in 0..plan.w.pipeline {
                    match followups.pop_front() {
                        Some((k, start)) => {
                            generator.encode_set(&mut wbuf, k);
                            inflight.push_back(InFlight {
                                op: Op::Rmw,
                                rmw_key: None,
                                start,
                            });
                        }
                        None => inflight.push_back(generator.next(&mut wbuf, now)),
                    }
                }
                s.write_all(&wbuf).await?;
                while let Some(f) = inflight.front().copied() {
                    let at = reader.filled_at();
                    match reader.next_buffered()? {
                        None => reader.fill(&mut s).await?,
                        Some(r) => {
                            inflight.pop_front();
                            match (r, f.rmw_key) {
                                (Reply::Ok, Some(k)) => followups.push_back((k, f.start)),
                                _ => shard.complete(f, r, at),
                            }
                        }
                    }
                }
                glommio::yield_if_needed().await;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            shard.fail(inflight.drain(..), &e);
            shard.connection_failed();
            if !shard.finished() {
                glommio::timer::sleep(RECONNECT_DELAY).await;
            }
        }
    }
}

/// The due-time schedule of one open-loop connection; survives reconnects, so requests
/// due while disconnected are sent late and their latency shows it.
struct Schedule {
    rng: ChaCha8Rng,
    rate_per_s: f64,
    arrival: Arrival,
    due: Instant,
}

impl Schedule {
    fn advance(&mut self) {
        let gap_s = match self.arrival {
            Arrival::Uniform => 1.0 / self.rate_per_s,
            Arrival::Poisson => {
                let u: f64 = self.rng.random();
                -(1.0 - u).ln() / self.rate_per_s
            }
        };
        self.due += Duration::from_secs_f64(gap_s);
    }
}

/// Open loop: a writer sends requests as they fall due (all due ones in one write); a
/// reader matches replies in order. Latency counts from the due time.
async fn open_conn(shard: Rc<Shard>, g: usize) {
    let plan = shard.plan.clone();
    let rate = plan.w.load.rate_per_s.unwrap_or(1.0) / plan.w.connections as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(plan.w.seed ^ ((g as u64 + 1) << 20));
    let phase: f64 = rng.random::<f64>() / rate;
    let sched = Rc::new(RefCell::new(Schedule {
        rng,
        rate_per_s: rate,
        arrival: plan.w.load.arrival,
        due: plan.start + Duration::from_secs_f64(phase),
    }));
    let generator = Rc::new(RefCell::new(RequestGen::new(
        &plan.w,
        g,
        key_chooser(&plan),
        plan.value.clone(),
    )));
    loop {
        if sched.borrow().due >= plan.end || Instant::now() >= plan.end + OPEN_LOOP_GRACE {
            break;
        }
        let s = match connect(target_of(&plan, g)).await {
            Ok(s) => s,
            Err(_) => {
                shard.connection_failed();
                glommio::timer::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if s.set_read_timeout(Some(READ_POLL)).is_err() {
            shard.connection_failed();
            continue;
        }
        let (mut rd, mut wr) = futures_lite::io::split(s);
        let inflight: Rc<RefCell<VecDeque<InFlight>>> = Rc::default();
        let followups: Rc<RefCell<VecDeque<(u64, Instant)>>> = Rc::default();
        let writer_done = Rc::new(Cell::new(false));
        let broken = Rc::new(Cell::new(false));
        let permits = Rc::new(glommio::sync::Semaphore::new(
            plan.w.load.outstanding_max as u64,
        ));
        let reader = {
            let (shard, inflight, followups, writer_done, broken, permits) = (
                shard.clone(),
                inflight.clone(),
                followups.clone(),
                writer_done.clone(),
                broken.clone(),
                permits.clone(),
            );
            glommio::spawn_local(async move {
                let timeout = Duration::from_millis(shard.plan.w.timeout_ms);
                let mut reader = ReplyReader::default();
                let result: Result<(), ConnError> = loop {
                    if broken.get() {
                        break Err(ConnError::Io(std::io::ErrorKind::BrokenPipe.into()));
                    }
                    if writer_done.get() && inflight.borrow().is_empty() {
                        break Ok(());
                    }
                    let at = reader.filled_at();
                    match reader.next_buffered() {
                        Err(e) => break Err(e),
                        Ok(Some(r)) => {
                            let Some(f) = inflight.borrow_mut().pop_front() else {
                                break Err(ConnError::Protocol(
                                    crate::wire::resp::RespError::BadLineEnd,
                                ));
                            };
                            match (r, f.rmw_key) {
                                (Reply::Ok, Some(k)) => {
                                    followups.borrow_mut().push_back((k, f.start))
                                }
                                _ => {
                                    permits.signal(1);
                                    shard.complete(f, r, at);
                                }
                            }
                        }
                        Ok(None) => match reader.fill(&mut rd).await {
                            Ok(()) => {}
                            Err(ConnError::Timeout) => {
                                let oldest = inflight.borrow().front().map(|f| f.start);
                                if let Some(t) = oldest
                                    && Instant::now().saturating_duration_since(t) > timeout
                                {
                                    break Err(ConnError::Timeout);
                                }
                            }
                            Err(e) => break Err(e),
                        },
                    }
                };
                if let Err(e) = result {
                    shard.fail(inflight.borrow_mut().drain(..), &e);
                    broken.set(true);
                    permits.close();
                }
            })
        };
        let mut wbuf = Vec::with_capacity(64 * 1024);
        let pipeline = plan.w.pipeline;
        loop {
            if broken.get() {
                break;
            }
            let now = Instant::now();
            let due = sched.borrow().due;
            if due >= plan.end {
                break;
            }
            if now >= plan.end + OPEN_LOOP_GRACE {
                break;
            }
            if due > now {
                glommio::timer::sleep(due - now).await;
            }
            wbuf.clear();
            let mut n = 0;
            while let Some((k, start)) = followups.borrow_mut().pop_front() {
                generator.borrow_mut().encode_set(&mut wbuf, k);
                inflight.borrow_mut().push_back(InFlight {
                    op: Op::Rmw,
                    rmw_key: None,
                    start,
                });
                n += 1;
            }
            let mut sends = 0;
            loop {
                let now = Instant::now();
                let due = sched.borrow().due;
                if due > now || due >= plan.end || sends >= pipeline {
                    break;
                }
                if !permits.try_acquire(1).unwrap_or(false) {
                    if n > 0 {
                        break;
                    }
                    if permits.acquire(1).await.is_err() {
                        break;
                    }
                }
                let sent_at = Instant::now();
                {
                    let mut o = shard.open.borrow_mut();
                    o.lag_max = o.lag_max.max(sent_at.saturating_duration_since(due));
                    o.intended += 1;
                    if sent_at <= plan.end {
                        o.on_time += 1;
                    }
                }
                inflight
                    .borrow_mut()
                    .push_back(generator.borrow_mut().next(&mut wbuf, due));
                sched.borrow_mut().advance();
                n += 1;
                sends += 1;
            }
            if n > 0 && wr.write_all(&wbuf).await.is_err() {
                broken.set(true);
                break;
            }
        }
        writer_done.set(true);
        reader.await;
        if !broken.get() {
            break;
        }
        shard.connection_failed();
        glommio::timer::sleep(RECONNECT_DELAY).await;
    }
    // Requests that fell due before the end but were never sent.
    let mut s = sched.borrow_mut();
    let mut missed = 0;
    while s.due < plan.end {
        missed += 1;
        s.advance();
    }
    let mut o = shard.open.borrow_mut();
    o.missed += missed;
    o.intended += missed;
}

/// SETs every record once, spreading records over the workload's connections.
fn preload(cfg: &RunConfig, cores: usize) -> Result<(u64, f64), DriverError> {
    let w = cfg.workload.clone();
    let targets = cfg.targets.clone();
    let t0 = Instant::now();
    let value = value_bytes(&w);
    let next_shard = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles = LocalExecutorPoolBuilder::new(placement(cfg.pinned, cores))
        .name("preload")
        .on_all_shards(move || {
            let (w, targets, value) = (w.clone(), targets.clone(), value.clone());
            let me = next_shard.fetch_add(1, Ordering::Relaxed);
            async move {
                let conns = w.connections;
                let mut tasks = Vec::new();
                for g in (me..conns).step_by(cores) {
                    let (w, value) = (w.clone(), value.clone());
                    let addr = targets[g % targets.len()];
                    tasks.push(glommio::spawn_local(async move {
                        preload_conn(&w, addr, g, conns, value).await
                    }));
                }
                let mut out = Ok(0u64);
                for t in tasks {
                    match (t.await, &mut out) {
                        (Ok(n), Ok(total)) => *total += n,
                        (Err(e), Ok(_)) => out = Err(e),
                        _ => {}
                    }
                }
                out
            }
        })
        .map_err(|e| DriverError::Pool(e.to_string()))?;
    let mut records = 0;
    for r in handles.join_all() {
        records += r
            .map_err(|e| DriverError::Pool(e.to_string()))?
            .map_err(DriverError::Preload)?;
    }
    Ok((records, t0.elapsed().as_secs_f64()))
}

async fn preload_conn(
    w: &Workload,
    addr: SocketAddr,
    g: usize,
    conns: usize,
    value: Arc<Vec<u8>>,
) -> Result<u64, String> {
    let keys = KeyChooser::new(w, Arc::new(AtomicU64::new(w.record_count)));
    let mut generator = RequestGen::new(w, g, keys, value);
    let mut s = connect(addr).await.map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_millis(w.timeout_ms)))
        .map_err(|e| e.to_string())?;
    let mut reader = ReplyReader::default();
    let mut wbuf = Vec::with_capacity(64 * 1024);
    let mut k = g as u64;
    while k < w.record_count {
        wbuf.clear();
        let mut n = 0;
        while n < PRELOAD_PIPELINE && k < w.record_count {
            generator.encode_set(&mut wbuf, k);
            k += conns as u64;
            n += 1;
        }
        s.write_all(&wbuf)
            .await
            .map_err(|e| format!("{addr}: {e}"))?;
        while n > 0 {
            match reader.next_buffered().map_err(|e| format!("{addr}: {e}"))? {
                Some(Reply::Ok) => n -= 1,
                Some(Reply::Err(word)) => return Err(format!("{addr}: SET failed with {word}")),
                None => reader
                    .fill(&mut s)
                    .await
                    .map_err(|e| format!("{addr}: {e}"))?,
            }
        }
    }
    Ok(w.record_count
        .saturating_sub(g as u64)
        .div_ceil(conns as u64))
}
