//! The recent messages panel: our newest messages, one row each, with their
//! round trip or where they are.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::text::{fmt_dur, sanitize};
use super::{Theme, pane};
use crate::tui::app::{App, Entry, MsgStatus};

pub(super) fn draw(f: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let rows = area.height.saturating_sub(2) as usize;
    let now = Instant::now();
    let mut lines: Vec<Line> = Vec::new();
    for e in app.chat().entries().iter().rev() {
        if lines.len() >= rows {
            break;
        }
        let Entry::Mine { id, text, status } = e else {
            continue;
        };
        let (fig, style) = match status {
            MsgStatus::Replied { rtt, .. } => (fmt_dur(*rtt), theme.replied),
            MsgStatus::Pending { since } => (
                format!(
                    "pending {:.1}s",
                    now.saturating_duration_since(*since).as_secs_f64()
                ),
                theme.waiting,
            ),
            MsgStatus::Queued => ("queued".into(), theme.waiting),
            MsgStatus::TimedOut { .. } => ("timed out".into(), theme.failed),
            MsgStatus::Undelivered { .. } => ("undelivered".into(), theme.failed),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("#{id:<4} "), theme.dim),
            Span::styled(format!("{fig:>12} "), style),
            Span::raw(sanitize(text).into_owned()),
        ]));
    }
    lines.reverse();
    f.render_widget(
        Paragraph::new(lines).block(pane(Line::raw(" Recent messages "), false, theme)),
        area,
    );
}
