//! The reply pane: our messages with their replies and round trips, other
//! people's messages, notices, and the "scrolled up" bar.

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::text::{fmt_dur, sanitize, wrap};
use super::{Theme, pane};
use crate::timing::{RelayTiming, Sample};
use crate::tui::app::{App, Entry, Focus, Level, MsgStatus};

/// Indent of a message's continuation lines.
const INDENT: usize = 2;
/// Indent of the reply or status line's continuation lines (under the `↳`).
const REPLY_INDENT: usize = 4;

/// Columns the spans take on one line.
fn columns(spans: &[Span<'_>]) -> usize {
    spans
        .iter()
        .map(|s| unicode_width::UnicodeWidthStr::width(s.content.as_ref()))
        .sum()
}

/// Appends `extra` to `spans` if the whole still fits on one line of
/// `width`: the figures go before the message text has to wrap.
fn with_extra(
    mut spans: Vec<Span<'static>>,
    extra: Option<Span<'static>>,
    width: usize,
) -> Vec<Span<'static>> {
    if let Some(e) = extra
        && columns(&spans) + columns(std::slice::from_ref(&e)) <= width
    {
        spans.push(e);
    }
    spans
}

/// ` (server 0.031, net 0.909)`: where a round trip went, in ms.
pub(super) fn split_text(s: &Sample) -> String {
    format!(
        " (server {:.3}, net {:.3})",
        s.server_us as f64 / 1000.0,
        s.network_us as f64 / 1000.0
    )
}

/// `  · 0.41ms ±0.06 one way`: how long a relayed message took to reach us.
pub(super) fn relay_text(t: &RelayTiming) -> String {
    let (d, what) = match t {
        RelayTiming::OneWay(d) => (d, "one way"),
        RelayTiming::SinceServer(d) => (d, "from server"),
    };
    format!(
        "  · {:.2}ms ±{:.2} {what}",
        d.delay_us as f64 / 1000.0,
        d.bound_us as f64 / 1000.0
    )
}

fn entry_lines(
    e: &Entry,
    me: &str,
    width: usize,
    now: Instant,
    theme: &Theme,
) -> Vec<Line<'static>> {
    match e {
        Entry::Mine { id, text, status } => {
            let mut out = wrap(
                vec![
                    Span::styled(format!("{me}: "), theme.me),
                    Span::raw(sanitize(text).into_owned()),
                ],
                width,
                INDENT,
            );
            let (mark, body, style) = match status {
                MsgStatus::Queued => (
                    "⏸",
                    "queued: will be sent when the connection is back".to_string(),
                    theme.waiting,
                ),
                MsgStatus::Pending { since } => (
                    "…",
                    format!(
                        "waiting for reply ({:.1}s)",
                        now.saturating_duration_since(*since).as_secs_f64()
                    ),
                    theme.waiting,
                ),
                MsgStatus::Replied { rtt, reply, split } => {
                    let spans = vec![
                        Span::styled("  ↳ ", theme.dim),
                        Span::styled(sanitize(reply).into_owned(), theme.reply),
                        Span::styled(format!("  #{id} rtt {}", fmt_dur(*rtt)), theme.dim),
                    ];
                    let extra = split.map(|s| Span::styled(split_text(&s), theme.dim));
                    let mut v = wrap(with_extra(spans, extra, width), width, REPLY_INDENT);
                    out.append(&mut v);
                    return out;
                }
                MsgStatus::TimedOut { .. } => (
                    "⚠",
                    "no reply yet: timed out (a late reply still counts)".to_string(),
                    theme.failed,
                ),
                MsgStatus::Undelivered { reason } => (
                    "✗",
                    format!("not delivered: {}", sanitize(reason)),
                    theme.failed,
                ),
            };
            out.append(&mut wrap(
                vec![Span::styled(format!("  {mark} {body}"), style)],
                width,
                REPLY_INDENT,
            ));
            out
        }
        Entry::Other {
            from,
            text,
            time,
            timing,
        } => {
            let hms = time.map_or_else(String::new, |t| t.format("%H:%M:%S").to_string());
            let spans = vec![
                Span::styled(format!("{hms} "), theme.dim),
                Span::styled(format!("{}: ", sanitize(from)), theme.peer),
                Span::raw(sanitize(text).into_owned()),
            ];
            let extra = timing.map(|t| Span::styled(relay_text(&t), theme.dim));
            wrap(with_extra(spans, extra, width), width, INDENT)
        }
        Entry::Notice { text, level } => {
            let style = match level {
                Level::Info => theme.notice_info,
                Level::Warn => theme.notice_warn,
                Level::Error => theme.notice_error,
            };
            wrap(
                vec![Span::styled(format!("— {}", sanitize(text)), style)],
                width,
                INDENT,
            )
        }
    }
}

/// The last `height` rows of the entries (newest first in `items`) after
/// skipping `scroll` rows from the bottom, building only what is needed (the
/// scrollback can be long). Clamps `scroll` at the top of the history.
fn bottom_rows<'a>(
    items: impl Iterator<Item = &'a Entry>,
    height: usize,
    scroll: &mut usize,
    mut make: impl FnMut(&'a Entry) -> Vec<Line<'static>>,
) -> Vec<Line<'static>> {
    let mut rows: Vec<Line<'static>> = Vec::new();
    let need = height.saturating_add(*scroll);
    for item in items {
        let mut ls = make(item);
        ls.reverse();
        rows.extend(ls);
        if rows.len() >= need {
            break;
        }
    }
    let max_scroll = rows.len().saturating_sub(height);
    if *scroll > max_scroll {
        *scroll = max_scroll;
    }
    let start = *scroll;
    let end = start.saturating_add(height).min(rows.len());
    let mut v: Vec<Line<'static>> = rows[start..end].to_vec();
    v.reverse();
    v
}

pub(super) fn draw(f: &mut Frame, app: &mut App, area: Rect, theme: &Theme) {
    let focused = app.focus() == Focus::Replies;
    // The borders are the same whatever the title: the inner area is known
    // before the rows, which clamp the scroll the title shows.
    let inner = pane(Line::default(), focused, theme).inner(area);
    let now = Instant::now();
    let width = inner.width as usize;
    let me = app.status().name().to_string();
    let mut scroll = app.chat().scroll();
    let rows = bottom_rows(
        app.chat().entries().iter().rev(),
        inner.height as usize,
        &mut scroll,
        |e| entry_lines(e, &me, width, now, theme),
    );
    app.clamp_chat_scroll(scroll);
    let mut title = vec![Span::raw(" Chat ")];
    if scroll > 0 {
        title.push(Span::styled(
            format!(" ↑ scrolled {scroll} rows · End/PgDn to follow "),
            theme.scroll_bar,
        ));
    }
    f.render_widget(pane(Line::from(title), focused, theme), area);
    if rows.is_empty() {
        f.render_widget(
            Paragraph::new(Line::styled(
                "Type a message and press Enter. F1 for help.",
                theme.dim,
            )),
            inner,
        );
        return;
    }
    f.render_widget(Paragraph::new(rows), inner);
}
