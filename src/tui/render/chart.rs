//! The live chart: round trips against wall time (braille points for probes
//! and messages, the window's p50 and p99 as lines, lost ones as `✗` at the
//! top, reconnects as vertical `│` marks), or, with `h`, a histogram of the
//! window. Frozen, it shows the moment of the freeze and says `frozen`.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Bar, BarChart, BarGroup, Chart, Dataset, GraphType, Paragraph};

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
        sets.push(if i == 0 { d.name("reconnect") } else { d });
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
        sets.push(scatter("lost", &lost, Marker::Custom('✗'), theme.lost));
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
    // The key is a line of its own under the chart: ratatui's legend box
    // would hide in a short chart, and the names are what tells the series
    // apart without colour.
    let mut key = vec![Span::raw(" ")];
    let mut item = |glyph: &str, name: &str, style| {
        key.push(Span::styled(glyph.to_string(), style));
        key.push(Span::styled(format!(" {name}  "), theme.dim));
    };
    if !probes.is_empty() {
        item("⠶", "probe", theme.chart_probe);
    }
    if !msgs.is_empty() {
        item("⠶", "msg", theme.chart_msg);
    }
    if figs.count > 0 {
        item("⠉⠉", "p50", theme.chart_p50);
        item("⠉⠉", "p99", theme.chart_p99);
    }
    if !lost.is_empty() {
        item("✗", "lost", theme.lost);
    }
    if !reconnects.is_empty() {
        item("│", "reconnect", theme.reconnect);
    }
    let block =
        pane(title(head, app, lost_x.len(), theme), false, theme).title_bottom(Line::from(key));
    let chart = Chart::new(sets)
        .block(block)
        .x_axis(x_axis)
        .y_axis(y_axis)
        .legend_position(None);
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
        let p =
            Paragraph::new(Line::styled("no round trips in this window", theme.dim)).block(block);
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
    use crate::client::{ClientEvent, DisconnectKind};
    use crate::tui::render::{Theme, buffer_text, to_buffer, to_text};
    use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
    use ratatui::style::Color;

    #[test]
    fn labels_read_well() {
        assert_eq!(span_label(Duration::from_secs(30)), "30s");
        assert_eq!(span_label(Duration::from_secs(300)), "5min");
        assert_eq!(span_label(Duration::from_secs(3600)), "1h");
        assert_eq!(short_ms(Duration::from_micros(213)), "0.21");
        assert_eq!(short_ms(Duration::from_millis(12)), "12");
        assert_eq!(short_ms(Duration::from_millis(1500)), "1.5k");
    }

    fn press(app: &mut App, code: KeyCode) {
        app.on_event(&Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    fn connected() -> ClientEvent {
        ClientEvent::Connected {
            name: "alice".into(),
            users: vec!["alice".into()],
            server: "chatmon 0.1.0".into(),
            embedded: false,
            plain: false,
        }
    }

    /// Probes over the last 40 s, one lost, a reconnect, a chat reply, and
    /// a last probe of 0.42 ms.
    fn probed_app() -> App {
        let mut app = App::new("127.0.0.1:7878", "alice", "log.txt");
        let now = Instant::now();
        let ago = |s: u64| now.checked_sub(Duration::from_secs(s)).unwrap_or(now);
        app.on_client(connected(), ago(41));
        for (i, s) in (2..40).rev().enumerate() {
            let rtt = Duration::from_micros(300 + (i as u64 % 5) * 50);
            app.on_client(ClientEvent::Probe { id: i as u64, rtt }, ago(s));
        }
        app.on_client(ClientEvent::ProbeLost { id: 99 }, ago(20));
        app.on_client(
            ClientEvent::Disconnected {
                reason: "connection lost: reset".into(),
                kind: DisconnectKind::Lost,
                retry_in: Duration::from_millis(100),
            },
            ago(15),
        );
        app.on_client(connected(), ago(14));
        app.sent_local(1, "hi".into());
        app.on_client(ClientEvent::Sent { id: 1 }, ago(10));
        app.on_client(
            ClientEvent::Reply {
                id: 1,
                text: "Server received: hi".into(),
                rtt: Duration::from_micros(900),
                split: None,
            },
            ago(10),
        );
        app.on_client(
            ClientEvent::Probe {
                id: 100,
                rtt: Duration::from_micros(420),
            },
            now,
        );
        app
    }

    fn is_braille(c: char) -> bool {
        ('\u{2801}'..='\u{28ff}').contains(&c)
    }

    #[test]
    fn chart_draws_points_lines_lost_marks_and_reconnects() {
        let mut app = probed_app();
        let s = to_text(&mut app, 140, 40);
        assert!(s.contains("RTT over time · last 1min"), "{s}");
        assert!(s.contains("✗ 1 lost"), "{s}");
        assert!(s.contains("│ reconnect"), "{s}");
        assert!(s.contains("✗ lost"), "{s}");
        assert!(
            s.contains("probe") && s.contains("p50") && s.contains("p99"),
            "{s}"
        );
        assert!(s.chars().any(is_braille), "no braille points:\n{s}");
        assert!(s.contains("lag 0.42ms"), "{s}");
        let lost = s.lines().find(|l| l.contains("lost ")).expect("lost row");
        assert!(lost.contains("✗ 1"), "{lost}");
        // Wall-clock labels on the time axis.
        let clock = chrono::Local::now().format("%H:").to_string();
        assert!(s.contains(&clock), "{s}");
    }

    #[test]
    fn frozen_says_so_and_keeps_its_figures() {
        let mut app = probed_app();
        press(&mut app, KeyCode::Tab);
        press(&mut app, KeyCode::Char(' '));
        app.on_client(
            ClientEvent::Probe {
                id: 101,
                rtt: Duration::from_millis(50),
            },
            Instant::now(),
        );
        let s = to_text(&mut app, 140, 40);
        let frozen_titles = s.lines().filter(|l| l.contains(" frozen ")).count();
        assert_eq!(frozen_titles, 2, "figures and chart say frozen:\n{s}");
        let panels: String = s.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert!(
            !panels.contains("50.0ms"),
            "a frozen panel shows nothing new:\n{s}"
        );
        // The status bar is live: the lag is the new probe's.
        assert!(s.contains("lag 50.0ms ▲ high"), "{s}");
        press(&mut app, KeyCode::Char(' '));
        let s = to_text(&mut app, 140, 40);
        assert!(!s.contains(" frozen "), "{s}");
        let panels: String = s.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert!(panels.contains("50.0ms"), "{s}");
    }

    #[test]
    fn histogram_view_replaces_the_chart() {
        let mut app = probed_app();
        press(&mut app, KeyCode::Tab);
        press(&mut app, KeyCode::Char('h'));
        let s = to_text(&mut app, 140, 40);
        assert!(s.contains("RTT histogram · probes · 1min"), "{s}");
        assert!(!s.contains("RTT over time"), "{s}");
        assert!(
            s.contains("0.30"),
            "bins are labelled by their low edge:\n{s}"
        );
        press(&mut app, KeyCode::Char('w'));
        press(&mut app, KeyCode::Char('w'));
        press(&mut app, KeyCode::Char('w'));
        let s = to_text(&mut app, 140, 40);
        assert!(s.contains("RTT histogram · probes · 10s"), "{s}");
    }

    #[test]
    fn zoom_changes_the_span_in_the_title() {
        let mut app = probed_app();
        press(&mut app, KeyCode::Tab);
        press(&mut app, KeyCode::Char('+'));
        assert!(to_text(&mut app, 140, 40).contains("last 30s"));
        for _ in 0..10 {
            press(&mut app, KeyCode::Char('-'));
        }
        assert!(to_text(&mut app, 140, 40).contains("last 1h"));
    }

    fn has_colour(buf: &ratatui::buffer::Buffer) -> bool {
        buf.content()
            .iter()
            .any(|c| c.fg != Color::Reset || c.bg != Color::Reset)
    }

    #[test]
    fn every_theme_draws_the_same_text_and_mono_has_no_colour() {
        let mut texts = Vec::new();
        for (name, theme) in [
            ("dark", Theme::dark()),
            ("light", Theme::light()),
            ("mono", Theme::mono()),
        ] {
            let mut app = probed_app();
            let buf = to_buffer(&mut app, 140, 40, &theme);
            assert_eq!(has_colour(&buf), name != "mono", "{name}");
            let text = buffer_text(&buf);
            // Drop the status bar and the axis (the clock moves).
            texts.push(text.lines().skip(1).take(12).collect::<Vec<_>>().join("\n"));
        }
        assert_eq!(texts[0], texts[1]);
        assert_eq!(texts[0], texts[2]);
    }

    #[test]
    fn no_color_renders_no_colour() {
        let theme = Theme::resolve(None, Some(std::ffi::OsStr::new("1")));
        let mut app = probed_app();
        press(&mut app, KeyCode::F(1));
        let buf = to_buffer(&mut app, 140, 40, &theme);
        assert!(!has_colour(&buf));
        let s = buffer_text(&buf);
        assert!(
            s.contains("chatmon help") && s.contains("lag 0.42ms"),
            "{s}"
        );
    }

    #[test]
    fn short_terminals_lose_the_chart_then_the_full_figures_never_the_chat() {
        let mut app = probed_app();
        let s = to_text(&mut app, 140, 20);
        assert!(!s.contains("RTT over time"), "{s}");
        assert!(s.contains("stddev"), "{s}");
        let s = to_text(&mut app, 140, 12);
        assert!(!s.contains("stddev"), "{s}");
        assert!(s.contains("probe n 39"), "{s}");
        assert!(s.contains("Chat"), "{s}");
    }
}
