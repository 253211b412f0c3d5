//! The round-trip latency panel: count, min, percentiles, max and the rate,
//! then (given the rows) the server and network time percentiles and the
//! clock offset to the server.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::text::fmt_dur;
use super::{Theme, pane};
use crate::tui::app::App;

pub(super) fn draw(f: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let s = app.figures().rtt();
    let block = pane(Line::raw(" Round-trip latency "), false, theme);
    let (label, val) = (theme.dim, theme.figure);
    let lines = if s.count == 0 {
        vec![Line::styled("no replies yet", label)]
    } else {
        vec![
            Line::from(vec![
                Span::styled("n ", label),
                Span::styled(s.count.to_string(), val),
                Span::styled("  min ", label),
                Span::styled(fmt_dur(s.min), val),
                Span::styled("  p50 ", label),
                Span::styled(fmt_dur(s.p50), val),
                Span::styled("  p90 ", label),
                Span::styled(fmt_dur(s.p90), val),
            ]),
            Line::from(vec![
                Span::styled("p99 ", label),
                Span::styled(fmt_dur(s.p99), val),
                Span::styled("  max ", label),
                Span::styled(fmt_dur(s.max), val),
                Span::styled("  rate ", label),
                Span::styled(format!("{:.1} msg/s", s.per_sec), val),
            ]),
        ]
    };
    let mut lines = lines;
    // Where the time went, when the panel has rows for it: the extra figures
    // go first when space is short.
    let room = area.height.saturating_sub(2) as usize;
    let sp = app.figures().split();
    if sp.count > 0 && lines.len() < room {
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
    if let Some(o) = app.figures().offset()
        && lines.len() < room
    {
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
    f.render_widget(Paragraph::new(lines).block(block), area);
}
