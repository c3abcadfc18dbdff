//! Who gets which colour and marker: one colour per value of the swept setting (per
//! workload when nothing else varies), one marker per workload, in the order first seen,
//! so every plot of a sweep draws a configuration the same way; and the legend that
//! names them, drawn beside the data.
use super::Run;
use super::axis::TickAxis;
use crate::loadgen::results::Ident;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Colours of series, in order (Tableau 10; the pale yellow last).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4e, 0x79, 0xa7),
    RGBColor(0xf2, 0x8e, 0x2b),
    RGBColor(0xe1, 0x57, 0x59),
    RGBColor(0x59, 0xa1, 0x4f),
    RGBColor(0xb0, 0x7a, 0xa1),
    RGBColor(0x76, 0xb7, 0xb2),
    RGBColor(0x9c, 0x75, 0x5f),
    RGBColor(0xff, 0x9d, 0xa7),
    RGBColor(0x79, 0x70, 0x6e),
    RGBColor(0xed, 0xc9, 0x48),
];

/// The shape a workload's points are drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A filled circle.
    Circle,
    /// A filled square.
    Square,
    /// A filled triangle.
    Triangle,
    /// A filled diamond.
    Diamond,
    /// A cross.
    Cross,
}

impl Marker {
    /// Every marker, in the order they are handed out.
    pub const ALL: [Marker; 5] = [
        Marker::Circle,
        Marker::Square,
        Marker::Triangle,
        Marker::Diamond,
        Marker::Cross,
    ];

    /// Draws this marker at each point of a chart, `size` pixels from its centre.
    pub fn draw_on<DB: DrawingBackend>(
        self,
        chart: &mut ChartContext<'_, DB, Cartesian2d<TickAxis, TickAxis>>,
        pts: &[(f64, f64)],
        colour: RGBColor,
        size: i32,
    ) -> anyhow::Result<()> {
        let (fill, s, at) = (colour.filled(), size * 4 / 5, pts.iter().copied());
        let drawn = match self {
            Marker::Circle => chart
                .draw_series(at.map(|p| Circle::new(p, size, fill)))
                .map(drop),
            Marker::Square => chart
                .draw_series(
                    at.map(|p| EmptyElement::at(p) + Rectangle::new([(-s, -s), (s, s)], fill)),
                )
                .map(drop),
            Marker::Triangle => chart
                .draw_series(at.map(|p| TriangleMarker::new(p, size + 1, fill)))
                .map(drop),
            Marker::Diamond => chart
                .draw_series(at.map(|p| EmptyElement::at(p) + Polygon::new(diamond(size), fill)))
                .map(drop),
            Marker::Cross => chart
                .draw_series(at.map(|p| Cross::new(p, size, colour.stroke_width(3))))
                .map(drop),
        };
        drawn.map_err(super::err)
    }

    /// Draws this marker at a pixel position (in a legend).
    pub fn draw_px<DB: DrawingBackend>(
        self,
        area: &DrawingArea<DB, Shift>,
        at: (i32, i32),
        colour: RGBColor,
        size: i32,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (fill, s) = (colour.filled(), size * 4 / 5);
        match self {
            Marker::Circle => area.draw(&Circle::new(at, size, fill)),
            Marker::Square => {
                area.draw(&(EmptyElement::at(at) + Rectangle::new([(-s, -s), (s, s)], fill)))
            }
            Marker::Triangle => area.draw(&TriangleMarker::new(at, size + 1, fill)),
            Marker::Diamond => {
                area.draw(&(EmptyElement::at(at) + Polygon::new(diamond(size), fill)))
            }
            Marker::Cross => area.draw(&Cross::new(at, size, colour.stroke_width(3))),
        }
    }
}

/// A diamond's corners around its centre.
fn diamond(size: i32) -> Vec<(i32, i32)> {
    vec![(0, -size - 1), (size, 0), (0, size + 1), (-size, 0)]
}

/// Colours and markers of the runs of one plot (or of every plot of a sweep).
#[derive(Debug, Clone, PartialEq)]
pub struct Styles {
    /// What a colour stands for, in order: settings, or workloads if no setting varies.
    colours: Vec<String>,
    /// Whether colours stand for workloads.
    by_workload: bool,
    /// Workloads in order (a marker each).
    workloads: Vec<String>,
}

impl Styles {
    /// Styles for these runs, handed out in the order first seen.
    pub fn of(runs: &[Run<'_>]) -> Styles {
        let by_workload = runs.iter().all(|r| r.ident.setting.is_empty());
        let mut colours: Vec<String> = Vec::new();
        let mut workloads: Vec<String> = Vec::new();
        for r in runs {
            let key = if by_workload {
                &r.ident.workload
            } else {
                &r.ident.setting
            };
            if !colours.contains(key) {
                colours.push(key.clone());
            }
            if !workloads.contains(&r.ident.workload) {
                workloads.push(r.ident.workload.clone());
            }
        }
        Styles {
            colours,
            by_workload,
            workloads,
        }
    }

    /// The workloads, in order.
    pub fn workloads(&self) -> &[String] {
        &self.workloads
    }

    /// What colours stand for, in order.
    pub fn colour_keys(&self) -> &[String] {
        &self.colours
    }

    /// The colour of a run.
    pub fn colour(&self, id: &Ident) -> RGBColor {
        let key = if self.by_workload {
            &id.workload
        } else {
            &id.setting
        };
        let i = self.colours.iter().position(|c| c == key).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    }

    /// The marker of a workload.
    pub fn marker(&self, workload: &str) -> Marker {
        let i = self
            .workloads
            .iter()
            .position(|w| w == workload)
            .unwrap_or(0);
        Marker::ALL[i % Marker::ALL.len()]
    }

    /// The legend's heading and entries for colours: a setting's name and its values
    /// when one setting varies, else the whole `name=value` lists.
    pub fn colour_legend(&self) -> (String, Vec<String>) {
        if self.by_workload {
            return ("workload".into(), self.colours.clone());
        }
        let split: Vec<Option<(&str, &str)>> =
            self.colours.iter().map(|c| c.split_once('=')).collect();
        let one_name = split
            .iter()
            .all(|s| s.is_some_and(|(n, v)| !v.contains(' ') && Some(n) == split[0].map(|x| x.0)));
        match split.first() {
            Some(Some((name, _))) if one_name => (
                (*name).to_string(),
                split
                    .iter()
                    .flatten()
                    .map(|(_, v)| (*v).to_string())
                    .collect(),
            ),
            _ => ("settings".into(), self.colours.clone()),
        }
    }

    /// Draws the legend into `area` (pixel coordinates): colours, then workload markers.
    pub fn legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let head = ("sans-serif", 15).into_font().style(FontStyle::Bold);
        let text = ("sans-serif", 14).into_font();
        let mut y = 40;
        let (heading, entries) = self.colour_legend();
        area.draw(&Text::new(
            format!("colour: {heading}"),
            (10, y),
            head.clone(),
        ))?;
        for (i, e) in entries.iter().enumerate() {
            y += 22;
            let c = PALETTE[i % PALETTE.len()];
            area.draw(&PathElement::new(
                [(12, y + 7), (36, y + 7)],
                c.stroke_width(3),
            ))?;
            let m = if self.by_workload {
                self.marker(e)
            } else {
                Marker::Circle
            };
            m.draw_px(area, (24, y + 7), c, 5)?;
            area.draw(&Text::new(e.clone(), (44, y), text.clone()))?;
        }
        if self.by_workload {
            return Ok(());
        }
        y += 40;
        area.draw(&Text::new("marker: workload", (10, y), head))?;
        for w in &self.workloads {
            y += 22;
            let grey = RGBColor(0x44, 0x44, 0x44);
            self.marker(w).draw_px(area, (24, y + 7), grey, 6)?;
            area.draw(&Text::new(w.clone(), (44, y), text.clone()))?;
        }
        Ok(())
    }
}
