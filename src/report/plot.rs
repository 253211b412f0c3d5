//! `report --plot`: round trips over time (top) and throughput over time
//! (bottom), binned so a week-long log still draws a small SVG. Decides what
//! is drawn; [`crate::latency::plot`] draws it.

use std::path::Path;

use chrono::NaiveDateTime;
use plotters::chart::SeriesLabelPosition;

use super::{LogReport, ReportError, SECOND_FORMAT, SOURCE_PAIRED, SOURCE_RTT, Second};
use crate::latency::ms_f64;
use crate::latency::plot::{Axis, BLUE, Figure, GREEN, Panel, RED, Scale, Series, write_svg};

/// Points per series at most: enough for the figure's width, and small.
const MAX_BINS: usize = 1500;
/// Height of the latency panel; throughput gets the rest.
const SPLIT: i32 = 380;
/// Axes end this much above the highest point.
const HEADROOM: f64 = 1.15;
/// The smallest top of the latency axis, in ms, so an all-zero series
/// still has an axis.
const MIN_LATENCY_TOP: f64 = 0.001;
/// The smallest top of the throughput axis, in messages per second.
const MIN_RATE_TOP: f64 = 1.0;
const TITLE_SIZE: i32 = 20;
const SUBTITLE_SIZE: i32 = 18;
/// Stroke width of the main series; the max series stays thin.
const LINE_WIDTH: u32 = 2;
/// How `Stats` times are written (with a fraction, unlike seconds).
const STATS_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

/// Points `(seconds since the first, value)` averaged into at most `max`
/// bins, so that a week-long log still draws a readable (and small) SVG.
fn binned(
    seconds: &[Second],
    start: i64,
    max: usize,
    value: impl Fn(&Second) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let parse = |s: &Second| {
        NaiveDateTime::parse_from_str(&s.time, SECOND_FORMAT)
            .ok()
            .map(|t| t.and_utc().timestamp() - start)
    };
    let pts: Vec<(i64, f64)> = seconds
        .iter()
        .filter_map(|s| Some((parse(s)?, value(s)?)))
        .collect();
    let span = pts.last().map(|p| p.0 + 1).unwrap_or(1).max(1);
    let width = ((span as usize).div_ceil(max.max(1))).max(1) as i64;
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut cur: Option<(i64, f64, u32)> = None;
    for (t, v) in pts {
        let bin = t / width;
        match cur.as_mut() {
            Some((b, sum, n)) if *b == bin => {
                *sum += v;
                *n += 1;
            }
            _ => {
                if let Some((b, sum, n)) = cur {
                    out.push(((b * width) as f64, sum / f64::from(n)));
                }
                cur = Some((bin, v, 1));
            }
        }
    }
    if let Some((b, sum, n)) = cur {
        out.push(((b * width) as f64, sum / f64::from(n)));
    }
    out
}

/// Draws latency over time and throughput over time as SVG.
pub fn write_plot(r: &LogReport, path: &Path) -> Result<(), ReportError> {
    let Some(first) = r
        .seconds
        .first()
        .and_then(|s| NaiveDateTime::parse_from_str(&s.time, SECOND_FORMAT).ok())
    else {
        return Err(ReportError::Plot("the log has no events".into()));
    };
    let start = first.and_utc().timestamp();
    let rtt_mean = binned(&r.seconds, start, MAX_BINS, |s| {
        (s.rtt_count > 0).then_some(ms_f64(s.rtt_mean_us))
    });
    let rtt_max = binned(&r.seconds, start, MAX_BINS, |s| {
        (s.rtt_count > 0).then_some(ms_f64(s.rtt_max_us as f64))
    });
    let msgs = binned(&r.seconds, start, MAX_BINS, |s| Some(s.messages as f64));
    let stats: Vec<(f64, f64)> = r
        .stats
        .iter()
        .filter_map(|p| {
            let t = NaiveDateTime::parse_from_str(&p.time, STATS_TIME_FORMAT).ok()?;
            Some(((t.and_utc().timestamp() - start) as f64, p.rate))
        })
        .collect();
    let xmax = msgs.iter().chain(&stats).map(|p| p.0).fold(1.0, f64::max) + 1.0;
    let time = || Axis {
        desc: format!("seconds since {}", first.format(SECOND_FORMAT)),
        range: 0.0..xmax,
        scale: Scale::Linear,
    };
    let line = |label, color, width, points| Series {
        label: Some(label),
        color,
        width,
        points,
        markers: false,
    };

    let ymax = rtt_max.iter().map(|p| p.1).fold(MIN_LATENCY_TOP, f64::max) * HEADROOM;
    let caption = match r.latency_source {
        SOURCE_RTT => "chatmon report: round trip over time (recorded by clients)",
        SOURCE_PAIRED => "chatmon report: round trip over time (timestamps paired)",
        _ => "chatmon report: no round trips in this log (server lines only?)",
    };
    let mut latency_series = Vec::new();
    if !rtt_mean.is_empty() {
        latency_series.push(line("mean per second", BLUE, LINE_WIDTH, rtt_mean));
        latency_series.push(line("max per second", RED, 1, rtt_max));
    }
    let latency = Panel {
        caption: Some((caption.to_string(), TITLE_SIZE)),
        x: time(),
        y: Axis {
            desc: "round trip (ms)".into(),
            range: 0.0..ymax,
            scale: Scale::Linear,
        },
        series: latency_series,
        legend: SeriesLabelPosition::MiddleRight,
    };

    let tmax = msgs
        .iter()
        .chain(&stats)
        .map(|p| p.1)
        .fold(MIN_RATE_TOP, f64::max)
        * HEADROOM;
    let mut rate_series = vec![line("counted from the log", BLUE, LINE_WIDTH, msgs)];
    if !stats.is_empty() {
        rate_series.push(line("server Stats rate", GREEN, LINE_WIDTH, stats));
    }
    let throughput = Panel {
        caption: Some(("throughput over time".into(), SUBTITLE_SIZE)),
        x: time(),
        y: Axis {
            desc: "messages per second".into(),
            range: 0.0..tmax,
            scale: Scale::Linear,
        },
        series: rate_series,
        legend: SeriesLabelPosition::MiddleRight,
    };
    let fig = Figure {
        split: SPLIT,
        top: latency,
        bottom: throughput,
    };
    write_svg(path, &fig).map_err(|e| ReportError::Plot(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::run;

    fn second(time: &str, messages: u64) -> Second {
        Second {
            time: time.into(),
            messages,
            ..Second::default()
        }
    }

    #[test]
    fn bins_average_neighbouring_seconds() {
        let secs = [
            second("2026-01-02 03:04:00", 2),
            second("2026-01-02 03:04:01", 4),
            second("2026-01-02 03:04:02", 6),
            second("2026-01-02 03:04:05", 10),
        ];
        let start = NaiveDateTime::parse_from_str("2026-01-02 03:04:00", SECOND_FORMAT)
            .expect("time")
            .and_utc()
            .timestamp();
        let all = binned(&secs, start, 100, |s| Some(s.messages as f64));
        assert_eq!(all, [(0.0, 2.0), (1.0, 4.0), (2.0, 6.0), (5.0, 10.0)]);
        // Six seconds into three bins of two.
        let three = binned(&secs, start, 3, |s| Some(s.messages as f64));
        assert_eq!(three, [(0.0, 3.0), (2.0, 6.0), (4.0, 10.0)]);
        // Seconds without a value are left out, not drawn as zero.
        let none = binned(&secs, start, 3, |s| (s.messages > 5).then_some(1.0));
        assert_eq!(none, [(2.0, 1.0), (4.0, 1.0)]);
    }

    #[test]
    fn plots_a_log_and_refuses_an_empty_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = run(
            "Message Received: 2026-01-02 03:04:05.000100 - alice <- server 127.0.0.1:7878 #1 rtt=0.250ms: Server received: hi\n\
             Stats: 2026-01-02 03:04:06.000000 - server: clients=3 messages=120 rate=12.0/s errors=1 interval=10.0s\n",
        );
        let path = dir.path().join("r.svg");
        write_plot(&r, &path).expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.contains("round trip over time (recorded by clients)"));
        assert!(svg.contains("server Stats rate"));
        let err = write_plot(&run(""), &dir.path().join("e.svg")).expect_err("no events");
        assert_eq!(
            err.to_string(),
            "cannot draw the plot: the log has no events"
        );
    }
}
