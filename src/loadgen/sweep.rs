//! Sweeps: the cross product of settings, each run on a fresh server, compared in one
//! markdown table and two SVG plots.
use super::driver::Progress;
use super::launch::{CorepaxCluster, Launcher, Persistence, RedisServer};
use super::report::{BenchResult, fmt_us, rfc3339};
use super::run::run_against;
use super::workload::Workload;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Most configurations one sweep may run.
pub const CONFIGS_MAX: usize = 256;

/// Which server each configuration starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LauncherKind {
    /// A local corepax cluster (settings become its flags).
    Corepax,
    /// redis-server (only `redis_persistence` applies; node settings are recorded only).
    Redis,
}

/// A sweep matrix file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// `corepax` or `redis`.
    pub launcher: LauncherKind,
    /// Workload files (relative to the current directory).
    pub workloads: Vec<PathBuf>,
    /// Measured seconds per run, overriding each workload's.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Warm-up seconds per run, overriding each workload's.
    #[serde(default)]
    pub warmup_s: Option<f64>,
    /// `--batch-max` values.
    #[serde(default)]
    pub batch_max: Vec<u32>,
    /// `--pipeline-depth` values.
    #[serde(default)]
    pub pipeline_depth: Vec<u32>,
    /// `--read-mode` values (log, leader-lease, quorum-lease, digest).
    #[serde(default)]
    pub read_mode: Vec<String>,
    /// Replica counts.
    #[serde(default)]
    pub replicas: Vec<u16>,
    /// `--shards` values.
    #[serde(default)]
    pub shards: Vec<u32>,
    /// Redis persistence modes (redis launcher only).
    #[serde(default)]
    pub redis_persistence: Vec<Persistence>,
}

/// One point of the matrix: `None` = setting not passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Workload file.
    pub workload: PathBuf,
    /// --batch-max.
    pub batch_max: Option<u32>,
    /// --pipeline-depth.
    pub pipeline_depth: Option<u32>,
    /// --read-mode.
    pub read_mode: Option<String>,
    /// Replicas.
    pub replicas: Option<u16>,
    /// --shards.
    pub shards: Option<u32>,
    /// Redis persistence.
    pub redis_persistence: Option<Persistence>,
}

impl Config {
    /// Flags for `corepax cluster`.
    pub fn node_flags(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                f.push(k.to_string());
                f.push(v);
            }
        };
        push("--batch-max", self.batch_max.map(|v| v.to_string()));
        push(
            "--pipeline-depth",
            self.pipeline_depth.map(|v| v.to_string()),
        );
        push("--read-mode", self.read_mode.clone());
        push("--shards", self.shards.map(|v| v.to_string()));
        f
    }

    /// A short label: the settings that were set.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        let stem = self
            .workload
            .file_stem()
            .map_or("?".into(), |s| s.to_string_lossy().to_string());
        parts.push(stem);
        if let Some(v) = self.batch_max {
            parts.push(format!("batch={v}"));
        }
        if let Some(v) = self.pipeline_depth {
            parts.push(format!("pipe={v}"));
        }
        if let Some(v) = &self.read_mode {
            parts.push(format!("read={v}"));
        }
        if let Some(v) = self.replicas {
            parts.push(format!("R={v}"));
        }
        if let Some(v) = self.shards {
            parts.push(format!("shards={v}"));
        }
        if let Some(v) = self.redis_persistence {
            parts.push(format!("redis-fsync={v:?}").to_lowercase());
        }
        parts.join(" ")
    }
}

fn opts<T: Clone>(v: &[T]) -> Vec<Option<T>> {
    if v.is_empty() {
        vec![None]
    } else {
        v.iter().cloned().map(Some).collect()
    }
}

impl Matrix {
    /// Reads and checks a matrix file.
    pub fn from_file(p: &Path) -> anyhow::Result<Matrix> {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        let m: Matrix = toml::from_str(&text).with_context(|| format!("matrix {}", p.display()))?;
        if m.workloads.is_empty() {
            anyhow::bail!("matrix field `workloads`: must name at least one workload file");
        }
        let n = m.configs().len();
        if n > CONFIGS_MAX {
            anyhow::bail!("matrix has {n} configurations; at most {CONFIGS_MAX}");
        }
        Ok(m)
    }

    /// The cross product, in a stable order.
    pub fn configs(&self) -> Vec<Config> {
        let mut out = Vec::new();
        for w in &self.workloads {
            for b in opts(&self.batch_max) {
                for p in opts(&self.pipeline_depth) {
                    for r in opts(&self.read_mode) {
                        for n in opts(&self.replicas) {
                            for s in opts(&self.shards) {
                                for rp in opts(&self.redis_persistence) {
                                    out.push(Config {
                                        workload: w.clone(),
                                        batch_max: b,
                                        pipeline_depth: p,
                                        read_mode: r.clone(),
                                        replicas: n,
                                        shards: s,
                                        redis_persistence: rp,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// One finished configuration.
#[derive(Debug, Clone)]
pub struct SweepRow {
    /// The settings.
    pub config: Config,
    /// Its result (None if the server failed to start or the run failed).
    pub result: Option<BenchResult>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Runs every configuration; writes results, summary.md and plots into the output
/// directory, which it returns.
pub fn run(
    m: &Matrix,
    out: Option<PathBuf>,
    cores: Option<usize>,
    progress: Progress,
) -> anyhow::Result<PathBuf> {
    let stamp = rfc3339(std::time::SystemTime::now())
        .replace([':', '-'], "")
        .replace('T', "-");
    let dir = out.unwrap_or_else(|| {
        PathBuf::from("results").join(format!("sweep-{}", stamp.trim_end_matches('Z')))
    });
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe()?;
    let configs = m.configs();
    let mut rows = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        eprintln!("[{}/{}] {}", i + 1, configs.len(), c.label());
        let r = run_one(m, c, &exe, cores, progress, &dir, i);
        match r {
            Ok(res) => {
                println!("{}", res.table());
                rows.push(SweepRow {
                    config: c.clone(),
                    result: Some(res),
                    error: None,
                });
            }
            Err(e) => {
                eprintln!("  failed: {e:#}");
                rows.push(SweepRow {
                    config: c.clone(),
                    result: None,
                    error: Some(format!("{e:#}")),
                });
            }
        }
    }
    let md = summary_markdown(m, &rows);
    std::fs::write(dir.join("summary.md"), &md)?;
    let plotted: Vec<_> = rows
        .iter()
        .map(|r| (r.config.label(), r.result.as_ref()))
        .collect();
    super::plot::throughput_vs_p99(&dir.join("throughput-vs-p99.svg"), &plotted)?;
    super::plot::latency_curves(&dir.join("latency-percentiles.svg"), &plotted)?;
    println!("{md}");
    println!("sweep written to {}", dir.display());
    Ok(dir)
}

fn run_one(
    m: &Matrix,
    c: &Config,
    exe: &Path,
    cores: Option<usize>,
    progress: Progress,
    dir: &Path,
    i: usize,
) -> anyhow::Result<BenchResult> {
    let mut w = Workload::from_file(&c.workload)?;
    if let Some(d) = m.duration_s {
        w.duration_s = Some(d);
        w.operation_count = None;
    }
    if let Some(d) = m.warmup_s {
        w.warmup_s = d;
    }
    w.validate()?;
    let mut l: Box<dyn Launcher> = match m.launcher {
        LauncherKind::Corepax => Box::new(CorepaxCluster::new(
            exe.to_path_buf(),
            c.replicas.unwrap_or(3),
            c.node_flags(),
        )),
        LauncherKind::Redis => Box::new(RedisServer::new(
            c.redis_persistence.unwrap_or(Persistence::None),
        )),
    };
    let addrs = l.launch()?;
    let mut info = l.target_info();
    info.insert("sweep_config".into(), serde_json::to_value(c)?);
    // Unpinned: every server of a sweep runs on this machine (see `BenchArgs::pinned`).
    let (mut res, out) = run_against(&w, addrs, l.describe(), info, cores, progress, false)?;
    l.stop();
    res.write(&dir.join(format!("run-{i:03}.json")), &out.intervals)?;
    Ok(res)
}

/// The comparison table.
pub fn summary_markdown(m: &Matrix, rows: &[SweepRow]) -> String {
    let mut s = format!(
        "# corepax sweep\n\nlauncher: {:?}, git {}, {}\n\n| # | configuration | ops/s | p50 | p99 | p99.9 | max | get p99 | set p99 | local reads | read bytes/read | errors |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        m.launcher,
        super::report::git_commit().unwrap_or_else(|| "unknown".into()),
        rfc3339(std::time::SystemTime::now())
    );
    for (i, r) in rows.iter().enumerate() {
        match &r.result {
            Some(res) => {
                let t = &res.total;
                let op_p99 = |op: &str| res.ops.get(op).map_or("-".into(), |p| fmt_us(p.p99_us));
                let (local, bytes) = read_path(res);
                s += &format!(
                    "| {i} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {local} | {bytes} | {} |\n",
                    r.config.label(),
                    t.throughput_per_s,
                    fmt_us(t.p50_us),
                    fmt_us(t.p99_us),
                    fmt_us(t.p999_us),
                    fmt_us(t.max_us),
                    op_p99("get"),
                    op_p99("set"),
                    t.errors
                );
            }
            None => {
                s += &format!(
                    "| {i} | {} | failed: {} | | | | | | | | | |\n",
                    r.config.label(),
                    r.error
                        .as_deref()
                        .unwrap_or("?")
                        .replace('|', "/")
                        .replace('\n', " ")
                );
            }
        }
    }
    s
}

/// From the server's read counters (corepax only): the share of reads a replica answered
/// from its own state (leases) and the peer bytes spent per read; "-" when unknown.
fn read_path(res: &BenchResult) -> (String, String) {
    let Some(c) = res.target_info.get("read_counters") else {
        return ("-".into(), "-".into());
    };
    let n = |k: &str| c.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    // Every read ends on one of these paths; `redirected` only counts the hop to the leader.
    let reads = n("local") + n("quorum") + n("log");
    if reads == 0 {
        return ("-".into(), "-".into());
    }
    let local = format!("{:.0}%", 100.0 * n("local") as f64 / reads as f64);
    let bytes = format!("{:.0}", n("read_bytes_sent") as f64 / reads as f64);
    (local, bytes)
}
