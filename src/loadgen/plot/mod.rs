//! SVG plots of sweep results (plotters): throughput against p99, and latency
//! percentile curves per configuration.
pub mod axis;
pub mod ratio;

use super::report::BenchResult;
use plotters::prelude::*;
use std::path::Path;

/// Percentiles plotted on the curves, as "nines" (x = -log10(1 - q)).
const CURVE_QUANTILES: [f64; 6] = [0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999];

/// One configuration of a sweep: its label and its result (None when it failed; it keeps
/// its number `#i` all the same).
pub type Labelled<'a> = (String, Option<&'a BenchResult>);

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// Scatter of total throughput (x, ops/s) against p99 latency (y, ms).
pub fn throughput_vs_p99(path: &Path, rows: &[Labelled<'_>]) -> anyhow::Result<()> {
    let pts: Vec<(f64, f64, String)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, (_, result))| {
            result.map(|res| {
                (
                    res.total.throughput_per_s,
                    res.total.p99_us / 1000.0,
                    format!("#{i}"),
                )
            })
        })
        .collect();
    let xmax = pts.iter().map(|p| p.0).fold(1.0, f64::max) * 1.15;
    let ymax = pts.iter().map(|p| p.1).fold(0.001, f64::max) * 1.15;
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("throughput vs p99 latency", ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("throughput (ops/s)")
        .y_desc("p99 latency (ms)")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(
            pts.iter()
                .map(|(x, y, _)| Circle::new((*x, *y), 5, BLUE.filled())),
        )
        .map_err(err)?;
    chart
        .draw_series(
            pts.iter()
                .map(|(x, y, l)| Text::new(l.clone(), (*x, *y), ("sans-serif", 14))),
        )
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One line per configuration: latency (ms, log scale) at p50 … p99.999 (x in nines).
pub fn latency_curves(path: &Path, rows: &[Labelled<'_>]) -> anyhow::Result<()> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, (label, result))| {
            let t = &(*result)?.total;
            let vals = [
                t.p50_us, t.p90_us, t.p99_us, t.p999_us, t.p9999_us, t.max_us,
            ];
            let pts = CURVE_QUANTILES
                .iter()
                .zip(vals)
                .map(|(q, v)| (-(1.0 - q).log10(), (v / 1000.0).max(0.001)))
                .collect();
            Some((format!("#{i} {label}"), pts))
        })
        .collect();
    let ymax = curves
        .iter()
        .flat_map(|c| c.1.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 2.0;
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "latency by percentile (last point: max)",
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..5.2, (0.001..ymax).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile (nines: 1 = p90, 2 = p99, 3 = p99.9 ...)")
        .y_desc("latency (ms)")
        .draw()
        .map_err(err)?;
    for (i, (label, pts)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
