//! Latency against offered load: a sweep with a `rate_per_s` axis runs each configuration
//! open loop (coordinated-omission corrected) at several rates. Each configuration is a
//! colour; its p99 is the thick line, its p50 the thin one, over the offered rate; and
//! each configuration's highest rate that holds a p99 objective is read off the same runs.
use super::axis::{TickAxis, fitted};
use super::{Run, Styles, err, one_chart};
use crate::loadgen::report::BenchResult;
use crate::loadgen::results::{Ident, varying};
use crate::loadgen::workload::LoopMode;
use plotters::prelude::*;

/// The name of the rate setting in a sweep's configurations (`sweep::Config::rate_per_s`).
pub const RATE_SETTING: &str = "rate_per_s";

/// A run counts as keeping up with its offered rate when it completed at least this
/// share of it; above its capacity an open loop completes less and its latency grows
/// without bound.
pub const KEPT_UP_SHARE: f64 = 0.95;

/// Offered rates spanning this factor or more get a log axis.
const RATES_LOG_AXIS_SPAN: f64 = 8.0;

/// The offered rate of an open-loop run (None for a closed loop).
pub fn offered_rate(r: &BenchResult) -> Option<f64> {
    match r.workload.load.mode {
        LoopMode::Open => r.workload.load.rate_per_s,
        LoopMode::Closed => None,
    }
}

/// One configuration at several offered rates.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    /// The configuration without its rate.
    pub ident: Ident,
    /// (offered rate, run), by rate.
    pub points: Vec<(f64, &'a BenchResult)>,
}

impl Series<'_> {
    /// The highest offered rate whose run kept up (see [`KEPT_UP_SHARE`]) with a p99 of at
    /// most `p99_ms`; None if no rate did.
    pub fn highest_rate_within(&self, p99_ms: f64) -> Option<f64> {
        self.points
            .iter()
            .filter(|(rate, r)| {
                r.total.throughput_per_s >= KEPT_UP_SHARE * rate
                    && r.total.p99_us <= p99_ms * 1000.0
            })
            .map(|(rate, _)| *rate)
            .reduce(f64::max)
    }
}

/// The open-loop runs grouped by configuration (everything that varies but the rate), in
/// the order first seen; empty when no run is open loop.
pub fn series<'a>(results: &[&'a BenchResult]) -> Vec<Series<'a>> {
    let open: Vec<&BenchResult> = results
        .iter()
        .copied()
        .filter(|r| offered_rate(r).is_some())
        .collect();
    let mut names = varying(open.iter().copied());
    names.remove(RATE_SETTING);
    let mut out: Vec<Series<'a>> = Vec::new();
    for r in results.iter().copied() {
        let Some(rate) = offered_rate(r) else {
            continue;
        };
        let ident = Ident::of(r, &names);
        match out.iter_mut().find(|s| s.ident == ident) {
            Some(s) => s.points.push((rate, r)),
            None => out.push(Series {
                ident,
                points: vec![(rate, r)],
            }),
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// p50 and p99 (ms) against offered rate, a colour per configuration; None unless some
/// configuration ran at two rates or more.
pub fn latency_vs_load_svg(results: &[&BenchResult]) -> anyhow::Result<Option<String>> {
    let series = series(results);
    if series.iter().all(|s| s.points.len() < 2) {
        return Ok(None);
    }
    let runs: Vec<Run<'_>> = series
        .iter()
        .map(|s| Run {
            ident: s.ident.clone(),
            result: s.points[0].1,
        })
        .collect();
    let styles = Styles::of(&runs);
    let points = || series.iter().flat_map(|s| s.points.iter());
    // Rates a factor apart (5k, 10k, 20k …) read best on a log axis.
    let (lo, hi) = points().fold((f64::INFINITY, 0.0_f64), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let x = if hi >= RATES_LOG_AXIS_SPAN * lo {
        TickAxis::log(fitted(points().map(|p| p.0), true, 0.1))
    } else {
        let x = fitted(points().map(|p| p.0), false, 0.05);
        TickAxis::linear(x.start.max(0.0)..x.end, 6)
    };
    let y = fitted(
        points().flat_map(|(_, r)| [r.total.p50_us / 1000.0, r.total.p99_us / 1000.0]),
        true,
        0.25,
    );
    let caption = "latency against offered load (open loop): p99 thick, p50 thin";
    let descs = ("offered load (requests/s)", "latency");
    let svg = one_chart(caption, (x, TickAxis::log(y)), descs, &styles, |chart| {
        for (s, run) in series.iter().zip(&runs) {
            let colour = styles.colour(&run.ident);
            let marker = styles.marker(&run.ident.workload);
            for (pick, width, size) in [(p99_ms as fn(&BenchResult) -> f64, 3, 6), (p50_ms, 1, 4)] {
                let pts: Vec<(f64, f64)> = s.points.iter().map(|(x, r)| (*x, pick(r))).collect();
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().copied(),
                        colour.stroke_width(width),
                    ))
                    .map_err(err)?;
                marker.draw_on(chart, &pts, colour, size)?;
            }
        }
        Ok(())
    })?;
    Ok(Some(svg))
}

fn p99_ms(r: &BenchResult) -> f64 {
    r.total.p99_us / 1000.0
}

fn p50_ms(r: &BenchResult) -> f64 {
    r.total.p50_us / 1000.0
}
