//! SVG plots (plotters, SVG backend only): fan-out latency percentiles against offered load,
//! and idle memory per connection.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::peer::PeerKind;
use crate::scenarios::fanout::FanoutResult;
use crate::scenarios::idle::IdleResult;

fn color(k: PeerKind) -> RGBColor {
    match k {
        PeerKind::Baseline => RGBColor(120, 120, 120),
        PeerKind::Ours => RGBColor(31, 119, 180),
        PeerKind::Sockudo => RGBColor(214, 39, 40),
        PeerKind::OursPusher => RGBColor(44, 160, 44),
    }
}

fn e<E: std::fmt::Display>(err: E) -> anyhow::Error {
    anyhow!("plot: {err}")
}

/// `fanout-<subs>.svg` for every subscriber count: p50 (dashed) and p99 (solid) latency
/// against achieved deliveries/s, one colour per peer, log-scale latency.
pub fn fanout(r: &FanoutResult, dir: &Path) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let mut subs: Vec<usize> = r.rows.iter().map(|x| x.subscribers).collect();
    subs.sort_unstable();
    subs.dedup();
    for s in subs {
        let rows: Vec<_> = r.rows.iter().filter(|x| x.subscribers == s).collect();
        let max_x = rows.iter().map(|x| x.achieved_dps).fold(1.0, f64::max) * 1.1;
        let max_y = rows
            .iter()
            .map(|x| x.latency.p99_ms)
            .fold(1.0, f64::max)
            .max(25.0)
            * 1.5;
        let min_y = rows
            .iter()
            .map(|x| x.latency.p50_ms)
            .fold(f64::INFINITY, f64::min)
            .clamp(0.01, 1.0)
            / 1.5;
        let name = format!("fanout-{s}.svg");
        let path = dir.join(&name);
        let root = SVGBackend::new(&path, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Fan-out, 1 channel × {s} subscribers: latency vs deliveries/s"),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_x, (min_y..max_y).log_scale())
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("achieved deliveries/s")
            .y_desc("latency, ms (p50 dashed, p99 solid)")
            .x_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, r.slo_p99_ms), (max_x, r.slo_p99_ms)],
                BLACK.mix(0.3),
            ))
            .map_err(e)?
            .label(format!("p99 SLO {} ms", r.slo_p99_ms))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.3)));
        for kind in [
            PeerKind::Baseline,
            PeerKind::Ours,
            PeerKind::OursPusher,
            PeerKind::Sockudo,
        ] {
            let pts: Vec<_> = rows.iter().filter(|x| x.peer == kind).collect();
            if pts.is_empty() {
                continue;
            }
            let c = color(kind);
            let p99: Vec<(f64, f64)> = pts
                .iter()
                .map(|x| (x.achieved_dps, x.latency.p99_ms.max(min_y)))
                .collect();
            let p50: Vec<(f64, f64)> = pts
                .iter()
                .map(|x| (x.achieved_dps, x.latency.p50_ms.max(min_y)))
                .collect();
            chart
                .draw_series(LineSeries::new(p99.clone(), c.stroke_width(2)))
                .map_err(e)?
                .label(format!("{} p99", kind.name()))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(p99.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(e)?;
            chart
                .draw_series(DashedLineSeries::new(p50, 4, 4, c.stroke_width(1)))
                .map_err(e)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
        written.push(name);
    }
    Ok(written)
}

/// `idle-memory.svg`: server RSS per idle connection, one bar per peer.
pub fn idle(r: &IdleResult, dir: &Path) -> Result<Vec<String>> {
    if r.rows.is_empty() {
        return Ok(Vec::new());
    }
    let name = "idle-memory.svg".to_owned();
    let path = dir.join(&name);
    let root = SVGBackend::new(&path, (700, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let max_y = r
        .rows
        .iter()
        .map(|x| x.bytes_per_connection / 1024.0)
        .fold(12.0, f64::max)
        * 1.2;
    let n = r.rows.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Server RSS per idle connection ({} connections)",
                r.rows[0].connections
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, 0.0..max_y)
        .map_err(e)?;
    let labels: Vec<String> = r.rows.iter().map(|x| x.peer.name().to_owned()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|v| {
            let i = (*v - 0.5).round();
            if (v - 0.5 - i).abs() < 0.01 && i >= 0.0 && (i as usize) < labels.len() {
                labels[i as usize].clone()
            } else {
                String::new()
            }
        })
        .y_desc("KiB per connection")
        .draw()
        .map_err(e)?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 10.0), (n as f64, 10.0)],
            BLACK.mix(0.4),
        ))
        .map_err(e)?
        .label("target 10 KB")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    for (i, x) in r.rows.iter().enumerate() {
        let v = x.bytes_per_connection / 1024.0;
        let c = color(x.peer);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(i as f64 + 0.2, 0.0), (i as f64 + 0.8, v)],
                c.filled(),
            )))
            .map_err(e)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{v:.1}"),
                (i as f64 + 0.4, v + max_y * 0.03),
                ("sans-serif", 14),
            )))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(vec![name])
}
