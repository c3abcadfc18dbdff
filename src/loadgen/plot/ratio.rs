//! The before/after plot of `corepax compare`: one panel per figure (throughput, CPU per
//! operation, each percentile), one line per configuration and operation, a bar from 1×
//! to the ratio B/A: green when B is better, red when worse, grey when within noise
//! (the grey band is the threshold).
use super::axis::{TickAxis, fitted, fmt_ratio};
use super::err;
use plotters::prelude::*;

/// One ratio to draw.
#[derive(Debug, Clone)]
pub struct RatioPoint {
    /// Configuration and operation (a line of the panel).
    pub line: String,
    /// The figure (a panel), e.g. "p99".
    pub metric: &'static str,
    /// Whether larger values of this figure are better.
    pub higher_is_better: bool,
    /// B / A.
    pub ratio: f64,
    /// Within noise.
    pub noise: bool,
}

/// Pixel height of one line of a panel.
const LINE_PX: u32 = 22;
/// Pixel height a panel needs besides its lines (caption, axis).
const PANEL_PX: u32 = 70;
/// Width of the whole plot.
const WIDTH_PX: u32 = 900;

const GREEN: RGBColor = RGBColor(0x2e, 0x8b, 0x57);
const RED: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
const GREY: RGBColor = RGBColor(0x99, 0x99, 0x99);

/// Draws the ratios as SVG; `threshold` is the share within which a ratio is noise.
pub fn ratios_svg(points: &[RatioPoint], threshold: f64) -> anyhow::Result<String> {
    let mut metrics: Vec<&str> = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    for p in points {
        if !metrics.contains(&p.metric) {
            metrics.push(p.metric);
        }
        if !lines.contains(&p.line.as_str()) {
            lines.push(&p.line);
        }
    }
    let band = 1.0 + threshold.max(0.0);
    let x = fitted(
        points.iter().map(|p| p.ratio).chain([1.0 / band, band]),
        true,
        0.08,
    );
    let axis = || {
        if x.end / x.start < 2.0 {
            TickAxis::linear(x.clone(), 6)
        } else {
            TickAxis::log(x.clone())
        }
    };
    let n = lines.len().max(1);
    let panel_h = PANEL_PX + LINE_PX * n as u32;
    let label_px = lines.iter().map(|l| l.chars().count()).max().unwrap_or(4) as u32 * 8 + 16;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(
            &mut svg,
            (WIDTH_PX, 30 + panel_h * metrics.len().max(1) as u32),
        )
        .into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let title = format!(
            "B/A: green = B better, red = B worse, grey = within noise (band: ±{:.0}%)",
            100.0 * threshold
        );
        let root = root.titled(&title, ("sans-serif", 15)).map_err(err)?;
        let panels = root.split_evenly((metrics.len().max(1), 1));
        for (metric, area) in metrics.iter().zip(panels) {
            let better = points
                .iter()
                .find(|p| p.metric == *metric)
                .is_some_and(|p| p.higher_is_better);
            let caption = format!(
                "{metric}: B/A ({} is better)",
                if better { "right" } else { "left" }
            );
            let y = TickAxis::with_ticks(
                -0.5..n as f64 - 0.5,
                false,
                (0..n).map(|i| i as f64).collect(),
            );
            let mut chart = ChartBuilder::on(&area)
                .caption(caption, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(24)
                .y_label_area_size(label_px.min(WIDTH_PX / 2))
                .build_cartesian_2d(axis(), y)
                .map_err(err)?;
            super::mesh(&mut chart, 13)
                .x_label_formatter(&|v| fmt_ratio(*v))
                .y_label_formatter(&|v| {
                    let i = v.round() as usize;
                    // Line 0 at the top.
                    lines
                        .get(n - 1 - i.min(n - 1))
                        .map_or(String::new(), |l| l.to_string())
                })
                .draw()
                .map_err(err)?;
            chart
                .draw_series([Rectangle::new(
                    [(1.0 / band, -0.5), (band, n as f64 - 0.5)],
                    GREY.mix(0.15).filled(),
                )])
                .map_err(err)?;
            chart
                .draw_series([PathElement::new(
                    [(1.0, -0.5), (1.0, n as f64 - 0.5)],
                    BLACK.stroke_width(1),
                )])
                .map_err(err)?;
            for p in points.iter().filter(|p| p.metric == *metric) {
                let Some(i) = lines.iter().position(|l| *l == p.line) else {
                    continue;
                };
                let yv = (n - 1 - i) as f64;
                let colour = if p.noise {
                    GREY
                } else if (p.ratio > 1.0) == p.higher_is_better {
                    GREEN
                } else {
                    RED
                };
                chart
                    .draw_series([PathElement::new(
                        [(1.0, yv), (p.ratio, yv)],
                        colour.stroke_width(5),
                    )])
                    .map_err(err)?;
                chart
                    .draw_series([Circle::new((p.ratio, yv), 5, colour.filled())])
                    .map_err(err)?;
                let text = if p.noise {
                    format!("{} (noise)", fmt_ratio(p.ratio))
                } else {
                    fmt_ratio(p.ratio)
                };
                chart
                    .draw_series([Text::new(text, (p.ratio, yv + 0.42), ("sans-serif", 12))])
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}
