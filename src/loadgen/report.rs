//! Reports: the printed table, the JSON result and the HdrHistogram interval log.
use super::driver::{Interval, MachineUse, OpenLoopReport, RunOutput};
use super::stats::{Percentiles, new_histogram};
use super::workload::{Op, Workload};
use anyhow::Context;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetDescription {
    /// `corepax-cluster`, `redis-server` or `external`.
    pub kind: String,
    /// A sentence saying what ran (and why, when a fallback was used).
    pub description: String,
    /// Addresses driven.
    pub addrs: Vec<String>,
}

/// Facts about the host that produced a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Online CPUs.
    pub cores: usize,
    /// Kernel release (/proc/sys/kernel/osrelease).
    pub kernel: String,
    /// Host name, if readable.
    pub hostname: String,
    /// Median round trip (µs) of a thread waking a sleeping thread on another core and
    /// being woken back (`wake::round_trip_us`): the step every hop of a replicated write
    /// takes. None with one core (and in results older than it).
    #[serde(default)]
    pub wake_round_trip_us: Option<f64>,
    /// The kernel's idle driver, with a KVM guest's halt polling (`wake::cpuidle`).
    #[serde(default)]
    pub cpuidle: Option<String>,
}

/// Round trips [`Host::this`] times: ~0.1 s where a wake-up costs 60 µs.
const WAKE_ROUNDS: usize = 1000;

/// "wake-up round trip between two cores `us` µs (…)", with the idle driver if known:
/// one result's line ([`Host::wake_line`]) and the report page's range over several.
pub fn wake_text(us: &str, idle: Option<&str>) -> String {
    let idle = idle.map_or(String::new(), |c| format!("; idle driver: {c}"));
    format!("wake-up round trip between two cores {us} µs (two sleeping threads, median{idle})")
}

/// The wake-up round trip, measured once per process: a fact of the machine, read by
/// every result a run or sweep writes (a bench writes two).
fn wake_round_trip_us() -> Option<f64> {
    static MEASURED: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    *MEASURED.get_or_init(|| super::wake::round_trip_us(WAKE_ROUNDS))
}

impl Host {
    /// Reads this machine's facts.
    pub fn this() -> Host {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        };
        Host {
            cores: super::driver::online_cores(),
            kernel: read("/proc/sys/kernel/osrelease"),
            hostname: read("/proc/sys/kernel/hostname"),
            wake_round_trip_us: wake_round_trip_us(),
            cpuidle: super::wake::cpuidle(),
        }
    }

    /// One line on how fast this machine's cores wake each other, or None if unmeasured.
    pub fn wake_line(&self) -> Option<String> {
        let us = self.wake_round_trip_us?;
        Some(wake_text(&format!("{us:.1}"), self.cpuidle.as_deref()))
    }
}

/// The JSON result of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchResult {
    /// corepax version that produced it.
    pub corepax_version: String,
    /// The command line that produced it.
    pub command: String,
    /// The full workload.
    pub workload: Workload,
    /// What was measured.
    pub target: TargetDescription,
    /// Free-form facts from the caller (protocol settings, `no_fsync`, ...).
    pub target_info: BTreeMap<String, serde_json::Value>,
    /// `git rev-parse HEAD`, if available.
    pub git_commit: Option<String>,
    /// Host facts.
    pub host: Host,
    /// Executors (cores) the load generator used.
    pub loadgen_cores: usize,
    /// Start time (warm-up start), RFC 3339 UTC.
    pub start_time: String,
    /// Start time, seconds since the Unix epoch.
    pub start_time_unix_s: f64,
    /// Measured seconds (warm-up excluded).
    pub measured_s: f64,
    /// Percentiles per op type (ops that ran).
    pub ops: BTreeMap<String, Percentiles>,
    /// All ops together.
    pub total: Percentiles,
    /// Failed requests by kind.
    pub errors: BTreeMap<String, u64>,
    /// Open-loop bookkeeping, if open loop.
    pub open_loop: Option<OpenLoopReport>,
    /// Records preloaded and seconds taken.
    pub preload: Option<(u64, f64)>,
    /// The interval log written beside this file.
    pub hlog_path: Option<String>,
    /// Warnings worth reading (fallbacks, missed target rates).
    pub notes: Vec<String>,
    /// CPU each server process spent per operation in the measured window.
    #[serde(default)]
    pub server_cpu: Vec<ServerCpu>,
    /// The load generator's own CPU and how busy the machine was in the measured window
    /// (None where `/proc` does not say, and in results older than this field).
    #[serde(default)]
    pub machine: Option<MachineUse>,
}

/// From this share of all cores busy in a measured window, the result notes it: its
/// latencies then hold time spent waiting for a core.
pub const MACHINE_BUSY_NOTE_SHARE: f64 = 0.9;

/// CPU one server process used in the measured window (user + system, from its INFO).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCpu {
    /// The server's address.
    pub addr: String,
    /// CPU seconds it used.
    pub cpu_s: f64,
    /// Microseconds of its CPU per operation of the whole run (every operation the load
    /// generator completed, whichever server it was sent to).
    pub us_per_op: f64,
}

impl BenchResult {
    /// Builds the result of a run.
    pub fn new(
        out: &RunOutput,
        workload: &Workload,
        target: TargetDescription,
        target_info: BTreeMap<String, serde_json::Value>,
        loadgen_cores: usize,
    ) -> BenchResult {
        let mut ops = BTreeMap::new();
        let mut all = new_histogram();
        for op in Op::ALL {
            let h = &out.stats.hist[op as usize];
            let e = out.stats.errors[op as usize];
            all.add(h).expect("same bounds");
            if !h.is_empty() || e > 0 {
                ops.insert(op.name().to_string(), Percentiles::of(h, out.measured_s, e));
            }
        }
        let unix = out
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut notes = Vec::new();
        if let Some(o) = &out.open_loop
            && !o.kept_up
        {
            notes.push(format!(
                "open loop could NOT keep the target rate of {:.0}/s: {} of {} due requests sent in time, {} never sent, send lag up to {:.1} ms",
                o.target_rate_per_s,
                o.sent_on_time_window,
                o.intended,
                o.missed,
                o.send_lag_us_max / 1000.0
            ));
        }
        if all.is_empty() {
            notes.push(
                "NO REQUEST SUCCEEDED in the measured window: these figures mean nothing".into(),
            );
        }
        if let Some(m) = out.machine
            && m.busy_share >= MACHINE_BUSY_NOTE_SHARE
        {
            notes.push(format!(
                "the machine's cores were {:.0} % busy in the measured window: latencies include time spent waiting for a core (the load generator's, and the servers' if they run here)",
                m.busy_share * 100.0
            ));
        }
        let total = Percentiles::of(&all, out.measured_s, out.stats.error_count());
        let server_cpu = out
            .server_cpu_s
            .iter()
            .filter(|_| total.count > 0)
            .map(|(addr, cpu_s)| ServerCpu {
                addr: addr.to_string(),
                cpu_s: *cpu_s,
                us_per_op: cpu_s * 1e6 / total.count as f64,
            })
            .collect();
        BenchResult {
            corepax_version: env!("CARGO_PKG_VERSION").to_string(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            workload: workload.clone(),
            target,
            target_info,
            git_commit: git_commit(),
            host: Host::this(),
            loadgen_cores,
            start_time: rfc3339(out.started),
            start_time_unix_s: unix,
            measured_s: out.measured_s,
            ops,
            total,
            errors: out.stats.error_kinds.clone(),
            open_loop: out.open_loop,
            preload: out.preload,
            hlog_path: None,
            notes,
            server_cpu,
            machine: out.machine,
        }
    }

    /// The load generator's CPU per operation (µs) and the machine's busy share, as
    /// printed: "load generator CPU per op 2.41 µs; machine busy 83 % of 2 cores".
    pub fn machine_line(&self) -> Option<String> {
        let m = self.machine?;
        let per_op = if self.total.count > 0 {
            format!(
                "load generator CPU per op {:.2} µs; ",
                m.loadgen_cpu_s * 1e6 / self.total.count as f64
            )
        } else {
            String::new()
        };
        Some(format!(
            "{per_op}machine busy {:.0} % of {} cores (every process and the kernel)",
            m.busy_share * 100.0,
            m.cores
        ))
    }

    /// The human table: op, count, throughput, percentiles, max, errors.
    pub fn table(&self) -> String {
        let mut s = String::new();
        s += &format!(
            "{:<6} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}\n",
            "op", "count", "ops/s", "p50", "p90", "p99", "p99.9", "p99.99", "max", "errors"
        );
        let row = |name: &str, p: &Percentiles| {
            format!(
                "{:<6} {:>10} {:>12.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}\n",
                name,
                p.count,
                p.throughput_per_s,
                fmt_us(p.p50_us),
                fmt_us(p.p90_us),
                fmt_us(p.p99_us),
                fmt_us(p.p999_us),
                fmt_us(p.p9999_us),
                fmt_us(p.max_us),
                p.errors
            )
        };
        for (name, p) in &self.ops {
            s += &row(name, p);
        }
        s += &row("all", &self.total);
        if !self.errors.is_empty() {
            let kinds: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s += &format!("errors by kind: {}\n", kinds.join(" "));
        }
        if let Some(o) = &self.open_loop {
            s += &format!(
                "open loop: target {:.0}/s, {} due, {} sent in time, {} missed, max send lag {:.1} ms{}\n",
                o.target_rate_per_s,
                o.intended,
                o.sent_on_time_window,
                o.missed,
                o.send_lag_us_max / 1000.0,
                if o.kept_up {
                    ""
                } else {
                    "  << TARGET RATE NOT KEPT"
                }
            );
            if let Some(split) = open_loop_split(o) {
                s += &format!("  {split}\n");
            }
        }
        if !self.server_cpu.is_empty() {
            let each: Vec<String> = self
                .server_cpu
                .iter()
                .map(|c| format!("{} {:.2}", c.addr, c.us_per_op))
                .collect();
            let sum: f64 = self.server_cpu.iter().map(|c| c.us_per_op).sum();
            s += &format!(
                "server CPU per op (µs, user+sys): {} | all {:.2}\n",
                each.join("  "),
                sum
            );
        }
        if let Some(m) = self.machine_line() {
            s += &format!("{m}\n");
        }
        if let Some(w) = self.host.wake_line() {
            s += &format!("{w}\n");
        }
        for n in &self.notes {
            s += &format!("NOTE: {n}\n");
        }
        s
    }

    /// Default result path: results/<workload>-<timestamp>.json.
    pub fn default_path(&self) -> PathBuf {
        let stamp = self.start_time.replace([':', '-'], "").replace('T', "-");
        PathBuf::from("results").join(format!(
            "{}-{}.json",
            self.workload.name,
            stamp.trim_end_matches('Z')
        ))
    }

    /// Writes the JSON, and the interval log beside it (same name, `.hlog`).
    pub fn write(&mut self, path: &Path, intervals: &[Interval]) -> anyhow::Result<()> {
        create_dir(path.parent())?;
        let hlog = path.with_extension("hlog");
        write_interval_log(&hlog, intervals, self.start_time_unix_s)
            .with_context(|| format!("cannot write {}", hlog.display()))?;
        self.hlog_path = Some(hlog.display().to_string());
        std::fs::write(path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

/// Creates `dir` (a result file's directory; none or empty: the current one) and its
/// parents, naming it in the error.
pub fn create_dir(dir: Option<&Path>) -> anyhow::Result<()> {
    match dir {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display())),
        _ => Ok(()),
    }
}

/// Where an open-loop run's latency went: the load generator's own lateness (due time to
/// send) and the latency counted from the send, each p50 / p99 / p99.9. None for a result
/// written before they were measured.
pub fn open_loop_split(o: &OpenLoopReport) -> Option<String> {
    if !o.split_measured() {
        return None;
    }
    let three = |q: &[f64; 3]| q.map(fmt_us).join(" / ");
    Some(format!(
        "load generator's lateness (due to send) p50 / p99 / p99.9: {}; latency from the send: {}",
        three(&o.send_lag_us),
        three(&o.from_send_us)
    ))
}

/// Formats microseconds with a unit that keeps it short.
pub fn fmt_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2}s", us / 1e6)
    } else if us >= 1000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{us:.0}µs")
    }
}

/// Writes per-second histograms, one line per op per interval (tagged with the op
/// name), in the HdrHistogram interval log format; values are nanoseconds, and the
/// max column is in milliseconds (divisor 1e6), as HistogramLogProcessor expects.
pub fn write_interval_log(
    path: &Path,
    intervals: &[Interval],
    start_unix_s: f64,
) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut ser = V2DeflateSerializer::new();
    let start = UNIX_EPOCH + std::time::Duration::from_secs_f64(start_unix_s);
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment("corepax bench: latency in ns, one tagged histogram per op type per interval")
        .with_start_time(start)
        .with_base_time(start)
        .with_max_value_divisor(1e6)
        .begin_log_with(&mut file, &mut ser)?;
    for i in intervals {
        for op in Op::ALL {
            let h = &i.stats.hist[op as usize];
            if h.is_empty() {
                continue;
            }
            log.write_histogram(h, i.start, i.length, Tag::new(op.name()))
                .map_err(|e| anyhow::anyhow!("interval log: {e}"))?;
        }
    }
    drop(log);
    use std::io::Write;
    file.flush()?;
    Ok(())
}

/// `git rev-parse HEAD`, if git and a repository are available.
pub fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Formats a time as RFC 3339 UTC (seconds precision).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wake_line_names_the_round_trip_and_the_idle_driver() {
        // A result written before the wake-up probe existed still reads.
        let old: Host =
            serde_json::from_str(r#"{"cores":2,"kernel":"6.1","hostname":"h"}"#).unwrap();
        assert_eq!((old.wake_round_trip_us, old.wake_line()), (None, None));
        let host = Host {
            wake_round_trip_us: Some(63.25),
            cpuidle: Some("haltpoll, guest_halt_poll_ns 0".into()),
            ..old
        };
        let line = host.wake_line().unwrap();
        assert!(line.contains("63.2 µs"), "{line}");
        assert!(
            line.contains("idle driver: haltpoll, guest_halt_poll_ns 0"),
            "{line}"
        );
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_709_210_096);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56Z");
    }
}
