//! Axes that read at a glance: tick positions chosen here (1-2-5 steps, decades, the
//! percentiles p50 … p99.99 and max) and labels in human units (100k, 1.5M; 500µs, 2ms).
//! Pure functions, apart from the plotters coordinate that draws them.
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use std::ops::Range;

/// Percentiles on a latency-by-percentile axis: label and quantile.
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

/// Where the maximum sits on the percentile axis: one step beyond p99.99.
pub const MAX_AT: f64 = 5.0;

/// Position of a quantile on the percentile axis, in "nines" (p90 = 1, p99 = 2, …), as
/// HdrHistogram plots it.
pub fn nines(q: f64) -> f64 {
    -(1.0 - q).log10()
}

/// The percentile axis' ticks: (position, label), p50 … p99.99, then max.
pub fn percentile_ticks() -> Vec<(f64, &'static str)> {
    let mut t: Vec<(f64, &str)> = PERCENTILES.iter().map(|(l, q)| (nines(*q), *l)).collect();
    t.push((MAX_AT, "max"));
    t
}

/// The label of a percentile axis position ("" between ticks).
pub fn percentile_label(x: f64) -> &'static str {
    percentile_ticks()
        .into_iter()
        .find(|(p, _)| (p - x).abs() < 1e-6)
        .map_or("", |(_, l)| l)
}

/// A number without trailing zeros, at most two decimals: 1.50 → "1.5", 2.00 → "2".
fn short(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// A count or rate with k / M / G: 100000 → "100k", 1500000 → "1.5M", 250 → "250".
pub fn fmt_count(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{}G", short(v / 1e9))
    } else if a >= 1e6 {
        format!("{}M", short(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", short(v / 1e3))
    } else {
        short(v)
    }
}

/// A latency given in milliseconds, in the unit that keeps it short: 0.5 → "500µs",
/// 2 → "2ms", 1500 → "1.5s".
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{}s", short(ms / 1000.0))
    } else if ms >= 1.0 {
        format!("{}ms", short(ms))
    } else {
        format!("{}µs", short(ms * 1000.0))
    }
}

/// A ratio as a multiplier: 1.25 → "1.25×".
pub fn fmt_ratio(r: f64) -> String {
    format!("{}×", short(r))
}

/// Ticks of a linear axis from `lo` to `hi`: multiples of a 1-2-5 step, about `n` of them.
pub fn linear_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Ticks of a log axis from `lo` to `hi` (both > 0): 1-2-5 of every decade when the
/// range spans few decades, decades alone when it spans many.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo) {
        return vec![lo];
    }
    let decades = (hi / lo).log10();
    let mults: &[f64] = if decades > 4.0 {
        &[1.0]
    } else if decades > 1.5 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0]
    };
    let mut out = Vec::new();
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    for e in first..=last {
        for m in mults {
            let v = m * 10f64.powi(e);
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                out.push(v);
            }
        }
    }
    out
}

/// A range fitted to values (all > 0 for a log axis): the smallest and largest padded by
/// `pad` (a share of the span, or a factor on a log axis); a single value gets room
/// around it.
pub fn fitted(values: impl IntoIterator<Item = f64>, log: bool, pad: f64) -> Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values
        .into_iter()
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
    {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return if log { 0.1..10.0 } else { 0.0..1.0 };
    }
    if log {
        let f = 1.0 + pad.max(0.01);
        lo / f..hi * f
    } else {
        let span = if hi > lo { hi - lo } else { hi.abs().max(1.0) };
        (lo - span * pad)..(hi + span * pad)
    }
}

/// A plotters coordinate with the ticks given (linear or log mapping).
#[derive(Debug, Clone)]
pub struct TickAxis {
    range: Range<f64>,
    log: bool,
    ticks: Vec<f64>,
}

impl TickAxis {
    /// Linear axis over `range` with about `n` 1-2-5 ticks.
    pub fn linear(range: Range<f64>, n: usize) -> TickAxis {
        let ticks = linear_ticks(range.start, range.end, n);
        TickAxis {
            range,
            log: false,
            ticks,
        }
    }

    /// Log axis over `range` (> 0).
    pub fn log(range: Range<f64>) -> TickAxis {
        let ticks = log_ticks(range.start, range.end);
        TickAxis {
            range,
            log: true,
            ticks,
        }
    }

    /// An axis with the ticks given.
    pub fn with_ticks(range: Range<f64>, log: bool, ticks: Vec<f64>) -> TickAxis {
        TickAxis { range, log, ticks }
    }

    /// The percentile axis: p50 … p99.99 and max, in nines.
    pub fn percentiles() -> TickAxis {
        TickAxis {
            range: 0.0..MAX_AT + 0.25,
            log: false,
            ticks: percentile_ticks().into_iter().map(|(p, _)| p).collect(),
        }
    }

    fn unit(&self, v: f64) -> f64 {
        let (a, b) = (self.range.start, self.range.end);
        if self.log {
            (v.max(f64::MIN_POSITIVE).ln() - a.ln()) / (b.ln() - a.ln())
        } else {
            (v - a) / (b - a)
        }
    }
}

impl Ranged for TickAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let u = self.unit(*value);
        let u = if u.is_finite() {
            u.clamp(-1.0, 2.0)
        } else {
            0.0
        };
        limit.0 + (u * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            return Vec::new();
        }
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_latencies_read_in_human_units() {
        assert_eq!(fmt_count(100_000.0), "100k");
        assert_eq!(fmt_count(1_000_000.0), "1M");
        assert_eq!(fmt_count(1_500_000.0), "1.5M");
        assert_eq!(fmt_count(250.0), "250");
        assert_eq!(fmt_count(0.0), "0");
        assert_eq!(fmt_ms(0.5), "500µs");
        assert_eq!(fmt_ms(2.0), "2ms");
        assert_eq!(fmt_ms(12.5), "12.5ms");
        assert_eq!(fmt_ms(1500.0), "1.5s");
        assert_eq!(fmt_ratio(1.25), "1.25×");
    }

    #[test]
    fn the_percentile_axis_is_labelled_p50_to_max() {
        let labels: Vec<&str> = percentile_ticks().iter().map(|t| t.1).collect();
        assert_eq!(labels, ["p50", "p90", "p99", "p99.9", "p99.99", "max"]);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(percentile_label(nines(0.999)), "p99.9");
        assert_eq!(percentile_label(MAX_AT), "max");
        assert_eq!(percentile_label(1.5), "");
    }

    #[test]
    fn ticks_are_round_and_inside_the_range() {
        assert_eq!(
            linear_ticks(0.0, 500_000.0, 5),
            [0.0, 1e5, 2e5, 3e5, 4e5, 5e5]
        );
        assert_eq!(
            linear_ticks(72_000.0, 560_000.0, 5),
            [1e5, 2e5, 3e5, 4e5, 5e5]
        );
        assert_eq!(
            log_ticks(0.4, 600.0),
            [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0]
        );
        assert_eq!(
            log_ticks(0.01, 1e5),
            [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 1e4, 1e5]
        );
    }

    #[test]
    fn ranges_fit_the_data() {
        let r = fitted([2.0, 300.0], true, 0.2);
        assert!(
            r.start > 1.6 && r.start < 2.0 && r.end > 300.0 && r.end < 400.0,
            "{r:?}"
        );
        let r = fitted([100.0, 200.0], false, 0.1);
        assert_eq!(r, 90.0..210.0);
        assert_eq!(fitted([], true, 0.2), 0.1..10.0);
    }
}
