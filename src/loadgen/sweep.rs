//! Sweeps: the cross product of settings, each run on a fresh server, compared in one
//! markdown table and two SVG plots.
use super::driver::Progress;
use super::launch::{CorepaxCluster, Launcher, Persistence, RedisServer};
use super::report::{BenchResult, fmt_us, rfc3339};
use super::run::run_against;
use super::workload::Workload;
use crate::config::{ProtocolConfig, SETTINGS, Setting};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Most configurations one sweep may run.
pub const CONFIGS_MAX: usize = 256;

/// The p99 objective (ms) of a rate sweep when the matrix names none.
pub const P99_OBJECTIVE_MS_DEFAULT: f64 = 1.0;

/// Replicas of a corepax cluster when the matrix names no replica counts.
const CLUSTER_REPLICAS_DEFAULT: u16 = 3;

/// Which server each configuration starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LauncherKind {
    /// A local corepax cluster (settings become its flags).
    Corepax,
    /// redis-server (only `redis_persistence` applies; node settings are recorded only).
    Redis,
}

/// A sweep matrix file. Besides the fields below, any protocol setting (a key of
/// `ProtocolConfig`, such as `batch_max`, `pipeline_depth` or `read_mode`: log,
/// leader-lease, quorum-lease, digest, quorum) may be given a list of values to sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Replica counts (`corepax cluster --replicas`).
    #[serde(default)]
    pub replicas: Vec<u16>,
    /// `--shards` values.
    #[serde(default)]
    pub shards: Vec<u32>,
    /// Redis persistence modes (redis launcher only).
    #[serde(default)]
    pub redis_persistence: Vec<Persistence>,
    /// Offered loads, requests per second: each runs the workload open loop at that rate
    /// (coordinated-omission corrected), so the sweep draws latency against load.
    #[serde(default)]
    pub rate_per_s: Vec<f64>,
    /// The latency objective a configuration's highest sustainable rate is judged by:
    /// p99 at most this many milliseconds (default [`P99_OBJECTIVE_MS_DEFAULT`]).
    #[serde(default)]
    pub p99_objective_ms: Option<f64>,
    /// Emulated network profiles (`corepax cluster --net`: lan, metro, wan3 or a file).
    #[serde(default)]
    pub net: Vec<String>,
    /// Under `net`: the replicas the load generator sits beside (and connects to).
    #[serde(default)]
    pub client_near: Vec<u16>,
    /// Under `net`: the replica the leader is moved to before each run.
    #[serde(default)]
    pub leader_at: Vec<u16>,
    /// Protocol settings to sweep, by name, each with its values as written; checked by
    /// [`Matrix::protocol_axes`].
    #[serde(flatten)]
    pub protocol: BTreeMap<String, toml::Value>,
}

/// One point of the matrix: `None` (or an absent setting) = not passed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Workload file.
    pub workload: PathBuf,
    /// The nodes' protocol settings: the swept ones set, the rest at their defaults
    /// (`replicas` as the launcher runs it).
    pub protocol: ProtocolConfig,
    /// The names of the protocol settings swept, in the order of [`SETTINGS`].
    pub swept: Vec<String>,
    /// Replicas.
    pub replicas: Option<u16>,
    /// --shards.
    pub shards: Option<u32>,
    /// Redis persistence.
    pub redis_persistence: Option<Persistence>,
    /// Open-loop offered load (requests/s), when the matrix sweeps rates.
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Emulated network profile.
    #[serde(default)]
    pub net: Option<String>,
    /// The replica the load generator sits beside under `net`.
    #[serde(default)]
    pub client_near: Option<u16>,
    /// The replica leading under `net`.
    #[serde(default)]
    pub leader_at: Option<u16>,
}

impl Config {
    /// Flags for `corepax cluster`.
    pub fn node_flags(&self) -> Vec<String> {
        let mut f = Vec::new();
        for (s, v) in self.swept_values() {
            f.push(format!("--{}", s.flag()));
            f.push(v);
        }
        if let Some(v) = self.shards {
            f.push("--shards".into());
            f.push(v.to_string());
        }
        f
    }

    /// The swept protocol settings with their values here, in flag form.
    fn swept_values(&self) -> impl Iterator<Item = (&'static Setting, String)> + '_ {
        self.swept
            .iter()
            .filter_map(|name| Setting::named(name))
            .map(|s| (s, (s.get)(&self.protocol)))
    }

    /// A short label: the settings that were set.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        let stem = self
            .workload
            .file_stem()
            .map_or("?".into(), |s| s.to_string_lossy().to_string());
        parts.push(stem);
        for (s, v) in self.swept_values() {
            parts.push(format!("{}={v}", s.name));
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
        if let Some(v) = &self.net {
            parts.push(format!("net={v}"));
        }
        if let Some(v) = self.client_near {
            parts.push(format!("client-near={v}"));
        }
        if let Some(v) = self.leader_at {
            parts.push(format!("leader-at={v}"));
        }
        if let Some(v) = self.rate_per_s {
            parts.push(format!("rate={}/s", super::plot::axis::fmt_count(v)));
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

/// Every combination of one index per axis (`lens` are the axes' lengths), the last axis
/// changing fastest.
fn cartesian(lens: &[usize]) -> Vec<Vec<usize>> {
    lens.iter().fold(vec![Vec::new()], |acc, &len| {
        acc.iter()
            .flat_map(|prefix| {
                (0..len).map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i);
                    p
                })
            })
            .collect()
    })
}

/// A matrix value in the text form of its flag: strings as they are, numbers in decimal,
/// lists (replica ids) comma-separated.
fn flag_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(flag_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
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
        m.protocol_axes()
            .with_context(|| format!("matrix {}", p.display()))?;
        for spec in &m.net {
            crate::net::Profile::load(spec)
                .map_err(|e| anyhow::anyhow!("matrix {} field `net`: {e}", p.display()))?;
        }
        if (!m.client_near.is_empty() || !m.leader_at.is_empty()) && m.net.is_empty() {
            anyhow::bail!("matrix fields `client_near` and `leader_at` need `net`");
        }
        if let Some(r) = m.rate_per_s.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            anyhow::bail!("matrix {}: field `rate_per_s`: {r} is not > 0", p.display());
        }
        if let Some(o) = m.p99_objective_ms.filter(|o| !(o.is_finite() && *o > 0.0)) {
            anyhow::bail!(
                "matrix {}: field `p99_objective_ms`: {o} is not > 0",
                p.display()
            );
        }
        let n = m.configs().len();
        if n > CONFIGS_MAX {
            anyhow::bail!("matrix has {n} configurations; at most {CONFIGS_MAX}");
        }
        Ok(m)
    }

    /// The protocol settings swept, in the order of [`SETTINGS`], each with its values as
    /// the setting reads and writes them; an error names an unknown key or a value its
    /// setting refuses.
    pub fn protocol_axes(&self) -> anyhow::Result<Vec<(&'static Setting, Vec<String>)>> {
        if let Some(unknown) = self
            .protocol
            .keys()
            .find(|k| Setting::named(k).is_none_or(|s| !s.is_flag()))
        {
            let known: Vec<&str> = SETTINGS
                .iter()
                .filter(|s| s.is_flag())
                .map(|s| s.name)
                .collect();
            anyhow::bail!(
                "unknown matrix field `{unknown}`: allowed launcher, workloads, duration_s, \
                 warmup_s, replicas, shards, redis_persistence, net, client_near, leader_at, \
                 rate_per_s, p99_objective_ms, or a protocol setting ({})",
                known.join(", ")
            );
        }
        let mut axes = Vec::new();
        for s in SETTINGS {
            let Some(v) = self.protocol.get(s.name) else {
                continue;
            };
            let toml::Value::Array(items) = v else {
                anyhow::bail!("matrix field `{}`: a list of values, got {v}", s.name);
            };
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                let mut cfg = ProtocolConfig::default();
                (s.set)(&mut cfg, &flag_text(item))?;
                values.push((s.get)(&cfg));
            }
            if !values.is_empty() {
                axes.push((s, values));
            }
        }
        Ok(axes)
    }

    /// The cross product, in a stable order: workloads, then the protocol settings in the
    /// order of [`SETTINGS`], then replicas, shards, redis persistence, the network and
    /// where the client and the leader sit in it, then rate (so a configuration's rates
    /// run one after another). A protocol crossed with a read mode it does not serve
    /// (Raft with leases, Multi-Paxos with read-index) is left out, so one matrix can give
    /// each protocol its own modes.
    pub fn configs(&self) -> Vec<Config> {
        // `from_file` checked the axes; a matrix built in code with bad ones sweeps none.
        let axes = self.protocol_axes().unwrap_or_default();
        let (replicas, shards, persistence, rates) = (
            opts(&self.replicas),
            opts(&self.shards),
            opts(&self.redis_persistence),
            opts(&self.rate_per_s),
        );
        let (net, near, leader) = (
            opts(&self.net),
            opts(&self.client_near),
            opts(&self.leader_at),
        );
        let mut lens = vec![self.workloads.len()];
        lens.extend(axes.iter().map(|(_, v)| v.len()));
        lens.extend([
            replicas.len(),
            shards.len(),
            persistence.len(),
            net.len(),
            near.len(),
            leader.len(),
            rates.len(),
        ]);
        cartesian(&lens)
            .into_iter()
            .map(|ix| {
                let (w, rest) = ix.split_first().expect("one index per axis");
                let (p, launch) = rest.split_at(axes.len());
                let replicas = replicas[launch[0]];
                let mut protocol = ProtocolConfig {
                    replicas: usize::from(replicas.unwrap_or(CLUSTER_REPLICAS_DEFAULT)),
                    ..ProtocolConfig::default()
                };
                let mut swept = Vec::new();
                for ((s, values), &i) in axes.iter().zip(p) {
                    // `protocol_axes` had this setting read each of its values already.
                    if (s.set)(&mut protocol, &values[i]).is_ok() {
                        swept.push(s.name.to_string());
                    }
                }
                Config {
                    workload: self.workloads[*w].clone(),
                    protocol,
                    swept,
                    replicas,
                    shards: shards[launch[1]],
                    redis_persistence: persistence[launch[2]],
                    net: net[launch[3]].clone(),
                    client_near: near[launch[4]],
                    leader_at: leader[launch[5]],
                    rate_per_s: rates[launch[6]],
                }
            })
            .filter(|c| c.protocol.protocol.supports_read_mode(c.protocol.read_mode))
            .collect()
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
    super::report::create_dir(Some(&dir))?;
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
    let md = summary_markdown(m, &rows) + &load_markdown(m, &rows);
    std::fs::write(dir.join("summary.md"), &md)?;
    let done: Vec<&BenchResult> = rows.iter().filter_map(|r| r.result.as_ref()).collect();
    super::plot::write_sweep_plots(&dir, &super::plot::runs(&done))?;
    // The page reads the results back as written, so it shows what a later
    // `corepax report` of this folder shows.
    if !done.is_empty() {
        let loaded = super::results::load(&dir.to_string_lossy())?;
        super::page::write(
            &super::page::path_for(&dir),
            &dir.to_string_lossy(),
            &loaded,
        )?;
    }
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
    if let Some(r) = c.rate_per_s {
        w.set_open_loop(r);
    }
    w.validate()?;
    let mut l: Box<dyn Launcher> = match m.launcher {
        LauncherKind::Corepax => Box::new(
            CorepaxCluster::new(
                exe.to_path_buf(),
                c.replicas.unwrap_or(CLUSTER_REPLICAS_DEFAULT),
                c.node_flags(),
            )
            .with_net(c.net.clone(), c.client_near.unwrap_or(0))
            .with_leader_at(c.leader_at),
        ),
        LauncherKind::Redis => Box::new(RedisServer::new(
            c.redis_persistence.unwrap_or(Persistence::None),
        )),
    };
    let addrs = l.launch()?;
    let mut info = l.target_info();
    info.insert("sweep_config".into(), serde_json::to_value(c)?);
    // Unpinned: every server of a sweep runs on this machine (see `BenchArgs::pinned`).
    let target = l.describe();
    let (mut res, out) = crate::net::run_in(l.site(), || {
        run_against(&w, addrs, target, info, cores, progress, false)
    })??;
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

/// For a rate sweep: each configuration's p99 at each offered rate, and its highest rate
/// that kept up within the p99 objective.
fn load_markdown(m: &Matrix, rows: &[SweepRow]) -> String {
    use super::plot::load;
    let objective = m.p99_objective_ms.unwrap_or(P99_OBJECTIVE_MS_DEFAULT);
    let done: Vec<&BenchResult> = rows.iter().filter_map(|r| r.result.as_ref()).collect();
    let series = load::series(&done);
    if m.rate_per_s.is_empty() || series.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "\n## Latency against load\n\nOpen loop at each offered rate; a rate holds when the \
         run completed at least {:.0}% of it with p99 ≤ {}. Latency counts from each \
         request's due time, so it includes the load generator's own lateness; the third \
         column counts from the send instead (p99), with the lateness's p99 in brackets.\n\n\
         | configuration | p99 at offered rate (p50) | p99 from the send [lateness p99] | highest rate within p99 ≤ {} |\n\
         | --- | --- | --- | ---: |\n",
        load::KEPT_UP_SHARE * 100.0,
        super::plot::axis::fmt_ms(objective),
        super::plot::axis::fmt_ms(objective),
    );
    for se in &series {
        let name = [se.ident.workload.as_str(), se.ident.setting.as_str()]
            .join(" ")
            .trim()
            .to_string();
        let points: Vec<String> = se
            .points
            .iter()
            .map(|(rate, r)| {
                format!(
                    "{}/s: {} ({})",
                    super::plot::axis::fmt_count(*rate),
                    fmt_us(r.total.p99_us),
                    fmt_us(r.total.p50_us)
                )
            })
            .collect();
        let from_send: Vec<String> = se
            .points
            .iter()
            .map(|(rate, r)| {
                let split = r.open_loop.as_ref().filter(|o| o.split_measured());
                format!(
                    "{}/s: {}",
                    super::plot::axis::fmt_count(*rate),
                    split.map_or("-".into(), |o| format!(
                        "{} [{}]",
                        fmt_us(o.from_send_us[1]),
                        fmt_us(o.send_lag_us[1])
                    ))
                )
            })
            .collect();
        let best = se
            .highest_rate_within(objective)
            .map_or("none".into(), |r| {
                format!("{}/s", super::plot::axis::fmt_count(r))
            });
        s += &format!(
            "| {name} | {} | {} | {best} |\n",
            points.join("; "),
            from_send.join("; ")
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(text: &str) -> anyhow::Result<Matrix> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("m.toml");
        std::fs::write(
            &p,
            format!("launcher = \"corepax\"\nworkloads = [\"w.toml\"]\n{text}"),
        )?;
        Matrix::from_file(&p)
    }

    #[test]
    fn any_protocol_setting_is_an_axis_crossed_in_a_stable_order() {
        let m = matrix(
            "read_mode = [\"log\", \"quorum\"]\nbatch_max = [1, 64]\nreplicas = [3]\n\
             lease_holders = [[0, 1]]\n",
        )
        .unwrap();
        let labels: Vec<String> = m.configs().iter().map(Config::label).collect();
        assert_eq!(
            labels,
            [
                "w batch_max=1 read_mode=log lease_holders=0,1 R=3",
                "w batch_max=1 read_mode=quorum lease_holders=0,1 R=3",
                "w batch_max=64 read_mode=log lease_holders=0,1 R=3",
                "w batch_max=64 read_mode=quorum lease_holders=0,1 R=3",
            ]
        );
        assert_eq!(
            m.configs()[1].node_flags(),
            [
                "--batch-max",
                "1",
                "--read-mode",
                "quorum",
                "--lease-holders",
                "0,1"
            ]
        );
        assert_eq!(
            m.configs()[1].protocol.read_mode,
            crate::config::ReadMode::Quorum
        );
    }

    #[test]
    fn a_protocol_is_crossed_only_with_the_read_modes_it_serves() {
        let m = matrix(
            "protocol = [\"multipaxos\", \"raft\"]\n\
             read_mode = [\"log\", \"leader-lease\", \"read-index\"]\n",
        )
        .unwrap();
        let labels: Vec<String> = m.configs().iter().map(Config::label).collect();
        assert_eq!(
            labels,
            [
                "w protocol=multipaxos read_mode=log",
                "w protocol=multipaxos read_mode=leader-lease",
                "w protocol=raft read_mode=log",
                "w protocol=raft read_mode=leader-lease",
                "w protocol=raft read_mode=read-index",
            ]
        );
    }

    #[test]
    fn rates_are_the_last_axis() {
        let m = matrix("read_mode = [\"log\", \"quorum\"]\nrate_per_s = [5000, 20000]\n").unwrap();
        let labels: Vec<String> = m.configs().iter().map(Config::label).collect();
        assert_eq!(
            labels,
            [
                "w read_mode=log rate=5k/s",
                "w read_mode=log rate=20k/s",
                "w read_mode=quorum rate=5k/s",
                "w read_mode=quorum rate=20k/s",
            ]
        );
        assert_eq!(m.configs()[1].rate_per_s, Some(20000.0));
        let err = matrix("rate_per_s = [1000, 0]\n").unwrap_err();
        assert!(format!("{err:#}").contains("rate_per_s"), "{err:#}");
        let err = matrix("p99_objective_ms = -1.0\n").unwrap_err();
        assert!(format!("{err:#}").contains("p99_objective_ms"), "{err:#}");
    }

    #[test]
    fn the_network_axes_cross_last_and_a_bad_profile_is_refused() {
        let m = matrix("net = [\"wan3\"]\nclient_near = [0, 2]\nleader_at = [1]\n").unwrap();
        let labels: Vec<String> = m.configs().iter().map(Config::label).collect();
        assert_eq!(
            labels,
            [
                "w net=wan3 client-near=0 leader-at=1",
                "w net=wan3 client-near=2 leader-at=1"
            ]
        );
        let err = matrix("net = [\"mars\"]\n").unwrap_err();
        assert!(format!("{err:#}").contains("mars"), "{err:#}");
        let err = matrix("client_near = [1]\n").unwrap_err();
        assert!(format!("{err:#}").contains("need `net`"), "{err:#}");
    }

    #[test]
    fn an_unknown_key_or_a_refused_value_names_the_field() {
        let err = matrix("batch_maxx = [1]\n").unwrap_err();
        assert!(format!("{err:#}").contains("batch_maxx"), "{err:#}");
        let err = matrix("read_mode = [\"fast\"]\n").unwrap_err();
        assert!(format!("{err:#}").contains("read_mode"), "{err:#}");
        let err = matrix("batch_max = 3\n").unwrap_err();
        assert!(format!("{err:#}").contains("a list"), "{err:#}");
    }

    #[test]
    fn the_shipped_matrices_parse() {
        for f in [
            "matrix-default.toml",
            "matrix-read-modes.toml",
            "matrix-digest-bytes.toml",
            "matrix-rates.toml",
            "matrix-net-wan3.toml",
            "matrix-net-wan3-holders.toml",
            "matrix-net-wan3-raft.toml",
            "matrix-protocols.toml",
        ] {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("workloads")
                .join(f);
            let m = Matrix::from_file(&p).unwrap_or_else(|e| panic!("{f}: {e:#}"));
            assert!(!m.configs().is_empty(), "{f}");
        }
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/matrix-read-modes.toml");
        let modes = Matrix::from_file(&p).unwrap().protocol_axes().unwrap();
        let multipaxos_modes = crate::config::ReadMode::ALL
            .into_iter()
            .filter(|m| crate::config::Protocol::Multipaxos.supports_read_mode(*m))
            .count();
        assert_eq!(modes[0].1.len(), multipaxos_modes);
    }
}
