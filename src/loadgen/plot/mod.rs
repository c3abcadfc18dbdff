//! SVG plots of results (plotters) that explain themselves: every series named in a
//! legend beside the data, one colour per value of the swept setting and one marker per
//! workload (the same in every plot of a sweep), human ticks, axes fitted to the data,
//! and one panel per workload when one chart would hold too many lines.
//!
//! - [`throughput_vs_p99_svg`]: each run a point, throughput against p99.
//! - [`latency_curves_svg`]: latency by percentile, p50 … p99.99 and max.
//! - [`load::latency_vs_load_svg`]: p50 and p99 against offered load (rate sweeps).
//! - [`ratio`]: the before/after plot of `corepax compare`; [`axis`]: ticks and labels.
pub mod axis;
pub mod load;
pub mod ratio;
mod style;

use super::report::BenchResult;
use super::results::Ident;
use axis::{MAX_AT, PERCENTILES, TickAxis, fitted, fmt_count, fmt_ms, nines, percentile_label};
use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::prelude::*;
pub use style::{Marker, Styles};

/// Lines one chart holds before the plot splits into one panel per workload.
pub const SERIES_PER_CHART_MAX: usize = 6;

/// Width of the legend beside a plot, in pixels.
const LEGEND_PX: u32 = 260;

/// One run to plot: what tells it apart from the others, and its result.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// Workload and settings.
    pub ident: Ident,
    /// The result.
    pub result: &'a BenchResult,
}

/// Runs shown together, each told apart by the settings that vary among them.
pub fn runs<'a>(results: &[&'a BenchResult]) -> Vec<Run<'a>> {
    super::results::idents(results)
        .into_iter()
        .zip(results.iter().copied())
        .map(|(ident, result)| Run { ident, result })
        .collect()
}

/// The grid every chart here uses: light grey lines at the ticks only, labels of
/// `font_px`.
fn mesh<'a, 'b, DB: DrawingBackend>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<TickAxis, TickAxis>>,
    font_px: u32,
) -> MeshStyle<'a, 'b, TickAxis, TickAxis, DB> {
    let mut m = chart.configure_mesh();
    m.light_line_style(WHITE)
        .bold_line_style(RGBColor(0xe4, 0xe4, 0xe4))
        .label_style(("sans-serif", font_px));
    m
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// The points of a run's latency curve: (percentile position, ms), max last.
pub fn curve(r: &BenchResult) -> Vec<(f64, f64)> {
    let t = &r.total;
    let vals = [t.p50_us, t.p90_us, t.p99_us, t.p999_us, t.p9999_us];
    PERCENTILES
        .iter()
        .zip(vals)
        .map(|((_, q), v)| (nines(*q), v / 1000.0))
        .chain([(MAX_AT, t.max_us / 1000.0)])
        .filter(|(_, ms)| *ms > 0.0)
        .collect()
}

/// Each run a point: total throughput (x) against p99 latency (y, log).
pub fn throughput_vs_p99_svg(runs: &[Run<'_>]) -> anyhow::Result<String> {
    let styles = Styles::of(runs);
    let pts: Vec<(f64, f64, &Run)> = runs
        .iter()
        .filter(|r| r.result.total.count > 0)
        .map(|r| {
            (
                r.result.total.throughput_per_s,
                r.result.total.p99_us / 1000.0,
                r,
            )
        })
        .collect();
    let x = fitted(pts.iter().map(|p| p.0), false, 0.08);
    let x = x.start.max(0.0)..x.end;
    let y = fitted(pts.iter().map(|p| p.1), true, 0.25);
    let axes = (TickAxis::linear(x, 6), TickAxis::log(y));
    let caption = "throughput against p99 latency (each run a point)";
    let descs = ("throughput (ops/s)", "p99 latency");
    one_chart(caption, axes, descs, &styles, |chart| {
        for (x, y, r) in &pts {
            let marker = styles.marker(&r.ident.workload);
            marker.draw_on(chart, &[(*x, *y)], styles.colour(&r.ident), 7)?;
        }
        Ok(())
    })
}

/// A chart of its own with the legend beside it: `caption`, the axes (x read as a count,
/// y as a latency in ms) and their descriptions; `draw` puts the data on it.
fn one_chart(
    caption: &str,
    (x, y): (TickAxis, TickAxis),
    (x_desc, y_desc): (&str, &str),
    styles: &Styles,
    draw: impl FnOnce(
        &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<TickAxis, TickAxis>>,
    ) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000 + LEGEND_PX, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (plot, legend) = root.split_horizontally(1000);
        let mut chart = ChartBuilder::on(&plot)
            .caption(caption, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(70)
            .build_cartesian_2d(x, y)
            .map_err(err)?;
        mesh(&mut chart, 14)
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|v| fmt_count(*v))
            .y_label_formatter(&|v| fmt_ms(*v))
            .draw()
            .map_err(err)?;
        draw(&mut chart)?;
        styles.legend(&legend).map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Latency by percentile (p50 … p99.99, then max; log scale), one line per run; one
/// panel per workload when there are more than [`SERIES_PER_CHART_MAX`] runs.
pub fn latency_curves_svg(runs: &[Run<'_>]) -> anyhow::Result<String> {
    let styles = Styles::of(runs);
    let curves: Vec<(Vec<(f64, f64)>, &Run)> = runs
        .iter()
        .map(|r| (curve(r.result), r))
        .filter(|(c, _)| !c.is_empty())
        .collect();
    let y = fitted(
        curves.iter().flat_map(|c| c.0.iter().map(|p| p.1)),
        true,
        0.2,
    );
    let panels: Vec<&str> = if curves.len() > SERIES_PER_CHART_MAX && styles.workloads().len() > 1 {
        styles.workloads().iter().map(String::as_str).collect()
    } else {
        vec![""]
    };
    let cols = panels.len().min(3);
    let rows = panels.len().div_ceil(cols);
    let (w, h) = (
        1000,
        if panels.len() == 1 {
            600
        } else {
            60 + 420 * rows as u32
        },
    );
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w + LEGEND_PX, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (plot, legend) = root.split_horizontally(w);
        let plot = plot
            .titled("latency by percentile", ("sans-serif", 20))
            .map_err(err)?;
        for (workload, area) in panels.iter().zip(plot.split_evenly((rows, cols))) {
            let mine: Vec<_> = curves
                .iter()
                .filter(|(_, r)| workload.is_empty() || r.ident.workload == *workload)
                .collect();
            panel(&area, workload, &mine, &styles, y.clone())?;
        }
        styles.legend(&legend).map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// One chart of latency curves (`title` names its workload, "" when all are in it).
fn panel(
    area: &Area<'_>,
    title: &str,
    curves: &[&(Vec<(f64, f64)>, &Run<'_>)],
    styles: &Styles,
    y: std::ops::Range<f64>,
) -> anyhow::Result<()> {
    let mut b = ChartBuilder::on(area);
    if !title.is_empty() {
        b.caption(format!("workload {title}"), ("sans-serif", 16));
    }
    let mut chart = b
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(TickAxis::percentiles(), TickAxis::log(y))
        .map_err(err)?;
    mesh(&mut chart, 13)
        .x_desc("percentile")
        .y_desc("latency")
        .x_label_formatter(&|v| percentile_label(*v).to_string())
        .y_label_formatter(&|v| fmt_ms(*v))
        .draw()
        .map_err(err)?;
    for (pts, run) in curves {
        let colour = styles.colour(&run.ident);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
            .map_err(err)?;
        let marker = styles.marker(&run.ident.workload);
        marker.draw_on(&mut chart, pts, colour, 5)?;
    }
    Ok(())
}

/// Writes a sweep's plots into `dir`: `throughput-vs-p99.svg`,
/// `latency-percentiles.svg`, and `latency-vs-load.svg` when configurations ran open loop
/// at several rates.
pub fn write_sweep_plots(dir: &std::path::Path, runs: &[Run<'_>]) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("throughput-vs-p99.svg"),
        throughput_vs_p99_svg(runs)?,
    )?;
    std::fs::write(
        dir.join("latency-percentiles.svg"),
        latency_curves_svg(runs)?,
    )?;
    let results: Vec<&BenchResult> = runs.iter().map(|r| r.result).collect();
    if let Some(svg) = load::latency_vs_load_svg(&results)? {
        std::fs::write(dir.join("latency-vs-load.svg"), svg)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
