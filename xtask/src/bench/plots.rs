//! SVG plots of a section's `group/series/N` rows (N = concurrency): per
//! group, ops/s against concurrency and the p50/p99 latencies, one line per
//! series, so ours is drawn beside the floor and the peers of the same group.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::sections::Row;

/// (series, [(N, ops/s, p50, p99)]) of one group.
type Series = Vec<(String, Vec<(f64, f64, Option<f64>, Option<f64>)>)>;

/// One line of a chart: (label, points (x, y), drawn thin).
type Line = (String, Vec<(f64, f64)>, bool);

/// Rows named `group/series/N`, grouped.
fn groups(rows: &[Row]) -> BTreeMap<String, Series> {
    let mut out: BTreeMap<String, Series> = BTreeMap::new();
    for r in rows {
        let parts: Vec<&str> = r.name.split('/').collect();
        let [group, series, n] = parts[..] else {
            continue;
        };
        let Ok(n) = n.parse::<f64>() else { continue };
        let list = out.entry(group.to_owned()).or_default();
        let point = (n, r.ops_per_s, r.p50_us, r.p99_us);
        match list.iter_mut().find(|(s, _)| s == series) {
            Some((_, points)) => points.push(point),
            None => list.push((series.to_owned(), vec![point])),
        }
    }
    // A series of one point makes no line; keep groups with some line.
    out.retain(|_, series| series.iter().any(|(_, p)| p.len() > 1));
    out
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    COLORS[i % COLORS.len()]
}

/// Draws one chart: x = concurrency (log), y (log) from `pick`; one line
/// per (label, points).
fn chart(path: &Path, title: &str, y_label: &str, lines: &[Line]) -> Result<()> {
    let ys: Vec<f64> = lines
        .iter()
        .flat_map(|(_, p, _)| p.iter().map(|(_, y)| *y))
        .filter(|y| *y > 0.0)
        .collect();
    let xs: Vec<f64> = lines
        .iter()
        .flat_map(|(_, p, _)| p.iter().map(|(x, _)| *x))
        .collect();
    if ys.is_empty() {
        return Ok(());
    }
    let (ymin, ymax) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(*y), b.max(*y)));
    let xmax = xs.iter().copied().fold(1.0, f64::max);
    let mut ticks: Vec<f64> = xs.clone();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            // Room on the right for the legend, clear of the lines.
            (0.8f64..xmax * 6.0).log_scale().with_key_points(ticks),
            (ymin / 1.5..ymax * 1.5).log_scale(),
        )
        .map_err(e)?;
    c.configure_mesh()
        .x_desc("concurrent tasks / processes")
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(e)?;
    for (i, (label, points, thin)) in lines.iter().enumerate() {
        let col = color(i / if lines.iter().any(|l| l.2) { 2 } else { 1 });
        let style = if *thin {
            col.mix(0.55).stroke_width(1)
        } else {
            col.stroke_width(2)
        };
        let pts: Vec<(f64, f64)> = points.iter().copied().filter(|(_, y)| *y > 0.0).collect();
        c.draw_series(LineSeries::new(pts.clone(), style))
            .map_err(e)?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        c.draw_series(pts.iter().map(|p| Circle::new(*p, 3, col.filled())))
            .map_err(e)?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Writes a section's plots into `dir`; returns their file names.
pub fn section(dir: &Path, bench: &str, rows: &[Row]) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for (group, series) in groups(rows) {
        let ops: Vec<Line> = series
            .iter()
            .map(|(s, p)| {
                (
                    s.clone(),
                    p.iter().map(|(n, o, _, _)| (*n, *o)).collect(),
                    false,
                )
            })
            .collect();
        let name = format!("{bench}-{group}-ops.svg");
        chart(
            &dir.join(&name),
            &format!("{bench}: {group}, ops/s (higher is better)"),
            "ops/s",
            &ops,
        )?;
        files.push(name);
        let mut lat: Vec<Line> = Vec::new();
        for (s, p) in &series {
            if p.iter().all(|(_, _, p50, _)| p50.is_none()) {
                continue;
            }
            lat.push((
                format!("{s} p50"),
                p.iter()
                    .filter_map(|(n, _, p50, _)| p50.map(|v| (*n, v)))
                    .collect(),
                false,
            ));
            lat.push((
                format!("{s} p99"),
                p.iter()
                    .filter_map(|(n, _, _, p99)| p99.map(|v| (*n, v)))
                    .collect(),
                true,
            ));
        }
        if !lat.is_empty() {
            let name = format!("{bench}-{group}-latency.svg");
            chart(
                &dir.join(&name),
                &format!("{bench}: {group}, latency p50 (bold) and p99 (thin), µs"),
                "µs",
                &lat,
            )?;
            files.push(name);
        }
    }
    Ok(files)
}
