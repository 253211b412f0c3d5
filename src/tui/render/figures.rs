//! The round-trip latency panel: for probes and for chat messages side by
//! side, over the chosen window, count, lost and loss, min, mean, stddev,
//! p50, p90, p99, max, jitter and RFC 3550's J; and the reply rate. Below
//! the table, given the rows, where the time goes: server and network time
//! percentiles and the clock offset to the server. Two lines of the
//! essentials when there is no room for the table.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::text::fmt_dur;
use super::{Theme, pane};
use crate::latency::live::Figures;
use crate::tui::app::{App, Kind};

/// Rows of the full table: a header, six figures, two borders.
pub(super) const FULL_ROWS: u16 = 9;
/// Rows of the two-line form.
pub(super) const COMPACT_ROWS: u16 = 4;
/// Widths of a half table: the label and the two series' columns.
const LABEL_W: u16 = 7;
const VALUE_W: u16 = 9;

/// A row's label and how its value is written from a series' figures.
type Figure = (&'static str, fn(&Figures) -> String);

fn title(app: &App, theme: &Theme) -> Line<'static> {
    let live = app.live();
    let mut spans = vec![Span::raw(format!(
        " Round-trip latency · {} ",
        live.window().label()
    ))];
    if live.frozen().is_some() {
        spans.push(Span::styled(" frozen ", theme.frozen));
        spans.push(Span::raw(" "));
    }
    spans.push(Span::styled(
        format!("· {:.1} msg/s ", app.figures().per_sec()),
        theme.dim,
    ));
    Line::from(spans)
}

/// A duration figure, or a dash when nothing was measured.
fn dur(f: &Figures, d: std::time::Duration) -> String {
    if f.count == 0 {
        "–".into()
    } else {
        fmt_dur(d)
    }
}

fn opt(d: Option<std::time::Duration>) -> String {
    d.map_or_else(|| "–".into(), fmt_dur)
}

/// Lost, with a glyph when there are any (not only a colour).
fn lost(f: &Figures) -> String {
    if f.lost > 0 {
        format!("✗ {}", f.lost)
    } else {
        "0".into()
    }
}

pub(super) fn draw(f: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let live = app.live();
    let (p, m) = (live.figures(Kind::Probe), live.figures(Kind::Message));
    let block = pane(title(app, theme), false, theme);
    if area.height < FULL_ROWS {
        let line = |name: &str, f: &Figures| {
            Line::from(vec![
                Span::styled(format!("{name:<6}n "), theme.dim),
                Span::styled(f.count.to_string(), theme.figure),
                Span::styled("  lost ", theme.dim),
                Span::styled(lost(f), lost_style(f, theme)),
                Span::styled("  p50 ", theme.dim),
                Span::styled(dur(f, f.p50), theme.figure),
                Span::styled("  p99 ", theme.dim),
                Span::styled(dur(f, f.p99), theme.figure),
            ])
        };
        let lines = vec![line("probe", p), line("msg", m)];
        f.render_widget(Paragraph::new(lines).block(block), area);
        return;
    }
    let left: [Figure; 6] = [
        ("n", |f| f.count.to_string()),
        ("lost", lost),
        ("loss", |f| format!("{:.1}%", f.loss_pct())),
        ("min", |f| dur(f, f.min)),
        ("mean", |f| dur(f, f.mean)),
        ("stddev", |f| dur(f, f.stddev)),
    ];
    let right: [Figure; 6] = [
        ("p50", |f| dur(f, f.p50)),
        ("p90", |f| dur(f, f.p90)),
        ("p99", |f| dur(f, f.p99)),
        ("max", |f| dur(f, f.max)),
        ("jitter", |f| opt(f.jitter)),
        ("rfc J", |f| opt(f.rfc3550)),
    ];
    let cell = |s: String, style: Style| Cell::from(Line::styled(s, style).right_aligned());
    let label = |s: &str| Cell::from(Span::styled(s.to_string(), theme.dim));
    let probe_head = if live.probes_on() {
        "probe"
    } else {
        "probe off"
    };
    let head = Row::new(vec![
        label(""),
        cell(probe_head.into(), theme.dim),
        cell("msg".into(), theme.dim),
        label(" │"),
        label(""),
        cell(probe_head.into(), theme.dim),
        cell("msg".into(), theme.dim),
    ]);
    let rows = left
        .iter()
        .zip(right.iter())
        .enumerate()
        .map(|(i, (l, r))| {
            // The lost row carries its own style; every other a figure's.
            let style = |f: &Figures| {
                if i == 1 {
                    lost_style(f, theme)
                } else {
                    theme.figure
                }
            };
            Row::new(vec![
                label(l.0),
                cell((l.1)(p), style(p)),
                cell((l.1)(m), style(m)),
                label(" │ "),
                label(r.0),
                cell((r.1)(p), theme.figure),
                cell((r.1)(m), theme.figure),
            ])
        });
    let widths = [
        Constraint::Length(LABEL_W - 1),
        Constraint::Length(VALUE_W),
        Constraint::Length(VALUE_W),
        Constraint::Length(3),
        Constraint::Length(LABEL_W - 1),
        Constraint::Length(VALUE_W),
        Constraint::Length(VALUE_W),
    ];
    let table = Table::new(rows, widths)
        .header(head)
        .column_spacing(0)
        .block(block);
    f.render_widget(table, area);
    // Where the time goes, on the rows the layout gave beyond the table.
    let timing = timing_lines(app, theme);
    let spare = area.height.saturating_sub(FULL_ROWS) as usize;
    let n = timing.len().min(spare);
    if n > 0 {
        let rows = Rect {
            x: area.x + 1,
            y: area.y + area.height - 1 - n as u16,
            width: area.width.saturating_sub(2),
            height: n as u16,
        };
        f.render_widget(Paragraph::new(timing[..n].to_vec()), rows);
    }
}

/// Rows the timing lines want below the table (0 until a stamped reply or
/// an offset estimate exists).
pub(super) fn timing_rows(app: &App) -> u16 {
    let fig = app.figures();
    u16::from(fig.split().count > 0) + u16::from(fig.offset().is_some())
}

/// Server and network time percentiles of stamped replies, and the clock
/// offset to the server with its bound.
fn timing_lines(app: &App, theme: &Theme) -> Vec<Line<'static>> {
    let (label, val) = (theme.dim, theme.figure);
    let mut lines = Vec::new();
    let sp = app.figures().split();
    if sp.count > 0 {
        let ms = |us: u64| format!("{:.3}", us as f64 / 1000.0);
        lines.push(Line::from(vec![
            Span::styled("server p50 ", label),
            Span::styled(ms(sp.server_p50), val),
            Span::styled(" p99 ", label),
            Span::styled(ms(sp.server_p99), val),
            Span::styled("  net p50 ", label),
            Span::styled(ms(sp.net_p50), val),
            Span::styled(" p99 ", label),
            Span::styled(ms(sp.net_p99), val),
        ]));
    }
    if let Some(o) = app.figures().offset() {
        lines.push(Line::from(vec![
            Span::styled("clock offset ", label),
            Span::styled(
                format!(
                    "{:+.3}ms ±{:.3}",
                    o.offset_us as f64 / 1000.0,
                    o.bound_us as f64 / 1000.0
                ),
                val,
            ),
            Span::styled(" (server − this clock)", label),
        ]));
    }
    lines
}

fn lost_style(f: &Figures, theme: &Theme) -> Style {
    if f.lost > 0 { theme.lost } else { theme.figure }
}
