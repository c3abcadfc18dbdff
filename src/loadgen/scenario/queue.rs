//! The work-queue scenario (see the module above and docs/PRIMITIVES.md, "A work queue
//! with leased tasks").

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{Conn, histogram, same_shard_name, summary_ms, text};
use crate::wire::resp::Value;

/// `[scenario] kind = "queue"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    /// Producer threads.
    #[serde(default = "one")]
    pub producers: usize,
    /// Worker threads.
    #[serde(default = "four")]
    pub workers: usize,
    /// Tasks pushed per second, all producers together.
    #[serde(default = "hundred")]
    pub tasks_per_s: f64,
    /// How long a worker works on a task, in milliseconds.
    #[serde(default = "ten")]
    pub work_ms: u64,
    /// A worker's lease (`SET lease:w alive PX lease_ms`), renewed around every task.
    #[serde(default = "lease")]
    pub lease_ms: u64,
    /// Worker 0 stops (keeps its task, no more renewals) this far into the run.
    #[serde(default)]
    pub stop_worker_after_s: Option<f64>,
}

fn one() -> usize {
    1
}
fn four() -> usize {
    4
}
fn hundred() -> f64 {
    100.0
}
fn ten() -> u64 {
    10
}
fn lease() -> u64 {
    2_000
}

impl QueueSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=64).contains(&self.producers),
            "producers must be 1..=64"
        );
        anyhow::ensure!((1..=256).contains(&self.workers), "workers must be 1..=256");
        anyhow::ensure!(
            self.tasks_per_s > 0.0 && self.tasks_per_s <= 100_000.0,
            "tasks_per_s must be within (0, 100000]"
        );
        anyhow::ensure!(self.work_ms <= 60_000, "work_ms must be at most 60000");
        anyhow::ensure!(
            (100..=600_000).contains(&self.lease_ms),
            "lease_ms must be 100..=600000"
        );
        Ok(())
    }
}

/// What the clients share.
struct Shared {
    tasks: String,
    pushed_at: Mutex<HashMap<u64, Instant>>,
    done: Mutex<Vec<u64>>,
    wait: Mutex<Histogram<u64>>,
    enqueue: Mutex<Histogram<u64>>,
    produced: AtomicU64,
    errors: AtomicU64,
    producing: AtomicBool,
    finished: AtomicBool,
    /// When the stopped worker stopped, and when its task went back to the queue.
    stopped_at: Mutex<Option<Instant>>,
    released_at: Mutex<Option<Instant>>,
    re_leased: AtomicU64,
}

fn lease_key(tasks: &str, w: usize) -> String {
    format!("{tasks}:lease:{w}")
}

fn processing_key(tasks: &str, w: usize) -> String {
    same_shard_name(tasks, &format!("{tasks}:processing:{w}:"))
}

/// Runs the queue scenario for `duration` of production, then until the queue drains.
pub(super) fn run(
    s: &QueueSettings,
    targets: &[SocketAddr],
    duration: Duration,
) -> anyhow::Result<serde_json::Value> {
    let tasks = format!("queue:{}:tasks", std::process::id());
    let shared = Arc::new(Shared {
        tasks: tasks.clone(),
        pushed_at: Mutex::default(),
        done: Mutex::default(),
        wait: Mutex::new(histogram()),
        enqueue: Mutex::new(histogram()),
        produced: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        producing: AtomicBool::new(true),
        finished: AtomicBool::new(false),
        stopped_at: Mutex::default(),
        released_at: Mutex::default(),
        re_leased: AtomicU64::new(0),
    });
    let start = Instant::now();
    let end = start + duration;
    let stop_at = s
        .stop_worker_after_s
        .map(|t| start + Duration::from_secs_f64(t));
    let drain_end = end + Duration::from_millis(5 * s.lease_ms) + Duration::from_secs(5);
    let mut producers = Vec::new();
    for p in 0..s.producers {
        let (sh, addr, s) = (shared.clone(), targets[p % targets.len()], s.clone());
        producers.push(std::thread::spawn(move || produce(&sh, addr, &s, p, end)));
    }
    let mut workers = Vec::new();
    for w in 0..s.workers {
        let (sh, addr, s) = (shared.clone(), targets[(w + 1) % targets.len()], s.clone());
        let stop = if w == 0 { stop_at } else { None };
        workers.push(std::thread::spawn(move || {
            work(&sh, addr, &s, w, stop, drain_end)
        }));
    }
    let reaper = {
        let (sh, addr, s) = (shared.clone(), targets[0], s.clone());
        std::thread::spawn(move || reap(&sh, addr, &s, drain_end))
    };
    let join = |threads: Vec<std::thread::JoinHandle<anyhow::Result<()>>>| {
        for t in threads {
            if let Err(e) = t.join().expect("a client thread panicked") {
                eprintln!("queue client: {e:#}");
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    join(producers);
    shared.producing.store(false, Ordering::Relaxed);
    join(workers);
    shared.finished.store(true, Ordering::Relaxed);
    reaper.join().expect("the reaper panicked")?;
    report(s, &shared, duration)
}

/// The result: counts (every produced task done exactly once?) and latencies.
fn report(s: &QueueSettings, sh: &Shared, duration: Duration) -> anyhow::Result<serde_json::Value> {
    let produced = sh.produced.load(Ordering::Relaxed);
    let done = sh.done.lock().expect("poisoned").clone();
    let unique: HashSet<u64> = done.iter().copied().collect();
    let lost = (1..=produced).filter(|t| !unique.contains(t)).count();
    let handover = match (
        *sh.stopped_at.lock().expect("poisoned"),
        *sh.released_at.lock().expect("poisoned"),
    ) {
        (Some(a), Some(b)) => Some(b.saturating_duration_since(a).as_secs_f64() * 1000.0),
        _ => None,
    };
    Ok(serde_json::json!({
        "scenario": "queue",
        "settings": s,
        "duration_s": duration.as_secs_f64(),
        "tasks_produced": produced,
        "tasks_done": done.len(),
        "tasks_done_twice": done.len() - unique.len(),
        "tasks_lost": lost,
        "tasks_re_leased": sh.re_leased.load(Ordering::Relaxed),
        "client_errors": sh.errors.load(Ordering::Relaxed),
        "enqueue_latency": summary_ms(&sh.enqueue.lock().expect("poisoned")),
        "task_wait": summary_ms(&sh.wait.lock().expect("poisoned")),
        "re_lease_after_worker_stopped_ms": handover,
    }))
}

fn produce(
    sh: &Shared,
    addr: SocketAddr,
    s: &QueueSettings,
    p: usize,
    end: Instant,
) -> anyhow::Result<()> {
    let mut c = Conn::connect(addr, Duration::from_secs(10))?;
    let interval = Duration::from_secs_f64(s.producers as f64 / s.tasks_per_s);
    // Producers start spread over one interval.
    let mut due = Instant::now() + interval.mul_f64(p as f64 / s.producers as f64);
    while due < end {
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let id = sh.produced.fetch_add(1, Ordering::Relaxed) + 1;
        let at = Instant::now();
        sh.pushed_at.lock().expect("poisoned").insert(id, at);
        match c.cmd(&["RPUSH", &sh.tasks, &id.to_string()])? {
            Value::Integer(_) => {
                let us = at.elapsed().as_micros() as u64;
                sh.enqueue.lock().expect("poisoned").record(us.max(1))?;
            }
            other => anyhow::bail!("RPUSH answered {other:?}"),
        }
        due += interval;
    }
    Ok(())
}

fn work(
    sh: &Shared,
    addr: SocketAddr,
    s: &QueueSettings,
    w: usize,
    stop: Option<Instant>,
    drain_end: Instant,
) -> anyhow::Result<()> {
    let mut c = Conn::connect(addr, Duration::from_secs(10))?;
    let (lease, proc) = (lease_key(&sh.tasks, w), processing_key(&sh.tasks, w));
    let px = s.lease_ms.to_string();
    while Instant::now() < drain_end {
        c.cmd(&["SET", &lease, "alive", "PX", &px])?;
        let got = c.cmd(&["BLMOVE", &sh.tasks, &proc, "LEFT", "RIGHT", "0.5"])?;
        let Some(task) = text(&got) else {
            // Done once nothing more comes: production over, the queue empty, and no
            // stopped worker's task still waiting to be given back.
            let stranded = sh.stopped_at.lock().expect("poisoned").is_some()
                && sh.released_at.lock().expect("poisoned").is_none();
            if !sh.producing.load(Ordering::Relaxed) && !stranded && queue_empty(&mut c, sh)? {
                return Ok(());
            }
            continue;
        };
        let id: u64 = task.parse()?;
        if let Some(at) = sh.pushed_at.lock().expect("poisoned").get(&id) {
            let us = at.elapsed().as_micros() as u64;
            sh.wait.lock().expect("poisoned").record(us.max(1))?;
        }
        if stop.is_some_and(|t| Instant::now() >= t) {
            // Dies holding the task: no LREM, no more renewals.
            *sh.stopped_at.lock().expect("poisoned") = Some(Instant::now());
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(s.work_ms));
        match c.cmd(&["LREM", &proc, "1", &task])? {
            Value::Integer(1) => sh.done.lock().expect("poisoned").push(id),
            // The reaper gave it back meanwhile: someone else does it.
            Value::Integer(_) => {}
            other => anyhow::bail!("LREM answered {other:?}"),
        }
    }
    Ok(())
}

fn queue_empty(c: &mut Conn, sh: &Shared) -> anyhow::Result<bool> {
    Ok(c.cmd(&["LLEN", &sh.tasks])? == Value::Integer(0))
}

/// Every 100 ms, gives the tasks of workers whose lease is gone back to the queue.
fn reap(
    sh: &Shared,
    addr: SocketAddr,
    s: &QueueSettings,
    drain_end: Instant,
) -> anyhow::Result<()> {
    let mut c = Conn::connect(addr, Duration::from_secs(10))?;
    while Instant::now() < drain_end && !sh.finished.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        for w in 0..s.workers {
            if c.cmd(&["EXISTS", &lease_key(&sh.tasks, w)])? != Value::Integer(0) {
                continue;
            }
            let proc = processing_key(&sh.tasks, w);
            while text(&c.cmd(&["LMOVE", &proc, &sh.tasks, "RIGHT", "LEFT"])?).is_some() {
                sh.re_leased.fetch_add(1, Ordering::Relaxed);
                // The hand-over measured is the stopped worker's (a live worker whose
                // lease ran out while it stalled is counted above, not timed).
                if w == 0 && sh.stopped_at.lock().expect("poisoned").is_some() {
                    sh.released_at
                        .lock()
                        .expect("poisoned")
                        .get_or_insert_with(Instant::now);
                }
            }
        }
    }
    Ok(())
}
