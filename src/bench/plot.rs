//! `bench --plot`: latency percentiles (top) and throughput (bottom) against
//! client count. Decides what is drawn; [`crate::latency::plot`] draws it.

use std::path::Path;

use plotters::chart::SeriesLabelPosition;

use super::{BenchError, BenchReport, Row};
use crate::latency::plot::{
    Axis, BLUE, Figure, GREEN, GREY, ORANGE, Panel, RED, Scale, Series, write_svg,
};
use crate::latency::{Latency, ms_f64};

/// Height of the latency panel; throughput gets the rest.
const SPLIT: i32 = 400;
/// Log axes get this factor of room beyond the extreme points.
const LOG_PAD: f64 = 1.5;
/// The throughput axis ends this much above the peak (and one more msg/s,
/// so an all-zero sweep still has an axis).
const HEADROOM: f64 = 1.15;
const TITLE_SIZE: i32 = 20;
const LINE_WIDTH: u32 = 2;

/// Draws latency percentiles and throughput against client count as SVG.
pub fn write_plot(report: &BenchReport, path: &Path) -> Result<(), BenchError> {
    let rows: Vec<&Row> = report.rows.iter().filter(|r| r.messages > 0).collect();
    if rows.is_empty() {
        return Err(BenchError::Plot("no row has measured messages".into()));
    }
    let xmin = rows.iter().map(|r| r.clients).min().unwrap_or(1).max(1) as f64;
    let xmax = rows.iter().map(|r| r.clients).max().unwrap_or(1).max(1) as f64;
    // Log axes: client counts and latencies both span decades, and a log
    // axis cannot show zero.
    let clients = || Axis {
        desc: "clients".into(),
        range: xmin / LOG_PAD..xmax * LOG_PAD,
        scale: Scale::Log,
    };
    let lat_ms = |us: u64| ms_f64(us.max(1) as f64);
    let ymin = rows
        .iter()
        .map(|r| lat_ms(r.latency.p50_us))
        .fold(f64::INFINITY, f64::min);
    let ymax = rows
        .iter()
        .map(|r| lat_ms(r.latency.max_us))
        .fold(0.0, f64::max);
    let tmax = rows.iter().map(|r| r.throughput).fold(0.0, f64::max) * HEADROOM + 1.0;

    type Pick = fn(&Latency) -> u64;
    let percentiles: [(&str, _, Pick); 5] = [
        ("p50", BLUE, |l| l.p50_us),
        ("p90", GREEN, |l| l.p90_us),
        ("p99", ORANGE, |l| l.p99_us),
        ("p99.9", RED, |l| l.p999_us),
        ("max", GREY, |l| l.max_us),
    ];
    let latency = Panel {
        caption: Some((
            format!(
                "chatmon bench: {} loop, {} mode, {} byte payload",
                report.load,
                report.mode.name(),
                report.size
            ),
            TITLE_SIZE,
        )),
        x: clients(),
        y: Axis {
            desc: "round trip (ms)".into(),
            range: ymin / LOG_PAD..ymax * LOG_PAD,
            scale: Scale::Log,
        },
        series: percentiles
            .into_iter()
            .map(|(name, color, get)| Series {
                label: Some(name),
                color,
                width: LINE_WIDTH,
                points: rows
                    .iter()
                    .map(|r| (r.clients as f64, lat_ms(get(&r.latency))))
                    .collect(),
                markers: true,
            })
            .collect(),
        legend: SeriesLabelPosition::UpperLeft,
    };
    let throughput = Panel {
        caption: None,
        x: clients(),
        y: Axis {
            desc: "throughput (msg/s)".into(),
            range: 0.0..tmax,
            scale: Scale::Linear,
        },
        series: vec![Series {
            label: None,
            color: BLUE,
            width: LINE_WIDTH,
            points: rows
                .iter()
                .map(|r| (r.clients as f64, r.throughput))
                .collect(),
            markers: true,
        }],
        legend: SeriesLabelPosition::UpperLeft,
    };
    let fig = Figure {
        split: SPLIT,
        top: latency,
        bottom: throughput,
    };
    write_svg(path, &fig).map_err(|e| BenchError::Plot(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::output::tests::fixture;

    #[test]
    fn plots_rows_with_messages_and_refuses_a_sweep_without() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("b.svg");
        write_plot(&fixture(true), &path).expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.contains("chatmon bench: open loop, chat mode, 32 byte payload"));
        for name in ["p50", "p90", "p99", "p99.9", "max", "throughput (msg/s)"] {
            assert!(svg.contains(name), "{name}");
        }
        let mut empty = fixture(false);
        for r in &mut empty.rows {
            r.messages = 0;
        }
        let err = write_plot(&empty, &dir.path().join("e.svg")).expect_err("nothing to draw");
        assert_eq!(
            err.to_string(),
            "cannot draw the plot: no row has measured messages"
        );
    }
}
