//! The round-trip sparkline: the newest round trips, one column each.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Sparkline;

use super::text::fmt_dur;
use super::{Theme, pane};
use crate::tui::app::App;

pub(super) fn draw(f: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let n = area.width.saturating_sub(2) as usize;
    let rtts = app.figures().rtts();
    let skip = rtts.len().saturating_sub(n);
    let data: Vec<u64> = rtts.skip(skip).map(|d| d.as_micros() as u64).collect();
    let max = data.iter().copied().max().unwrap_or(0);
    let title = format!(
        " RTT, last {} (top {}) ",
        data.len(),
        fmt_dur(Duration::from_micros(max))
    );
    f.render_widget(
        Sparkline::default()
            .block(pane(Line::raw(title), false, theme))
            .data(data)
            .style(theme.spark),
        area,
    );
}
