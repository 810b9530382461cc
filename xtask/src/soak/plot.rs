//! The report's SVG: requests answered per second and their p99 latency
//! over the run, one point a second, with each fault drawn as a shaded
//! band from its injection to its heal (plotters, as the bench report).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::history::{Fault, Op};

/// Per second of the load: (second, answered, p99 ms of those answered).
pub(crate) fn per_second(ops: &[Op], duration_ms: f64) -> Vec<(f64, f64, f64)> {
    let seconds = (duration_ms / 1000.0).ceil().max(1.0) as usize;
    let mut buckets: Vec<Vec<f64>> = vec![Vec::new(); seconds];
    for op in ops.iter().filter(|o| o.client != "sweep") {
        let s = (op.end_ms / 1000.0) as usize;
        if let Some(b) = buckets.get_mut(s) {
            b.push(op.end_ms - op.start_ms);
        }
    }
    buckets
        .into_iter()
        .enumerate()
        .map(|(s, mut lat)| {
            lat.sort_by(f64::total_cmp);
            let p99 = if lat.is_empty() {
                0.0
            } else {
                lat[((lat.len() as f64 * 0.99).ceil() as usize)
                    .saturating_sub(1)
                    .min(lat.len() - 1)]
            };
            (s as f64, lat.len() as f64, p99)
        })
        .collect()
}

/// Draws the plot into `path`.
pub(crate) fn draw(path: &Path, points: &[(f64, f64, f64)], faults: &[Fault]) -> Result<()> {
    let e = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e:?}", path.display());
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let (top, bottom) = root.split_vertically(320);
    let xmax = points.last().map_or(1.0, |p| p.0 + 1.0);
    let draw_one = |area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
                    title: &str,
                    y_desc: &str,
                    pick: &dyn Fn(&(f64, f64, f64)) -> f64,
                    color: RGBColor|
     -> Result<()> {
        let ymax = points.iter().map(pick).fold(1.0, f64::max) * 1.15;
        let mut c = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)
            .map_err(e)?;
        c.configure_mesh()
            .x_desc("seconds since start")
            .y_desc(y_desc)
            .draw()
            .map_err(e)?;
        for f in faults {
            let band = Rectangle::new(
                [(f.start_ms / 1000.0, 0.0), (f.end_ms / 1000.0, ymax)],
                RGBColor(214, 39, 40).mix(0.18).filled(),
            );
            c.draw_series(std::iter::once(band)).map_err(e)?;
            let label = Text::new(
                f.kind.clone(),
                (f.start_ms / 1000.0, ymax * 0.97),
                ("sans-serif", 11).into_font().color(&RGBColor(140, 20, 20)),
            );
            c.draw_series(std::iter::once(label)).map_err(e)?;
        }
        c.draw_series(LineSeries::new(
            points.iter().map(|p| (p.0, pick(p))),
            color.stroke_width(2),
        ))
        .map_err(e)?;
        Ok(())
    };
    draw_one(
        &top,
        "requests answered per second (faults shaded)",
        "ops/s",
        &|p| p.1,
        RGBColor(31, 119, 180),
    )?;
    draw_one(
        &bottom,
        "p99 latency per second, ms (faults shaded)",
        "ms",
        &|p| p.2,
        RGBColor(255, 127, 14),
    )?;
    root.present().map_err(e)?;
    Ok(())
}
