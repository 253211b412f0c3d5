//! The server panel: the figures the server streams (clients, rate, uptime,
//! names) and the events it dropped for us.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::text::sanitize;
use super::{Theme, pane};
use crate::tui::app::App;

pub(super) fn draw(f: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let Some(s) = app.figures().server() else {
        return;
    };
    let up = s.uptime_secs;
    let uptime = format!("{}h{:02}m{:02}s", up / 3600, (up / 60) % 60, up % 60);
    let names: Vec<String> = s.names.iter().map(|n| sanitize(n).into_owned()).collect();
    let mut line = format!(
        "{} clients · {:.1} msg/s · up {uptime} · {}",
        s.clients,
        s.msgs_per_sec,
        names.join(", ")
    );
    if s.dropped_events > 0 {
        line.push_str(&format!(" · {} events dropped", s.dropped_events));
    }
    f.render_widget(
        Paragraph::new(line).block(pane(Line::raw(" Server "), false, theme)),
        area,
    );
}
