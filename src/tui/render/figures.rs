//! The round-trip latency panel: count, min, percentiles, max and the rate.

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
    f.render_widget(Paragraph::new(lines).block(block), area);
}
