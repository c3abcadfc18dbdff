//! The lock-service scenario (see the module above and docs/PRIMITIVES.md, "A lock with
//! fencing").

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{Conn, histogram, summary_ms};
use crate::wire::resp::Value;

/// `[scenario] kind = "lock"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockSettings {
    /// Locks contended for.
    #[serde(default = "three")]
    pub locks: usize,
    /// Client threads, each taking a random lock again and again.
    #[serde(default = "six")]
    pub clients: usize,
    /// The lock's lease (`PX`).
    #[serde(default = "lease")]
    pub lease_ms: u64,
    /// A holder renews every this many milliseconds.
    #[serde(default = "renew")]
    pub renew_ms: u64,
    /// A holder keeps a lock this long, then releases it with `DELIFEQ`.
    #[serde(default = "hold_default")]
    pub hold_ms: u64,
    /// A contender retries a refused `SET … NX` after this long.
    #[serde(default = "retry")]
    pub retry_ms: u64,
    /// Client 0 stops renewing (and never releases) the next lock it takes after this
    /// long: the others wait for its lease to run out.
    #[serde(default)]
    pub stop_holder_after_s: Option<f64>,
}

fn three() -> usize {
    3
}
fn six() -> usize {
    6
}
fn lease() -> u64 {
    1_000
}
fn renew() -> u64 {
    300
}
fn hold_default() -> u64 {
    100
}
fn retry() -> u64 {
    10
}

impl LockSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!((1..=1024).contains(&self.locks), "locks must be 1..=1024");
        anyhow::ensure!((1..=256).contains(&self.clients), "clients must be 1..=256");
        anyhow::ensure!(
            (10..=600_000).contains(&self.lease_ms),
            "lease_ms must be 10..=600000"
        );
        anyhow::ensure!(
            self.renew_ms >= 1 && self.renew_ms < self.lease_ms,
            "renew_ms must be at least 1 and below lease_ms"
        );
        anyhow::ensure!(self.hold_ms <= 600_000, "hold_ms must be at most 600000");
        anyhow::ensure!(
            (1..=10_000).contains(&self.retry_ms),
            "retry_ms must be 1..=10000"
        );
        Ok(())
    }
}

struct Shared {
    acquire: Mutex<Histogram<u64>>,
    acquires: AtomicU64,
    renewals: AtomicU64,
    lost: AtomicU64,
    errors: AtomicU64,
    /// The lock the stopped holder kept, and its last successful renewal (or acquire).
    stopped: Mutex<Option<(usize, Instant)>>,
    /// When another client took that lock after it.
    handed_over: Mutex<Option<Instant>>,
}

/// Runs the lock scenario for `duration`.
pub(super) fn run(
    s: &LockSettings,
    targets: &[SocketAddr],
    duration: Duration,
    seed: u64,
) -> anyhow::Result<serde_json::Value> {
    let shared = Arc::new(Shared {
        acquire: Mutex::new(histogram()),
        acquires: AtomicU64::new(0),
        renewals: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        stopped: Mutex::default(),
        handed_over: Mutex::default(),
    });
    let start = Instant::now();
    let end = start + duration;
    let stop_at = s
        .stop_holder_after_s
        .map(|t| start + Duration::from_secs_f64(t));
    let prefix = format!("lock:{}:", std::process::id());
    let threads: Vec<_> = (0..s.clients)
        .map(|i| {
            let (sh, addr, s, prefix) = (
                shared.clone(),
                targets[i % targets.len()],
                s.clone(),
                prefix.clone(),
            );
            let stop = if i == 0 { stop_at } else { None };
            std::thread::spawn(move || contend(&sh, addr, &s, &prefix, i, stop, end, seed))
        })
        .collect();
    for t in threads {
        if let Err(e) = t.join().expect("a client thread panicked") {
            eprintln!("lock client: {e:#}");
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    let handover = match (
        *shared.stopped.lock().expect("poisoned"),
        *shared.handed_over.lock().expect("poisoned"),
    ) {
        (Some((_, last)), Some(next)) => {
            Some(next.saturating_duration_since(last).as_secs_f64() * 1000.0)
        }
        _ => None,
    };
    Ok(serde_json::json!({
        "scenario": "lock",
        "settings": s,
        "duration_s": duration.as_secs_f64(),
        "acquires": shared.acquires.load(Ordering::Relaxed),
        "renewals": shared.renewals.load(Ordering::Relaxed),
        "renewals_refused": shared.lost.load(Ordering::Relaxed),
        "client_errors": shared.errors.load(Ordering::Relaxed),
        "acquire_latency": summary_ms(&shared.acquire.lock().expect("poisoned")),
        "hand_over_after_holder_stopped_ms": handover,
    }))
}

/// One client: take a random lock (retrying while it is held), hold it while renewing,
/// release it; until `end`.
#[allow(clippy::too_many_arguments)]
fn contend(
    sh: &Shared,
    addr: SocketAddr,
    s: &LockSettings,
    prefix: &str,
    me: usize,
    stop: Option<Instant>,
    end: Instant,
    seed: u64,
) -> anyhow::Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (me as u64 + 1));
    let mut c = Conn::connect(addr, Duration::from_secs(10))?;
    let px = s.lease_ms.to_string();
    let mut n = 0u64;
    while Instant::now() < end {
        let lock = rng.random_range(0..s.locks);
        let key = format!("{prefix}{lock}");
        n += 1;
        let token = format!("client-{me}:{n}");
        let asked = Instant::now();
        loop {
            if Instant::now() >= end {
                return Ok(());
            }
            match c.cmd(&["SET", &key, &token, "NX", "PX", &px])? {
                Value::Simple(ok) if ok == "OK" => break,
                Value::Bulk(None) => std::thread::sleep(Duration::from_millis(s.retry_ms)),
                other => anyhow::bail!("SET NX answered {other:?}"),
            }
        }
        let got = Instant::now();
        let us = asked.elapsed().as_micros() as u64;
        sh.acquire.lock().expect("poisoned").record(us.max(1))?;
        sh.acquires.fetch_add(1, Ordering::Relaxed);
        {
            let stopped = *sh.stopped.lock().expect("poisoned");
            let mut h = sh.handed_over.lock().expect("poisoned");
            if let Some((l, _)) = stopped
                && l == lock
                && h.is_none()
            {
                *h = Some(got);
            }
        }
        if stop.is_some_and(|t| got >= t) {
            // Stops here: no renewal, no release; its lease runs out.
            *sh.stopped.lock().expect("poisoned") = Some((lock, got));
            return Ok(());
        }
        hold(sh, &mut c, s, &key, &token)?;
    }
    Ok(())
}

/// Holds a lock for `hold_ms`, renewing every `renew_ms`, then releases it.
fn hold(sh: &Shared, c: &mut Conn, s: &LockSettings, key: &str, token: &str) -> anyhow::Result<()> {
    let px = s.lease_ms.to_string();
    let until = Instant::now() + Duration::from_millis(s.hold_ms);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(s.renew_ms)));
        if Instant::now() >= until {
            break;
        }
        match c.cmd(&["SET", key, token, "IFEQ", token, "PX", &px])? {
            Value::Simple(_) => {
                sh.renewals.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                sh.lost.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
    }
    c.cmd(&["DELIFEQ", key, token])?;
    Ok(())
}
