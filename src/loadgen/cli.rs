//! The `bench` and `sweep` commands.
use super::driver::Progress;
use super::launch::{CorepaxCluster, Launcher, Persistence, RedisServer};
use super::report::{BenchResult, TargetDescription};
use super::run::run_against;
use super::workload::Workload;
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// `corepax bench`: drive a RESP server (or an embedded local cluster) with a workload.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Servers to drive, `HOST:PORT[,HOST:PORT...]`; without it, start a local
    /// 3-replica corepax cluster (the run fails, saying why, if the cluster cannot start).
    #[arg(long)]
    pub target: Option<String>,
    /// Workload file (default: the built-in workloads/default.toml).
    #[arg(long)]
    pub workload: Option<PathBuf>,
    /// Measured duration, overriding the workload's (`20`, `20s`, `500ms`, `2m`).
    #[arg(long, value_parser = parse_duration_s)]
    pub duration: Option<f64>,
    /// Warm-up, overriding the workload's (same syntax as --duration).
    #[arg(long, value_parser = parse_duration_s)]
    pub warmup: Option<f64>,
    /// Connections, overriding the workload's.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Pipeline depth, overriding the workload's.
    #[arg(long)]
    pub pipeline: Option<usize>,
    /// Open-loop target rate (requests/s), overriding the workload's; implies open loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Skip the preload phase.
    #[arg(long)]
    pub no_preload: bool,
    /// After a closed-loop run, this long an open-loop run at half the throughput it
    /// measured, on the same servers: the latency at a sensible load, apart from the
    /// queueing a saturating closed loop adds (`0`: none; same syntax as --duration).
    /// Its requests arrive as the closed loop sent them, `pipeline` at once per connection.
    #[arg(long, value_parser = parse_duration_s, default_value = "8")]
    pub half_load: f64,
    /// Where to write the JSON result (default results/<workload>-<time>.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Load generator cores (executors); default all.
    #[arg(long)]
    pub cores: Option<usize>,
    /// Replicas of the embedded cluster.
    #[arg(long, default_value_t = 3)]
    pub replicas: u16,
    /// Run the embedded cluster on an emulated network (a built-in profile: lan, metro,
    /// wan3, or a TOML file; needs root; see docs/NETWORK.md).
    #[arg(long, value_name = "PROFILE")]
    pub net: Option<String>,
    /// Under --net: the load generator sits beside this replica (in its namespace) and
    /// connects to it only.
    #[arg(long, default_value_t = 0, requires = "net")]
    pub client_near: u16,
    /// Under --net: move the leader to this replica before the run (cutting off whichever
    /// replica leads until this one does).
    #[arg(long, requires = "net")]
    pub leader_at: Option<u16>,
    /// The embedded cluster's replication protocol (multipaxos, raft), passed to `corepax
    /// cluster`; a `--target`'s servers run whatever they were started with.
    #[arg(long, conflicts_with_all = ["target", "redis"])]
    pub protocol: Option<crate::config::Protocol>,
    /// Run against a launched redis-server instead of a corepax cluster.
    #[arg(long)]
    pub redis: Option<Persistence>,
    /// Extra `KEY=VALUE` facts to record in the result's target_info.
    #[arg(long = "target-info", value_parser = parse_kv)]
    pub target_info: Vec<(String, String)>,
    /// Pin the load generator's executors to cores. Off by default: the servers it measures
    /// usually run on this machine too (the embedded cluster, `--redis`), and pinned
    /// executors then fight them for the same cores (one connection got ~800 ops/s pinned
    /// against 2,400-3,100 unpinned on the 2-core machine).
    #[arg(long, conflicts_with = "unpinned")]
    pub pinned: bool,
    /// The default now; kept so older command lines still run.
    #[arg(long, hide = true)]
    pub unpinned: bool,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
    /// Flags passed to `corepax cluster` (after `--`), e.g. `-- --batch-max 64`.
    #[arg(last = true)]
    pub node_args: Vec<String>,
}

/// `corepax sweep`: run a matrix of settings, each on a fresh cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    /// Matrix file (see workloads/matrix-default.toml).
    #[arg(long, default_value = "workloads/matrix-default.toml")]
    pub matrix: PathBuf,
    /// Output directory (default results/sweep-<time>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Load generator cores; default all.
    #[arg(long)]
    pub cores: Option<usize>,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

/// `corepax compare A B`: ratios B/A of two sets of results, noise marked.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Side A (before): a result JSON, a folder of them (a sweep) or a quoted pattern
    /// such as 'results/ab/before-*.json' (runs of one configuration are repeats).
    pub a: String,
    /// Side B (after), named the same ways.
    pub b: String,
    /// Ratios within this many percent of 1 count as noise even when the ranges of the
    /// two sides do not overlap.
    #[arg(long, default_value_t = 100.0 * super::compare::THRESHOLD_DEFAULT)]
    pub threshold: f64,
    /// Write an SVG plot of the ratios here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// `corepax report DIR`: the report page of a folder of results (and its plots, drawn
/// again from its JSON).
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// A folder of results (a sweep's), or one result JSON.
    pub dir: PathBuf,
}

/// Parses `20`, `20s`, `500ms`, `2m` into seconds.
pub fn parse_duration_s(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    match num.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v * mul),
        _ => Err(format!("bad duration {s:?}: use e.g. 20, 20s, 500ms, 2m")),
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// Resolves `HOST:PORT[,HOST:PORT...]` (loopback or any reachable host).
pub fn parse_targets(s: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let addr = part
            .to_socket_addrs()
            .with_context(|| format!("bad target {part:?}"))?
            .next()
            .with_context(|| format!("target {part:?} resolves to nothing"))?;
        out.push(addr);
    }
    if out.is_empty() {
        bail!("--target names no address");
    }
    Ok(out)
}

/// Applies command-line overrides to a workload and validates it again.
pub fn apply_overrides(w: &mut Workload, a: &BenchArgs) -> anyhow::Result<()> {
    if let Some(d) = a.duration {
        w.duration_s = Some(d);
        w.operation_count = None;
    }
    if let Some(d) = a.warmup {
        w.warmup_s = d;
    }
    if let Some(c) = a.connections {
        w.connections = c;
    }
    if let Some(p) = a.pipeline {
        w.pipeline = p;
    }
    if let Some(r) = a.rate {
        w.set_open_loop(r);
    }
    if a.no_preload {
        w.preload = false;
    }
    w.validate()?;
    Ok(())
}

/// The server(s) a bench run measures, and its launcher (kept alive for the whole run:
/// dropping it kills the server): `--target`, `--redis`, or a local corepax cluster.
type Launched = (
    Vec<SocketAddr>,
    TargetDescription,
    BTreeMap<String, serde_json::Value>,
    Option<Box<dyn Launcher>>,
);

fn launch_target(a: &BenchArgs) -> anyhow::Result<Launched> {
    let mut launcher: Option<Box<dyn Launcher>> = None;
    let (addrs, target, info) = match (&a.target, a.redis) {
        (Some(t), _) => {
            let addrs = parse_targets(t)?;
            let d = TargetDescription {
                kind: "external".into(),
                description: format!("RESP server(s) at {t}"),
                addrs: addrs.iter().map(|a| a.to_string()).collect(),
            };
            (addrs, d, BTreeMap::new())
        }
        (None, Some(p)) => {
            let mut r: Box<dyn Launcher> = Box::new(RedisServer::new(p));
            let addrs = r.launch()?;
            let (d, i) = (r.describe(), r.target_info());
            launcher = Some(r);
            (addrs, d, i)
        }
        (None, None) => {
            let exe = std::env::current_exe().context("cannot find the corepax executable")?;
            let mut node_args = a.node_args.clone();
            if let Some(p) = a.protocol {
                node_args.splice(0..0, ["--protocol".to_string(), p.to_string()]);
            }
            let mut c: Box<dyn Launcher> = Box::new(
                CorepaxCluster::new(exe, a.replicas, node_args)
                    .with_net(a.net.clone(), a.client_near)
                    .with_leader_at(a.leader_at),
            );
            eprintln!(
                "starting a local {}-replica corepax cluster ...",
                a.replicas
            );
            // No fallback to another server: a benchmark of something else under
            // corepax's name would be worse than no number at all.
            let addrs = c
                .launch()
                .context("the local corepax cluster could not start; nothing was measured")?;
            let (d, i) = (c.describe(), c.target_info());
            launcher = Some(c);
            (addrs, d, i)
        }
    };
    Ok((addrs, target, info, launcher))
}

/// `corepax bench`: a scenario file (a `[scenario]` table) runs its scenario, any other
/// workload its operation mix.
pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    // A result that cannot be stored is refused before the run, not after it.
    let out_dir = match &a.json {
        Some(p) => p.parent(),
        None => Some(Path::new("results")),
    };
    super::report::create_dir(out_dir)?;
    if let Some(p) = &a.workload
        && let Some(s) = super::scenario::ScenarioFile::detect(p)?
    {
        return run_scenario(&a, &s);
    }
    run_bench(a).map(drop)
}

/// Runs a scenario file against the target and writes its result (JSON) and prints it.
fn run_scenario(a: &BenchArgs, s: &super::scenario::ScenarioFile) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.net.is_none(),
        "--net is not supported with a scenario file"
    );
    let (addrs, target, info, mut launcher) = launch_target(a)?;
    eprintln!("target: {}", target.description);
    eprintln!(
        "scenario {}: {} ({} s)",
        s.name, s.description, s.duration_s
    );
    let started = std::time::SystemTime::now();
    let mut result = s.run(&addrs)?;
    if let Some(mut l) = launcher.take() {
        l.stop();
    }
    let time = super::report::rfc3339(started);
    let command: Vec<String> = std::env::args().collect();
    if let Some(obj) = result.as_object_mut() {
        obj.insert("name".into(), s.name.clone().into());
        obj.insert("description".into(), s.description.clone().into());
        obj.insert("command".into(), command.join(" ").into());
        obj.insert("start_time".into(), time.clone().into());
        obj.insert("corepax_version".into(), env!("CARGO_PKG_VERSION").into());
        obj.insert("commit".into(), super::report::git_commit().into());
        obj.insert("target".into(), serde_json::to_value(&target)?);
        obj.insert("target_info".into(), serde_json::to_value(&info)?);
        obj.insert(
            "host".into(),
            serde_json::to_value(super::report::Host::this())?,
        );
    }
    let stamp = time.replace([':', '-'], "").replace('T', "-");
    let path = a.json.clone().unwrap_or_else(|| {
        PathBuf::from("results").join(format!("{}-{}.json", s.name, stamp.trim_end_matches('Z')))
    });
    super::scenario::write_result(&path, &result)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    println!("result: {}", path.display());
    Ok(())
}

/// `corepax bench` of an operation mix: runs, prints the table, writes the JSON and
/// interval log.
pub fn run_bench(a: BenchArgs) -> anyhow::Result<BenchResult> {
    let mut w = match &a.workload {
        Some(p) => Workload::from_file(p)?,
        None => Workload::default_workload(),
    };
    apply_overrides(&mut w, &a)?;
    let (addrs, target, mut info, mut launcher) = launch_target(&a)?;
    let progress = if a.quiet {
        Progress::Quiet
    } else {
        Progress::auto()
    };
    for (k, v) in &a.target_info {
        let v = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()));
        info.insert(k.clone(), v);
    }
    eprintln!("target: {}", target.description);
    eprintln!(
        "workload {}: {} ({} connections x {} pipelined, {} s + {} s warm-up)",
        w.name,
        w.description,
        w.connections,
        w.pipeline,
        w.duration_s.unwrap_or(0.0),
        w.warmup_s
    );
    info.insert("loadgen_pinned".into(), serde_json::Value::Bool(a.pinned));
    let site = launcher.as_ref().and_then(|l| l.site());
    // Under --net every connection (and the INFO before and after) starts in the
    // client's namespace.
    let (mut res, out) = crate::net::run_in(site, || {
        run_against(
            &w,
            addrs.clone(),
            target.clone(),
            info.clone(),
            a.cores,
            progress,
            a.pinned,
        )
    })??;
    let path = a.json.clone().unwrap_or_else(|| res.default_path());
    let half = match half_load_workload(&w, &res, a.half_load) {
        Some(h) => {
            let run = || run_against(&h, addrs, target, info, a.cores, progress, a.pinned);
            Some(half_load_run(&h, a.half_load, &path, &mut res, || {
                crate::net::run_in(site, run)?
            })?)
        }
        None => None,
    };
    if let Some(mut l) = launcher.take() {
        l.stop();
    }
    // The table first: a run whose files cannot be written still shows what it measured.
    println!("{}", res.table());
    res.write(&path, &out.intervals)?;
    let page = super::page::path_for(&path);
    let mut loaded = vec![super::results::Loaded {
        path: path.clone(),
        result: res.clone(),
    }];
    if let Some((hpath, hr)) = half {
        println!(
            "at half the measured throughput, open loop ({}/s):\n{}",
            hr.workload.load.rate_per_s.unwrap_or(0.0).round(),
            hr.table()
        );
        loaded.push(super::results::Loaded {
            path: hpath,
            result: hr,
        });
    }
    super::page::write(&page, &path.display().to_string(), &loaded)?;
    println!(
        "result: {}  interval log: {}  report: {}",
        path.display(),
        res.hlog_path.as_deref().unwrap_or("-"),
        page.display()
    );
    Ok(res)
}

/// Runs the half-load workload `h` (`secs` long) through `run`, writes its result beside
/// `path` (`…-half-load.json`) and notes its latency in `res`; returns the file and result.
fn half_load_run(
    h: &Workload,
    secs: f64,
    path: &std::path::Path,
    res: &mut BenchResult,
    run: impl FnOnce() -> anyhow::Result<(BenchResult, super::driver::RunOutput)>,
) -> anyhow::Result<(PathBuf, BenchResult)> {
    let rate = h.load.rate_per_s.unwrap_or(0.0);
    eprintln!(
        "open loop at half the measured throughput: {}/s for {secs} s ...",
        rate.round()
    );
    let (mut hr, hout) = run()?;
    let hpath = path.with_file_name(format!(
        "{}-half-load.json",
        path.file_stem()
            .map_or("run".into(), |s| s.to_string_lossy())
    ));
    hr.write(&hpath, &hout.intervals)?;
    let split = hr
        .open_loop
        .as_ref()
        .and_then(super::report::open_loop_split)
        .map_or(String::new(), |s| format!("; {s}"));
    // A latency measured on a busy machine is partly the scheduler's: say how busy.
    let machine = hr
        .machine_line()
        .map_or(String::new(), |m| format!("; {m}"));
    res.notes.push(format!(
        "at half the measured throughput ({}/s, open loop, {}): p50 {} p99 {} p99.9 {}{split}{machine}",
        rate.round(),
        hpath.display(),
        super::report::fmt_us(hr.total.p50_us),
        super::report::fmt_us(hr.total.p99_us),
        super::report::fmt_us(hr.total.p999_us)
    ));
    Ok((hpath, hr))
}

/// The open-loop run at half of what a closed-loop run measured (`secs` long, no preload,
/// a short warm-up), or None for an open-loop run, `secs` = 0 or nothing measured.
pub fn half_load_workload(w: &Workload, measured: &BenchResult, secs: f64) -> Option<Workload> {
    let rate = measured.total.throughput_per_s / 2.0;
    if w.load.mode != super::workload::LoopMode::Closed || secs <= 0.0 || rate < 1.0 {
        return None;
    }
    let mut h = w.clone();
    h.set_open_loop(rate);
    // Requests arrive as the closed loop sent them, `pipeline` at a time: the same traffic
    // at half the rate. One at a time would be other traffic (each request its own
    // message, several times the CPU per request here), whose capacity the closed loop did
    // not measure.
    h.load.burst = h.pipeline;
    h.duration_s = Some(secs);
    h.operation_count = None;
    h.warmup_s = h.warmup_s.min(1.0);
    h.preload = false;
    h.validate().ok()?;
    Some(h)
}

/// `corepax sweep`: runs the matrix and writes the comparison table and plots.
pub fn run_sweep(a: SweepArgs) -> anyhow::Result<PathBuf> {
    let m = super::sweep::Matrix::from_file(&a.matrix)?;
    let progress = if a.quiet {
        Progress::Quiet
    } else {
        Progress::auto()
    };
    super::sweep::run(&m, a.out, a.cores, progress)
}

/// `corepax compare`: prints the comparison table and writes its plot if asked.
pub fn run_compare(a: CompareArgs) -> anyhow::Result<()> {
    if !(a.threshold >= 0.0 && a.threshold < 100.0) {
        bail!(
            "--threshold {}: a percentage from 0 to under 100",
            a.threshold
        );
    }
    let runs_a = super::results::load(&a.a).context("side A")?;
    let runs_b = super::results::load(&a.b).context("side B")?;
    let c = super::compare::compare((&a.a, &runs_a), (&a.b, &runs_b), a.threshold / 100.0)?;
    print!("{}", c.table());
    if let Some(p) = &a.plot {
        std::fs::write(p, c.svg()?).with_context(|| format!("cannot write {}", p.display()))?;
        println!("plot: {}", p.display());
    }
    Ok(())
}

/// `corepax report`: writes the report page of a folder (or of one result) and, for a
/// folder, draws its plots again.
pub fn run_report(a: ReportArgs) -> anyhow::Result<()> {
    let spec = a.dir.to_string_lossy();
    let loaded = super::results::load(&spec)?;
    if a.dir.is_dir() {
        let results: Vec<&BenchResult> = loaded.iter().map(|l| &l.result).collect();
        super::plot::write_sweep_plots(&a.dir, &super::plot::runs(&results))?;
    }
    let page = super::page::path_for(&a.dir);
    super::page::write(&page, &spec, &loaded)?;
    println!("report: {}", page.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_s("20"), Ok(20.0));
        assert_eq!(parse_duration_s("2m"), Ok(120.0));
        assert_eq!(parse_duration_s("500ms"), Ok(0.5));
        assert!(parse_duration_s("-1s").is_err());
        assert!(parse_duration_s("abc").is_err());
    }

    #[test]
    fn the_half_load_run_is_open_loop_at_half_the_measured_throughput() {
        use crate::loadgen::testdata::{Synthetic, write};
        let dir = tempfile::tempdir().expect("tempdir");
        // A closed-loop run of ~4,000 requests/s.
        let p = write(
            dir.path(),
            "closed.json",
            &Synthetic {
                ops: 4.0,
                ..Synthetic::default()
            },
        );
        let measured = crate::loadgen::results::load(&p.display().to_string())
            .expect("load")
            .remove(0)
            .result;
        let w = &measured.workload;
        assert_eq!(w.load.mode, crate::loadgen::workload::LoopMode::Closed);
        let h = half_load_workload(w, &measured, 8.0).expect("a half-load run");
        assert_eq!(h.load.mode, crate::loadgen::workload::LoopMode::Open);
        let rate = h.load.rate_per_s.expect("a rate");
        let want = measured.total.throughput_per_s / 2.0;
        assert!(
            (rate - want).abs() < 1e-6 && rate > 1000.0,
            "{rate} vs {want}"
        );
        assert_eq!(h.duration_s, Some(8.0));
        assert_eq!(
            (h.load.burst, w.load.burst),
            (w.pipeline, 1),
            "requests arrive as the closed loop sent them"
        );
        assert!(!h.preload, "the data is loaded already");
        assert!(
            half_load_workload(w, &measured, 0.0).is_none(),
            "0 turns it off"
        );
        assert!(
            half_load_workload(&h, &measured, 8.0).is_none(),
            "an open-loop run gets none"
        );
    }
}
