//! The log panel: the live log in the chosen view, each line as
//! `HH:MM:SS.mmm Kind: message` coloured by its kind, with the panel's note
//! and the stream's mark in the merged view.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::text::{sanitize, wrap};
use super::{Theme, pane};
use crate::eventlog;
use crate::tui::app::{App, Focus, LogSource, LogView};

/// Indent of a log line's continuation lines (past the mark).
const INDENT: usize = 3;
/// Indent of the note's continuation lines.
const NOTE_INDENT: usize = 2;
/// The time as the panel shows it: the date and the last digits are dropped
/// to fit a side panel (the file keeps the full line).
const TIME_FORMAT: &str = "%H:%M:%S%.3f";

/// One log line for the panel; a line that is not an event line is shown as
/// it is.
fn log_spans(mark: &str, line: &str, theme: &Theme) -> Vec<Span<'static>> {
    let mark = Span::styled(mark.to_string(), theme.dim);
    let Ok(e) = eventlog::parse_line(line) else {
        return vec![mark, Span::raw(sanitize(line).into_owned())];
    };
    let style = theme.kind(&e.kind());
    vec![
        mark,
        Span::styled(format!("{} ", e.time.format(TIME_FORMAT)), theme.dim),
        Span::styled(
            format!("{}: ", sanitize(e.kind)),
            style.add_modifier(Modifier::BOLD),
        ),
        // Escaped as in the file, then made safe to draw.
        Span::styled(sanitize(&eventlog::escape(&e.message)).into_owned(), style),
    ]
}

pub(super) fn draw(f: &mut Frame, app: &mut App, area: Rect, theme: &Theme) {
    let focused = app.focus() == Focus::Live;
    // As in the chat: the title shows the scroll once clamped below.
    let inner = pane(Line::default(), focused, theme).inner(area);
    let width = inner.width as usize;
    let height = inner.height as usize;
    let mut rows: Vec<Line<'static>> = Vec::new();
    if let Some(note) = app.log().note() {
        rows.extend(wrap(
            vec![Span::styled(sanitize(note).into_owned(), theme.log_note)],
            width,
            NOTE_INDENT,
        ));
    }
    let scroll = app.log().scroll();
    let need = height.saturating_add(scroll);
    let mut body: Vec<Line<'static>> = Vec::new();
    for l in app.visible_log().rev() {
        // In the merged view, mark what only the stream brought: those
        // lines are not in the file.
        let mark = match app.log_view {
            LogView::Both if l.sources().only(LogSource::Server) => "⇣",
            LogView::Both => " ",
            _ => "",
        };
        let mut ls = wrap(log_spans(mark, l.text(), theme), width, INDENT);
        ls.reverse();
        body.extend(ls);
        if body.len() >= need {
            break;
        }
    }
    let avail = height.saturating_sub(rows.len());
    let max_scroll = body.len().saturating_sub(avail);
    let scroll = scroll.min(max_scroll);
    app.clamp_log_scroll(scroll);
    let end = scroll.saturating_add(avail).min(body.len());
    let mut shown: Vec<Line<'static>> = body[scroll..end].to_vec();
    shown.reverse();
    rows.extend(shown);
    let mut title = format!(
        " Log · {} · {} (F2) ",
        app.log().tail_path(),
        app.log_view.label()
    );
    if scroll > 0 {
        title.push_str(&format!("↑{scroll} "));
    }
    f.render_widget(pane(Line::raw(title), focused, theme), area);
    if rows.is_empty() {
        rows.push(Line::styled("waiting for log lines…", theme.dim));
    }
    f.render_widget(Paragraph::new(rows), inner);
}
