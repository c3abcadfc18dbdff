//! Synthetic results for the tests of the code that reads results back (compare, plots,
//! report page): a ten-second run written as JSON and interval log, its figures scaled.
use super::driver::{Interval, RunOutput};
use super::report::{BenchResult, TargetDescription};
use super::stats::OpStats;
use super::workload::{Op, Workload};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How a synthetic run differs from the reference one.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// Workload name.
    pub workload: String,
    /// Requests per second, as a multiple of 1,000.
    pub ops: f64,
    /// Latencies (and CPU per request), as a multiple of the reference (~1–10 ms).
    pub latency: f64,
    /// A sweep configuration to record (`target_info.sweep_config`).
    pub sweep: Option<serde_json::Value>,
    /// An open loop at this offered rate (requests/s); closed loop when None.
    pub rate_per_s: Option<f64>,
}

impl Default for Synthetic {
    fn default() -> Self {
        Synthetic {
            workload: "w".into(),
            ops: 1.0,
            latency: 1.0,
            sweep: None,
            rate_per_s: None,
        }
    }
}

/// Writes `dir/name` (JSON) and its interval log; returns the JSON's path. Per-second
/// counts move ±10% around the mean, so the interval log shows a spread.
pub fn write(dir: &Path, name: &str, s: &Synthetic) -> PathBuf {
    let mut w = Workload::default_workload();
    w.name = s.workload.clone();
    if let Some(rate) = s.rate_per_s {
        w.set_open_loop(rate);
    }
    let mut total = OpStats::default();
    let mut intervals = Vec::new();
    for i in 0..10u64 {
        let mut st = OpStats::default();
        let wobble = 1.0 + 0.1 * ((i % 3) as f64 - 1.0);
        let n = (1000.0 * s.ops * wobble).round() as u64;
        for k in 0..n {
            let us = s.latency * (1000.0 + ((k * 37) % 1000) as f64 * 9.0);
            let op = if k % 5 == 0 { Op::Set } else { Op::Get };
            st.record(op, (us * 1000.0) as u64);
        }
        total.merge(&st);
        intervals.push(Interval {
            start: Duration::from_secs(i),
            length: Duration::from_secs(1),
            stats: st,
            ops_all: n,
        });
    }
    let count = total.count() as f64;
    let out = RunOutput {
        stats: total,
        measured_s: 10.0,
        intervals: intervals.clone(),
        started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
        open_loop: None,
        preload: None,
        server_cpu_s: vec![(
            "127.0.0.1:1".parse().expect("address"),
            count * 10e-6 * s.latency,
        )],
        machine: None,
    };
    let target = TargetDescription {
        kind: "corepax-cluster".into(),
        description: "synthetic".into(),
        addrs: vec!["127.0.0.1:1".into()],
    };
    let mut info = std::collections::BTreeMap::new();
    if let Some(c) = &s.sweep {
        info.insert("sweep_config".into(), c.clone());
    }
    let mut r = BenchResult::new(&out, &w, target, info, 1);
    let path = dir.join(name);
    r.write(&path, &intervals).expect("write synthetic result");
    path
}
