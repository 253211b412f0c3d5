//! The input box: the line being typed, scrolled to keep the cursor in view,
//! and its key hints.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::{Theme, pane};
use crate::tui::app::{App, Focus};

/// From this width the title lists the main keys; below it only F1.
const FULL_HINT_WIDTH: u16 = 71;

pub(super) fn draw(f: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let focused = app.focus() == Focus::Input;
    let hint = if area.width >= FULL_HINT_WIDTH {
        " Message · Enter send · ↑↓ history · Tab focus · F1 help "
    } else {
        " Message · F1 help "
    };
    let block = pane(Line::raw(hint), focused, theme);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = inner.width.max(1) as usize;
    let line = app.input().line();
    // Keep one column for the cursor at the end of the line.
    let scroll = line.visual_scroll(width.saturating_sub(1));
    f.render_widget(
        Paragraph::new(line.value()).scroll((0, scroll as u16)),
        inner,
    );
    if focused && !app.show_help() {
        let x = line.visual_cursor().saturating_sub(scroll) as u16;
        f.set_cursor_position((inner.x + x.min(inner.width.saturating_sub(1)), inner.y));
    }
}
