//! `corepax compare A B`: per configuration and operation, the ratio B/A of throughput,
//! server CPU per operation and each latency percentile, with differences within
//! run-to-run noise marked as such (the way critcmp compares criterion runs).
//!
//! Noise: each side's figure gets a range. With several runs of a configuration on a side
//! the range is their smallest to largest value (the figure is their mean); with one run
//! and its interval log it is the value ± 2·sd/√n of its n per-second values; otherwise
//! the single value. A difference is noise when the two ranges overlap or the ratio is
//! within the threshold (`--threshold`, 5% by default).
use super::plot::axis::fmt_count;
use super::plot::ratio::{RatioPoint, ratios_svg};
use super::report::{BenchResult, fmt_us};
use super::results::{self, ALL_OPS, Ident, Loaded};
use super::stats::Percentiles;
use std::collections::{BTreeMap, BTreeSet};

/// Default threshold under which a ratio counts as noise (5%).
pub const THRESHOLD_DEFAULT: f64 = 0.05;

/// Fewest per-second values from which a spread is estimated.
const INTERVALS_MIN: usize = 3;

/// A figure compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Metric {
    /// Operations per second.
    Throughput,
    /// Server CPU per operation (µs, summed over the servers), for all operations only.
    CpuPerOp,
    /// Median latency.
    P50,
    /// 90th percentile latency.
    P90,
    /// 99th.
    P99,
    /// 99.9th.
    P999,
    /// Largest.
    Max,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 7] = [
        Metric::Throughput,
        Metric::CpuPerOp,
        Metric::P50,
        Metric::P90,
        Metric::P99,
        Metric::P999,
        Metric::Max,
    ];

    /// Its name in tables and plots.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Throughput => "ops/s",
            Metric::CpuPerOp => "CPU/op",
            Metric::P50 => "p50",
            Metric::P90 => "p90",
            Metric::P99 => "p99",
            Metric::P999 => "p99.9",
            Metric::Max => "max",
        }
    }

    /// Whether a larger value is the better one.
    pub fn higher_is_better(self) -> bool {
        self == Metric::Throughput
    }

    /// Its value in one operation's figures (None for CPU, which is per run).
    fn of(self, p: &Percentiles) -> Option<f64> {
        match self {
            Metric::Throughput => Some(p.throughput_per_s),
            Metric::CpuPerOp => None,
            Metric::P50 => Some(p.p50_us),
            Metric::P90 => Some(p.p90_us),
            Metric::P99 => Some(p.p99_us),
            Metric::P999 => Some(p.p999_us),
            Metric::Max => Some(p.max_us),
        }
    }

    /// Its value for operation `op` of a run, if the run has it.
    pub fn value(self, r: &BenchResult, op: &str) -> Option<f64> {
        if self == Metric::CpuPerOp {
            return (op == ALL_OPS && !r.server_cpu.is_empty())
                .then(|| r.server_cpu.iter().map(|c| c.us_per_op).sum());
        }
        let p = results::op(r, op)?;
        (p.count > 0).then(|| self.of(p)).flatten()
    }

    /// A value in this metric's unit.
    pub fn fmt(self, v: f64) -> String {
        match self {
            Metric::Throughput => fmt_count(v),
            Metric::CpuPerOp => format!("{v:.2}µs"),
            _ => fmt_us(v),
        }
    }
}

/// Where a side's range comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Smallest to largest of this many runs.
    Runs(usize),
    /// ± 2·sd/√n of this many per-second values of one run.
    Intervals(usize),
    /// One run, no interval log: no range.
    Unknown,
}

/// One side's figure and its range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The figure (the mean of several runs).
    pub value: f64,
    /// Low end of its range.
    pub lo: f64,
    /// High end.
    pub hi: f64,
    /// Where the range comes from.
    pub spread: Spread,
}

impl Estimate {
    /// The figure with its range as ± percent.
    pub fn fmt(&self, m: Metric) -> String {
        let half = (self.hi - self.lo) / 2.0;
        if self.spread == Spread::Unknown || self.value <= 0.0 {
            m.fmt(self.value)
        } else {
            format!("{} ±{:.0}%", m.fmt(self.value), 100.0 * half / self.value)
        }
    }
}

/// One line of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The configuration (workload and the settings that tell it apart).
    pub config: String,
    /// The operation, or [`ALL_OPS`].
    pub op: String,
    /// What is compared.
    pub metric: Metric,
    /// Side A.
    pub a: Estimate,
    /// Side B.
    pub b: Estimate,
    /// B / A.
    pub ratio: f64,
    /// Whether the difference is within run-to-run noise.
    pub noise: bool,
}

impl Row {
    /// "noise", "better" or "worse" (B against A).
    pub fn verdict(&self) -> &'static str {
        if self.noise {
            "noise"
        } else if (self.ratio > 1.0) == self.metric.higher_is_better() {
            "better"
        } else {
            "worse"
        }
    }
}

/// A whole comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// What A and B were named as, and how many results each held.
    pub sides: [(String, usize); 2],
    /// The noise threshold (a share: 0.05 = 5%).
    pub threshold: f64,
    /// The lines, by configuration, operation and metric.
    pub rows: Vec<Row>,
    /// Configurations found on one side only: (side name, label).
    pub unmatched: Vec<(&'static str, String)>,
}

/// Runs of one side grouped by configuration, in the order first seen.
fn group<'a>(runs: &'a [Loaded], names: &BTreeSet<String>) -> Vec<(Ident, Vec<&'a Loaded>)> {
    let mut out: Vec<(Ident, Vec<&Loaded>)> = Vec::new();
    for l in runs {
        let id = Ident::of(&l.result, names);
        match out.iter_mut().find(|(k, _)| *k == id) {
            Some((_, v)) => v.push(l),
            None => out.push((id, vec![l])),
        }
    }
    out
}

/// One side's estimate of a metric for an operation, from its runs.
fn estimate(m: Metric, op: &str, runs: &[&Loaded]) -> Option<Estimate> {
    let values: Vec<f64> = runs.iter().filter_map(|l| m.value(&l.result, op)).collect();
    if values.len() >= 2 {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        return Some(Estimate {
            value: mean,
            lo,
            hi,
            spread: Spread::Runs(values.len()),
        });
    }
    let value = *values.first()?;
    let per_second: Vec<f64> = runs
        .first()
        .and_then(|l| results::intervals(l))
        .and_then(|mut i| i.remove(op))
        .unwrap_or_default()
        .iter()
        .filter(|p| p.count > 0)
        .filter_map(|p| m.of(p))
        .collect();
    let n = per_second.len();
    if n >= INTERVALS_MIN {
        let mean = per_second.iter().sum::<f64>() / n as f64;
        let var = per_second.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        if mean > 0.0 {
            let rel = 2.0 * var.sqrt() / mean / (n as f64).sqrt();
            return Some(Estimate {
                value,
                lo: value * (1.0 - rel),
                hi: value * (1.0 + rel),
                spread: Spread::Intervals(n),
            });
        }
    }
    Some(Estimate {
        value,
        lo: value,
        hi: value,
        spread: Spread::Unknown,
    })
}

/// The operations compared: all of them together, then each one both sides ran (when
/// there is more than one).
fn ops(a: &[&Loaded], b: &[&Loaded]) -> Vec<String> {
    let names = |runs: &[&Loaded]| -> BTreeSet<String> {
        runs.iter()
            .flat_map(|l| l.result.ops.keys().cloned())
            .collect()
    };
    let both: Vec<String> = names(a).intersection(&names(b)).cloned().collect();
    let mut out = vec![ALL_OPS.to_string()];
    if both.len() > 1 {
        out.extend(both);
    }
    out
}

/// Compares two sides: configurations matched by workload and settings (a side holding
/// one configuration each is matched whatever they are), runs of one configuration on a
/// side taken as repeats.
pub fn compare(
    a: (&str, &[Loaded]),
    b: (&str, &[Loaded]),
    threshold: f64,
) -> anyhow::Result<Comparison> {
    let ra = a.1.iter().map(|l| &l.result);
    let rb = b.1.iter().map(|l| &l.result);
    let mut names = results::varying(ra);
    names.extend(results::varying(rb));
    let (ga, gb) = (group(a.1, &names), group(b.1, &names));
    let mut pairs = Vec::new();
    let mut unmatched = Vec::new();
    if ga.len() == 1 && gb.len() == 1 {
        let (ka, kb) = (ga[0].0.label(), gb[0].0.label());
        let label = if ka == kb {
            ka
        } else {
            format!("{ka} → {kb}")
        };
        pairs.push((label, ga[0].1.clone(), gb[0].1.clone()));
    } else {
        for (k, runs) in &ga {
            match gb.iter().find(|(kb, _)| kb == k) {
                Some((_, runs_b)) => pairs.push((k.label(), runs.clone(), runs_b.clone())),
                None => unmatched.push(("A", k.label())),
            }
        }
        for (k, _) in gb.iter().filter(|(k, _)| !ga.iter().any(|(ka, _)| ka == k)) {
            unmatched.push(("B", k.label()));
        }
    }
    if pairs.is_empty() {
        let labels = |g: &[(Ident, Vec<&Loaded>)]| {
            g.iter()
                .map(|(k, _)| k.label())
                .collect::<Vec<_>>()
                .join("; ")
        };
        anyhow::bail!(
            "A and B share no configuration: A has {}; B has {}",
            labels(&ga),
            labels(&gb)
        );
    }
    let band = 1.0 + threshold.max(0.0);
    let mut rows = Vec::new();
    for (config, runs_a, runs_b) in pairs {
        for op in ops(&runs_a, &runs_b) {
            for metric in Metric::ALL {
                let (Some(ea), Some(eb)) = (
                    estimate(metric, &op, &runs_a),
                    estimate(metric, &op, &runs_b),
                ) else {
                    continue;
                };
                if ea.value <= 0.0 {
                    continue;
                }
                let ratio = eb.value / ea.value;
                let overlap = ea.lo <= eb.hi && eb.lo <= ea.hi;
                let small = ratio <= band && ratio >= 1.0 / band;
                rows.push(Row {
                    config: config.clone(),
                    op: op.clone(),
                    metric,
                    a: ea,
                    b: eb,
                    ratio,
                    noise: overlap || small,
                });
            }
        }
    }
    Ok(Comparison {
        sides: [(a.0.to_string(), a.1.len()), (b.0.to_string(), b.1.len())],
        threshold,
        rows,
        unmatched,
    })
}

impl Comparison {
    /// How noise was decided, in one paragraph for the reader.
    pub fn noise_rule(&self) -> String {
        let mut how: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &self.rows {
            for e in [r.a, r.b] {
                let k = match e.spread {
                    Spread::Runs(_) => "repeated runs (min–max)",
                    Spread::Intervals(_) => "per-second values of the interval log (± 2·sd/√n)",
                    Spread::Unknown => "none (a single run without interval log)",
                };
                *how.entry(k).or_default() += 1;
            }
        }
        let sources: Vec<&str> = how.keys().copied().collect();
        format!(
            "noise: a difference is marked noise when A's and B's ranges overlap or B/A is within ±{:.0}% (--threshold); ranges from: {}",
            100.0 * self.threshold,
            sources.join("; ")
        )
    }

    /// The printed table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for (name, (spec, n)) in ["A", "B"].iter().zip(&self.sides) {
            s += &format!(
                "{name}: {spec} ({n} result{})\n",
                if *n == 1 { "" } else { "s" }
            );
        }
        s += &self.noise_rule();
        s += "\n\n";
        let width = self
            .rows
            .iter()
            .map(|r| r.config.chars().count())
            .max()
            .unwrap_or(0)
            .max("configuration".len());
        s += &format!(
            "{:<width$}  {:<6} {:<7} {:>18} {:>18} {:>7}  {}\n",
            "configuration", "op", "metric", "A", "B", "B/A", "verdict"
        );
        for r in &self.rows {
            s += &format!(
                "{:<width$}  {:<6} {:<7} {:>18} {:>18} {:>7.3}  {}\n",
                r.config,
                r.op,
                r.metric.name(),
                r.a.fmt(r.metric),
                r.b.fmt(r.metric),
                r.ratio,
                r.verdict()
            );
        }
        for (side, label) in &self.unmatched {
            s += &format!("only in {side}: {label}\n");
        }
        s
    }
}

impl Comparison {
    /// The ratios as an SVG plot (one panel per figure).
    pub fn svg(&self) -> anyhow::Result<String> {
        let points: Vec<RatioPoint> = self
            .rows
            .iter()
            .map(|r| RatioPoint {
                line: format!("{} · {}", r.config, r.op),
                metric: r.metric.name(),
                higher_is_better: r.metric.higher_is_better(),
                ratio: r.ratio,
                noise: r.noise,
            })
            .collect();
        ratios_svg(&points, self.threshold)
    }
}

#[cfg(test)]
#[path = "compare_tests.rs"]
mod tests;
