//! The live chart: round trips against wall time (braille points for probes
//! and messages, the window's p50 and p99 as lines, lost ones as `✗` at the
//! top, reconnects as vertical `│` marks), or, with `h`, a histogram of the
//! window. Frozen, it shows the moment of the freeze and says `frozen`.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Bar, BarChart, BarGroup, Chart, Dataset, GraphType};

use super::text::fmt_dur;
use super::{Theme, pane};
use crate::tui::app::{App, Kind, live_wall_at};

/// Head room above the highest point, so that it is not drawn on the border.
const Y_HEADROOM: f64 = 1.15;
/// Smallest top of the y axis (ms): an idle loopback is not a flat line at 0.
const Y_MIN_TOP_MS: f64 = 0.1;
/// Cells of one histogram bar at least (its label needs them).
const BAR_MIN: u16 = 3;

/// How a zoom level reads: `30s`, `1min`, `1h`.
pub(crate) fn span_label(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}min", s / 60)
    } else {
        format!("{}h", s / 3600)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The title's marks: `frozen` (when it is) and the lost count.
fn title(text: String, app: &App, lost: usize, theme: &Theme) -> Line<'static> {
    let mut spans = vec![Span::raw(text)];
    if app.live().frozen().is_some() {
        spans.push(Span::styled(" frozen ", theme.frozen));
        spans.push(Span::raw(" "));
    }
    if lost > 0 {
        spans.push(Span::styled(format!("✗ {lost} lost "), theme.lost));
    }
    Line::from(spans)
}

pub(super) fn draw(f: &mut Frame, app: &App, area: Rect, now: Instant, theme: &Theme) {
    if app.live().show_hist() {
        draw_hist(f, app, area, theme);
    } else {
        draw_chart(f, app, area, now, theme);
    }
}

fn draw_chart(f: &mut Frame, app: &App, area: Rect, now: Instant, theme: &Theme) {
    let live = app.live();
    let (end, wall_end) = match live.frozen() {
        Some(fz) => (fz.at, fz.wall),
        None => (now, live_wall_at(now)),
    };
    let span = live.span();
    let x = |at: Instant| -end.saturating_duration_since(at).as_secs_f64();
    let (mut probes, mut msgs, mut lost_x) = (Vec::new(), Vec::new(), Vec::new());
    for p in live.points_until(end) {
        match (p.rtt, p.kind) {
            (Some(r), Kind::Probe) => probes.push((x(p.at), ms(r))),
            (Some(r), Kind::Message) => msgs.push((x(p.at), ms(r))),
            (None, _) => lost_x.push(x(p.at)),
        }
    }
    let figs = if live.figures(Kind::Probe).count > 0 {
        live.figures(Kind::Probe)
    } else {
        live.figures(Kind::Message)
    };
    let top = probes
        .iter()
        .chain(msgs.iter())
        .map(|p| p.1)
        .fold(ms(figs.p99), f64::max)
        .max(Y_MIN_TOP_MS / Y_HEADROOM)
        * Y_HEADROOM;
    let left = -span.as_secs_f64();
    let lost: Vec<(f64, f64)> = lost_x.iter().map(|x| (*x, top)).collect();
    let p50 = [(left, ms(figs.p50)), (0.0, ms(figs.p50))];
    let p99 = [(left, ms(figs.p99)), (0.0, ms(figs.p99))];
    let reconnects: Vec<[(f64, f64); 2]> = live
        .reconnects()
        .filter(|r| **r <= end && end.saturating_duration_since(**r) <= span)
        .map(|r| [(x(*r), 0.0), (x(*r), top)])
        .collect();
    let mut sets = Vec::new();
    let scatter = |name: &'static str, data, marker, style| {
        Dataset::default()
            .name(name)
            .marker(marker)
            .graph_type(GraphType::Scatter)
            .style(style)
            .data(data)
    };
    if figs.count > 0 {
        let line = |name: &'static str, data, style| {
            Dataset::default()
                .name(name)
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(style)
                .data(data)
        };
        sets.push(line("p50", &p50, theme.chart_p50));
        sets.push(line("p99", &p99, theme.chart_p99));
    }
    for (i, r) in reconnects.iter().enumerate() {
        let d = Dataset::default()
            .marker(Marker::Custom('│'))
            .graph_type(GraphType::Line)
            .style(theme.reconnect)
            .data(r);
        sets.push(if i == 0 { d.name("│ reconnect") } else { d });
    }
    if !probes.is_empty() {
        sets.push(scatter(
            "probe",
            &probes,
            Marker::Braille,
            theme.chart_probe,
        ));
    }
    if !msgs.is_empty() {
        sets.push(scatter("msg", &msgs, Marker::Braille, theme.chart_msg));
    }
    if !lost.is_empty() {
        sets.push(scatter("✗ lost", &lost, Marker::Custom('✗'), theme.lost));
    }
    let wall = |secs_ago: f64| {
        let t = wall_end - chrono::TimeDelta::milliseconds((secs_ago * 1000.0) as i64);
        Span::styled(t.format("%H:%M:%S").to_string(), theme.axis)
    };
    let span_s = span.as_secs_f64();
    let x_axis = Axis::default()
        .style(theme.axis)
        .bounds([left, 0.0])
        .labels([wall(span_s), wall(span_s / 2.0), wall(0.0)]);
    let y_label = |v: f64| Span::styled(fmt_dur(Duration::from_secs_f64(v / 1000.0)), theme.axis);
    let y_axis = Axis::default()
        .style(theme.axis)
        .bounds([0.0, top])
        .labels([
            Span::styled("0", theme.axis),
            y_label(top / 2.0),
            y_label(top),
        ]);
    let head = format!(" RTT over time · last {} ", span_label(span));
    let block = pane(title(head, app, lost_x.len(), theme), false, theme).title_bottom(
        Line::styled(
            " Tab: Space freeze · w window · h histogram · +/- zoom · e export ",
            theme.dim,
        )
        .right_aligned(),
    );
    let chart = Chart::new(sets)
        .block(block)
        .x_axis(x_axis)
        .y_axis(y_axis)
        .hidden_legend_constraints((Constraint::Ratio(2, 3), Constraint::Ratio(2, 3)));
    f.render_widget(chart, area);
}

fn draw_hist(f: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let live = app.live();
    let (bins, kind) = live.bins();
    let what = match kind {
        Kind::Probe => "probes",
        Kind::Message => "messages",
    };
    let head = format!(" RTT histogram · {what} · {} ", live.window().label());
    let block = pane(title(head, app, 0, theme), false, theme);
    if bins.is_empty() {
        let p = ratatui::widgets::Paragraph::new(Line::styled(
            "no round trips in this window",
            theme.dim,
        ))
        .block(block);
        f.render_widget(p, area);
        return;
    }
    let inner_w = area.width.saturating_sub(2);
    let n = bins.len() as u16;
    let width = (inner_w / n.max(1)).saturating_sub(1).max(BAR_MIN);
    let bars: Vec<Bar> = bins
        .iter()
        .map(|(lo, _, count)| {
            Bar::default()
                .value(*count)
                .label(Line::from(short_ms(*lo)))
                .style(theme.hist_bar)
                .value_style(theme.figure)
        })
        .collect();
    let chart = BarChart::default()
        .block(block)
        .bar_width(width)
        .bar_gap(1)
        .data(BarGroup::default().bars(&bars));
    f.render_widget(chart, area);
}

/// A bin's lower edge in few characters: `0.21`, `12`, `1.2k` (ms).
fn short_ms(d: Duration) -> String {
    let v = ms(d);
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{:.1}k", v / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_well() {
        assert_eq!(span_label(Duration::from_secs(30)), "30s");
        assert_eq!(span_label(Duration::from_secs(300)), "5min");
        assert_eq!(span_label(Duration::from_secs(3600)), "1h");
        assert_eq!(short_ms(Duration::from_micros(213)), "0.21");
        assert_eq!(short_ms(Duration::from_millis(12)), "12");
        assert_eq!(short_ms(Duration::from_millis(1500)), "1.5k");
    }
}
