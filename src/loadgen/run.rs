//! One measured run: the server's counters before and after, the driver's run between
//! them, and the result built from both. Used by `bench` and by each point of a sweep.
use super::driver::{self, Progress, RunConfig, RunOutput};
use super::report::{BenchResult, TargetDescription};
use super::workload::Workload;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Runs one workload against addresses and builds its result.
pub fn run_against(
    w: &Workload,
    addrs: Vec<SocketAddr>,
    target: TargetDescription,
    info: BTreeMap<String, serde_json::Value>,
    cores: Option<usize>,
    progress: Progress,
    pinned: bool,
) -> anyhow::Result<(BenchResult, RunOutput)> {
    let cores =
        cores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cfg = RunConfig {
        workload: w.clone(),
        targets: addrs,
        cores,
        progress,
        pinned,
    };
    let mut info = info;
    // A corepax server names its protocol: every result says which one it measured.
    if let Some(p) = cfg.targets.first().and_then(|a| super::info::protocol(*a)) {
        info.entry("protocol".into())
            .or_insert(serde_json::Value::String(p));
    }
    let before = super::info::counters(&cfg.targets);
    let out = driver::run(&cfg)?;
    let after = super::info::counters(&cfg.targets);
    let reads = super::info::delta(&before.reads, &after.reads);
    if !reads.is_empty() {
        // What the server's read path did during the run (leases, digests, repairs).
        info.insert("read_counters".into(), serde_json::to_value(reads)?);
    }
    let shards = super::info::delta(&before.shards, &after.shards);
    if !shards.is_empty() {
        // What the protocol did meanwhile: a leader change or a snapshot in the run
        // explains a latency spike.
        let changes = shards.get("became_leader").copied().unwrap_or(0);
        if changes > 0 {
            eprintln!("note: {changes} leader change(s) during the run");
        }
        info.insert("shard_counters".into(), serde_json::to_value(shards)?);
    }
    if let Some(first) = cfg.targets.first() {
        // Where the leaders were at the end: the distance to them explains the latency
        // on an emulated network.
        let leaders = super::info::leaders(*first);
        if !leaders.is_empty() {
            info.insert("leaders".into(), serde_json::to_value(leaders)?);
        }
    }
    let res = BenchResult::new(&out, w, target, info, cores.min(w.connections));
    Ok((res, out))
}
