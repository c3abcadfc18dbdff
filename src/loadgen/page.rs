//! The report page: one self-contained HTML file (no script, no network) beside the
//! results it describes: the table, the plots inlined, the exact commands, the machine,
//! the commit, the settings and the server counters that explain tails.
use super::plot::{self, Run};
use super::report::{BenchResult, fmt_us, wake_text};
use super::results::{self, Loaded};
use anyhow::Context;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Server counters that explain latency tails, with what each means; shown per run in
/// the table (name in `shard_counters`, heading, explanation).
const TAIL_COUNTERS: [(&str, &str, &str); 5] = [
    (
        "syncs_slow",
        "slow syncs",
        "WAL syncs (O_DSYNC writes) that took 50 ms or more",
    ),
    (
        "executor_stalls",
        "stalls",
        "times a shard's executor ran its tick late (a task held the core)",
    ),
    (
        "became_leader",
        "leader changes",
        "a replica became leader: requests wait for the election",
    ),
    (
        "snapshots_written",
        "snapshots",
        "snapshots taken (the shard pauses while it freezes its state)",
    ),
    (
        "held_dropped",
        "held dropped",
        "answers to peers dropped because their queue was full (retransmitted later)",
    ),
];

const CSS: &str = "
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1320px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; overflow-x: auto; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; }
details { margin: 0.5em 0; }
.note { color: #a33; }
";

/// The page's file for results at `spec`: `report.html` in a folder, else the JSON's
/// name with `.html`.
pub fn path_for(spec: &Path) -> PathBuf {
    if spec.is_dir() {
        spec.join("report.html")
    } else {
        spec.with_extension("html")
    }
}

/// Writes the page for these results to `path`.
pub fn write(path: &Path, title: &str, loaded: &[Loaded]) -> anyhow::Result<()> {
    std::fs::write(path, html(title, loaded)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A counter of a run's `shard_counters` (summed over shards by the server), if recorded.
fn counter(r: &BenchResult, name: &str) -> Option<u64> {
    r.target_info.get("shard_counters")?.get(name)?.as_u64()
}

/// The runs' wake-up round trips between two cores (`Host::wake_round_trip_us`), as a
/// range, with their idle drivers; None if no run measured one.
fn wake_summary(results: &[&BenchResult]) -> Option<String> {
    let us: Vec<f64> = results
        .iter()
        .filter_map(|r| r.host.wake_round_trip_us)
        .collect();
    let lo = us.iter().copied().reduce(f64::min)?;
    let hi = us.iter().copied().reduce(f64::max)?;
    let range = if hi - lo < 0.05 {
        format!("{lo:.1}")
    } else {
        format!("{lo:.1}–{hi:.1}")
    };
    let idle = distinct(results.iter().filter_map(|r| r.host.cpuidle.clone()));
    Some(wake_text(
        &range,
        Some(idle.as_str()).filter(|i| !i.is_empty()),
    ))
}

/// Distinct values, joined.
fn distinct(values: impl IntoIterator<Item = String>) -> String {
    values
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join("; ")
}

/// The whole page.
pub fn html(title: &str, loaded: &[Loaded]) -> anyhow::Result<String> {
    let results: Vec<&BenchResult> = loaded.iter().map(|l| &l.result).collect();
    let runs = plot::runs(&results);
    let scatter = if runs.len() > 1 {
        Some(plot::throughput_vs_p99_svg(&runs)?)
    } else {
        None
    };
    let curves = plot::latency_curves_svg(&runs)?;
    let load = plot::load::latency_vs_load_svg(&results)?;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "corepax results: " (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                h1 { "corepax results: " (title) }
                (summary(&results))
                h2 { "Runs" }
                (table(loaded, &runs))
                h2 { "Plots" }
                @if let Some(svg) = &scatter {
                    figure { (PreEscaped(svg)) }
                }
                figure { (PreEscaped(&curves)) }
                @if let Some(svg) = &load {
                    figure { (PreEscaped(svg)) }
                }
                h2 { "Each run" }
                @for (i, (l, run)) in loaded.iter().zip(&runs).enumerate() {
                    (details(i, l, run))
                }
            }
        }
    };
    Ok(page.into_string())
}

/// Machine, commit, version, time and commands.
fn summary(results: &[&BenchResult]) -> Markup {
    let commands = distinct(results.iter().map(|r| r.command.clone()));
    // Each run of a sweep names its own ports: one description, or the kinds.
    let targets = match distinct(results.iter().map(|r| r.target.description.clone())) {
        one if results.len() == 1 => one,
        _ => distinct(results.iter().map(|r| r.target.kind.clone())),
    };
    let times: BTreeSet<&str> = results.iter().map(|r| r.start_time.as_str()).collect();
    let started = match (times.first(), times.last()) {
        (Some(a), Some(b)) if a != b => format!("{a} … {b}"),
        (Some(a), _) => (*a).to_string(),
        _ => String::new(),
    };
    html! {
        table {
            tr { th { "machine" } td { (distinct(results.iter().map(|r| format!(
                "{} ({} cores, kernel {})", r.host.hostname, r.host.cores, r.host.kernel))))
            } }
            @if let Some(w) = wake_summary(results) {
                tr { th { "wake-ups" } td { (w) } }
            }
            tr { th { "commit" } td { (distinct(results.iter().map(|r| format!("{} (corepax {})",
                r.git_commit.as_deref().unwrap_or("unknown"), r.corepax_version))))
            } }
            tr { th { "target" } td { (targets) } }
            tr { th { "started" } td { (started) } }
            tr { th { "runs" } td { (results.len()) } }
        }
        p { "Exact command(s):" }
        pre { (commands) }
    }
}

/// The table: one line per run, with the counters that explain its tail.
fn table(loaded: &[Loaded], runs: &[Run<'_>]) -> Markup {
    let us = |v: f64| fmt_us(v);
    html! {
        table {
            thead { tr {
                th { "#" } th { "workload" } th { "settings" } th { "ops/s" }
                th { "p50" } th { "p90" } th { "p99" } th { "p99.9" } th { "p99.99" } th { "max" }
                th { "errors" } th title="server CPU per operation, summed over servers" { "CPU µs/op" }
                th title="share of all cores busy in the measured window (every process, the load generator's and the kernel's too): a latency measured on a busy machine is partly the scheduler's" { "machine busy" }
                @for (_, head, why) in TAIL_COUNTERS { th title=(why) { (head) } }
            } }
            tbody {
                @for (i, (l, run)) in loaded.iter().zip(runs).enumerate() {
                    @let r = &l.result;
                    @let t = &r.total;
                    tr {
                        td.num { (i) }
                        td { (run.ident.workload) }
                        td { (run.ident.setting) }
                        td.num { (format!("{:.0}", t.throughput_per_s)) }
                        td.num { (us(t.p50_us)) } td.num { (us(t.p90_us)) } td.num { (us(t.p99_us)) }
                        td.num { (us(t.p999_us)) } td.num { (us(t.p9999_us)) } td.num { (us(t.max_us)) }
                        td.num { (t.errors) }
                        td.num { (if r.server_cpu.is_empty() { "-".to_string() } else {
                            format!("{:.2}", r.server_cpu.iter().map(|c| c.us_per_op).sum::<f64>()) }) }
                        td.num { (r.machine.map_or("-".to_string(), |m| format!("{:.0} %", m.busy_share * 100.0))) }
                        @for (name, _, _) in TAIL_COUNTERS {
                            td.num { (counter(r, name).map_or("-".to_string(), |v| v.to_string())) }
                        }
                    }
                }
            }
        }
        p { "Counters are the servers' own, over the measured run: " }
        ul { @for (_, head, why) in TAIL_COUNTERS { li { b { (head) } ": " (why) } } }
    }
}

/// A key → value table of JSON values.
fn kv(map: &BTreeMap<String, String>) -> Markup {
    html! {
        table { @for (k, v) in map { tr { th { (k) } td { (v) } } } }
    }
}

/// One run's details: command, settings, workload, counters, notes.
fn details(i: usize, l: &Loaded, run: &Run<'_>) -> Markup {
    let r = &l.result;
    let counters = |name: &str| -> BTreeMap<String, String> {
        r.target_info
            .get(name)
            .and_then(|v| v.as_object())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect())
            .unwrap_or_default()
    };
    let info: BTreeMap<String, String> = r
        .target_info
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "shard_counters" | "read_counters" | "sweep_config"
            )
        })
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let workload = toml::to_string(&r.workload).unwrap_or_else(|e| format!("({e})"));
    let (shards, reads) = (counters("shard_counters"), counters("read_counters"));
    html! {
        details {
            summary { "#" (i) " " (run.ident.label()) " — " (l.path.display()) }
            @for n in &r.notes { p.note { "NOTE: " (n) } }
            p { "command:" }
            pre { (r.command) }
            p { "settings:" }
            (kv(&results::settings(r)))
            @if !info.is_empty() { p { "target facts:" } (kv(&info)) }
            @if !r.errors.is_empty() {
                p { "errors by kind:" }
                (kv(&r.errors.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()))
            }
            @if !shards.is_empty() { p { "shard counters:" } (kv(&shards)) }
            @if !reads.is_empty() { p { "read counters:" } (kv(&reads)) }
            p { "workload:" }
            pre { (workload) }
        }
    }
}

#[cfg(test)]
#[path = "page_tests.rs"]
mod tests;
