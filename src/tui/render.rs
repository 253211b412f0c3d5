//! Drawing: pure functions from [`App`] to a frame, one per panel.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Sparkline};
use unicode_width::UnicodeWidthChar;

use crate::eventlog;

use super::app::{App, ConnState, Entry, Focus, Level, LogSource, LogView, MsgStatus, sanitize};

/// Below this width the panes stack instead of standing side by side.
pub const WIDE: u16 = 100;

/// Draws the whole screen and records pane areas for the mouse.
pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let [status, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    draw_status(f, app, status, Instant::now());
    let (chat, input, live) = if area.width >= WIDE {
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(56), Constraint::Percentage(44)])
                .areas(body);
        let [chat, input] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(3)]).areas(left);
        (chat, input, right)
    } else {
        let live_h = (body.height * 2 / 5)
            .max(8)
            .min(body.height.saturating_sub(6));
        let [chat, live, input] = Layout::vertical([
            Constraint::Min(3),
            Constraint::Length(live_h),
            Constraint::Length(3),
        ])
        .areas(body);
        (chat, input, live)
    };
    app.reply_area = chat;
    app.live_area = live;
    app.page = chat.height.saturating_sub(3) as usize;
    draw_chat(f, app, chat);
    draw_input(f, app, input);
    draw_live(f, app, live);
    if app.show_help {
        draw_help(f, area);
    }
}

fn border_style(focused: bool) -> Style {
    if focused {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new().fg(Color::DarkGray)
    }
}

fn pane(title: Line<'static>, focused: bool) -> Block<'static> {
    Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(border_style(focused))
        .title(title)
}

/// `0.213ms`, `12.3ms`, `1.23s`: three significant figures at any scale.
pub fn fmt_dur(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.3}ms")
    } else if ms < 1000.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

fn draw_status(f: &mut Frame, app: &App, area: Rect, now: Instant) {
    let (dot, state, color) = match &app.conn {
        ConnState::Connected => ("●", "connected".to_string(), Color::Green),
        ConnState::Connecting { attempt } if *attempt <= 1 => {
            ("◌", "connecting…".to_string(), Color::Yellow)
        }
        ConnState::Connecting { attempt } => (
            "◌",
            format!("reconnecting (attempt {attempt})…"),
            Color::Yellow,
        ),
        ConnState::Disconnected { reason, retry_at } => {
            let secs = retry_at.saturating_duration_since(now).as_secs_f64();
            (
                "○",
                format!("disconnected: {} · retry in {secs:.1}s", sanitize(reason)),
                Color::Red,
            )
        }
        ConnState::Closed => ("○", "closed".to_string(), Color::DarkGray),
    };
    let mut spans = vec![
        Span::styled(format!(" {dot} {state} "), Style::new().fg(color).bold()),
        Span::raw("│ "),
        Span::styled(sanitize(&app.server).into_owned(), Style::new().bold()),
        Span::raw(" │ you: "),
        Span::styled(app.name.clone(), Style::new().fg(Color::Cyan).bold()),
        Span::raw(format!(" │ {} in room ", app.user_count)),
    ];
    if let Some(note) = &app.local_server {
        spans.push(Span::raw("│ "));
        spans.push(Span::styled(note.clone(), Style::new().fg(Color::Magenta)));
        spans.push(Span::raw(" "));
    }
    spans.push(Span::styled("│ F1 help", Style::new().fg(Color::DarkGray)));
    f.render_widget(
        Paragraph::new(Line::from(spans)).style(Style::new().bg(Color::Black).fg(Color::White)),
        area,
    );
}

/// Wraps styled spans to `width` columns at spaces where it can (inside a
/// word only when the word is wider than the line), counting wide characters
/// as two columns. Continuation lines are indented by `indent`.
pub fn wrap(spans: Vec<Span<'static>>, width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(indent + 2);
    let mut lines = Vec::new();
    let mut cur: Vec<Span<'static>> = Vec::new();
    let mut col = 0;
    let mut fresh = true;
    let break_line =
        |lines: &mut Vec<Line<'static>>, cur: &mut Vec<Span<'static>>, col: &mut usize| {
            lines.push(Line::from(std::mem::take(cur)));
            cur.push(Span::raw(" ".repeat(indent)));
            *col = indent;
        };
    for span in spans {
        let style = span.style;
        for word in span.content.split_inclusive(' ') {
            let w: usize = word.chars().map(|c| c.width().unwrap_or(0)).sum();
            let visible = w - usize::from(word.ends_with(' '));
            if col + visible > width && !fresh {
                break_line(&mut lines, &mut cur, &mut col);
            }
            if col + visible <= width {
                cur.push(Span::styled(word.to_string(), style));
                col += w;
                fresh = false;
                continue;
            }
            // A word wider than the line: split it by characters.
            let mut buf = String::new();
            for c in word.chars() {
                let cw = c.width().unwrap_or(0);
                if col + cw > width {
                    if !buf.is_empty() {
                        cur.push(Span::styled(std::mem::take(&mut buf), style));
                    }
                    break_line(&mut lines, &mut cur, &mut col);
                }
                buf.push(c);
                col += cw;
            }
            if !buf.is_empty() {
                cur.push(Span::styled(buf, style));
            }
            fresh = false;
        }
    }
    lines.push(Line::from(cur));
    lines
}

fn entry_lines(e: &Entry, me: &str, width: usize, now: Instant) -> Vec<Line<'static>> {
    match e {
        Entry::Mine { id, text, status } => {
            let mut out = wrap(
                vec![
                    Span::styled(format!("{me}: "), Style::new().fg(Color::Cyan).bold()),
                    Span::raw(sanitize(text).into_owned()),
                ],
                width,
                2,
            );
            let (mark, body, color) = match status {
                MsgStatus::Queued => (
                    "⏸",
                    "queued: will be sent when the connection is back".to_string(),
                    Color::Yellow,
                ),
                MsgStatus::Pending { since } => (
                    "…",
                    format!(
                        "waiting for reply ({:.1}s)",
                        now.saturating_duration_since(*since).as_secs_f64()
                    ),
                    Color::Yellow,
                ),
                MsgStatus::Replied { rtt, reply } => {
                    let mut v = wrap(
                        vec![
                            Span::styled("  ↳ ", Style::new().fg(Color::DarkGray)),
                            Span::styled(
                                sanitize(reply).into_owned(),
                                Style::new().fg(Color::Green),
                            ),
                            Span::styled(
                                format!("  #{id} rtt {}", fmt_dur(*rtt)),
                                Style::new().fg(Color::DarkGray),
                            ),
                        ],
                        width,
                        4,
                    );
                    out.append(&mut v);
                    return out;
                }
                MsgStatus::TimedOut { .. } => (
                    "⚠",
                    "no reply yet: timed out (a late reply still counts)".to_string(),
                    Color::Red,
                ),
                MsgStatus::Undelivered { reason } => (
                    "✗",
                    format!("not delivered: {}", sanitize(reason)),
                    Color::Red,
                ),
            };
            out.append(&mut wrap(
                vec![Span::styled(
                    format!("  {mark} {body}"),
                    Style::new().fg(color),
                )],
                width,
                4,
            ));
            out
        }
        Entry::Other { from, text, ts } => {
            let hms = ts.get(11..19).unwrap_or("");
            wrap(
                vec![
                    Span::styled(format!("{hms} "), Style::new().fg(Color::DarkGray)),
                    Span::styled(
                        format!("{}: ", sanitize(from)),
                        Style::new().fg(Color::Magenta).bold(),
                    ),
                    Span::raw(sanitize(text).into_owned()),
                ],
                width,
                2,
            )
        }
        Entry::Notice { text, level } => {
            let color = match level {
                Level::Info => Color::DarkGray,
                Level::Warn => Color::Yellow,
                Level::Error => Color::Red,
            };
            wrap(
                vec![Span::styled(
                    format!("— {}", sanitize(text)),
                    Style::new().fg(color).add_modifier(Modifier::ITALIC),
                )],
                width,
                2,
            )
        }
    }
}

/// The last `height` rows of `lines` after skipping `scroll` rows from the
/// bottom, building only what is needed (the scrollback can be long).
fn bottom_rows<'a, I>(
    items: I,
    height: usize,
    scroll: &mut usize,
    mut make: impl FnMut(I::Item) -> Vec<Line<'static>>,
) -> Vec<Line<'static>>
where
    I: Iterator<Item = &'a Entry>,
{
    let _ = &mut make;
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
    // Clamp scrolling at the top of the history.
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

fn draw_chat(f: &mut Frame, app: &mut App, area: Rect) {
    let focused = app.focus == Focus::Replies;
    // The borders are the same whatever the title: the inner area is known
    // before the rows, which clamp the scroll the title shows.
    let inner = pane(Line::default(), focused).inner(area);
    let now = Instant::now();
    let width = inner.width as usize;
    let me = app.name.clone();
    let mut scroll = app.scroll;
    let rows = bottom_rows(
        app.entries.iter().rev(),
        inner.height as usize,
        &mut scroll,
        |e| entry_lines(e, &me, width, now),
    );
    app.scroll = scroll;
    let mut title = vec![Span::raw(" Chat ")];
    if app.scroll > 0 {
        title.push(Span::styled(
            format!(" ↑ scrolled {} rows · End/PgDn to follow ", app.scroll),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
    }
    f.render_widget(pane(Line::from(title), focused), area);
    if rows.is_empty() {
        f.render_widget(
            Paragraph::new(Line::styled(
                "Type a message and press Enter. F1 for help.",
                Style::new().fg(Color::DarkGray),
            )),
            inner,
        );
        return;
    }
    f.render_widget(Paragraph::new(rows), inner);
}

fn draw_input(f: &mut Frame, app: &App, area: Rect) {
    let focused = app.focus == Focus::Input;
    let hint = if area.width > 70 {
        " Message · Enter send · ↑↓ history · Tab focus · F1 help "
    } else {
        " Message · F1 help "
    };
    let block = pane(Line::raw(hint), focused);
    let inner = block.inner(area);
    f.render_widget(block, area);
    let width = inner.width.max(1) as usize;
    // Keep one column for the cursor at the end of the line.
    let scroll = app.input.visual_scroll(width.saturating_sub(1));
    f.render_widget(
        Paragraph::new(app.input.value()).scroll((0, scroll as u16)),
        inner,
    );
    if focused && !app.show_help {
        let x = app.input.visual_cursor().saturating_sub(scroll) as u16;
        f.set_cursor_position((inner.x + x.min(inner.width.saturating_sub(1)), inner.y));
    }
}

fn draw_live(f: &mut Frame, app: &mut App, area: Rect) {
    let server_h = if app.server_figures.is_some() { 3 } else { 0 };
    let recent_h = if area.height >= 24 { 7 } else { 0 };
    let spark_h = if area.height >= 16 { 5 } else { 0 };
    let [stats, server, spark, recent, log] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(server_h),
        Constraint::Length(spark_h),
        Constraint::Length(recent_h),
        Constraint::Min(3),
    ])
    .areas(area);
    draw_figures(f, app, stats);
    if server_h > 0 {
        draw_server(f, app, server);
    }
    if spark_h > 0 {
        draw_spark(f, app, spark);
    }
    if recent_h > 0 {
        draw_recent(f, app, recent);
    }
    draw_log(f, app, log);
}

fn draw_figures(f: &mut Frame, app: &App, area: Rect) {
    let s = &app.figures;
    let block = pane(Line::raw(" Round-trip latency "), false);
    let label = Style::new().fg(Color::DarkGray);
    let val = Style::new().bold();
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

fn draw_server(f: &mut Frame, app: &App, area: Rect) {
    let Some(s) = &app.server_figures else {
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
        Paragraph::new(line).block(pane(Line::raw(" Server "), false)),
        area,
    );
}

fn draw_spark(f: &mut Frame, app: &App, area: Rect) {
    let n = area.width.saturating_sub(2) as usize;
    let data: Vec<u64> = app
        .rtts
        .iter()
        .rev()
        .take(n)
        .rev()
        .map(|(_, d)| d.as_micros() as u64)
        .collect();
    let max = data.iter().copied().max().unwrap_or(0);
    let title = format!(
        " RTT, last {} (top {}) ",
        data.len(),
        fmt_dur(Duration::from_micros(max))
    );
    f.render_widget(
        Sparkline::default()
            .block(pane(Line::raw(title), false))
            .data(data)
            .style(Style::new().fg(Color::Green)),
        area,
    );
}

fn draw_recent(f: &mut Frame, app: &App, area: Rect) {
    let rows = area.height.saturating_sub(2) as usize;
    let now = Instant::now();
    let mut lines: Vec<Line> = Vec::new();
    for e in app.entries.iter().rev() {
        if lines.len() >= rows {
            break;
        }
        let Entry::Mine { id, text, status } = e else {
            continue;
        };
        let (fig, color) = match status {
            MsgStatus::Replied { rtt, .. } => (fmt_dur(*rtt), Color::Green),
            MsgStatus::Pending { since } => (
                format!(
                    "pending {:.1}s",
                    now.saturating_duration_since(*since).as_secs_f64()
                ),
                Color::Yellow,
            ),
            MsgStatus::Queued => ("queued".into(), Color::Yellow),
            MsgStatus::TimedOut { .. } => ("timed out".into(), Color::Red),
            MsgStatus::Undelivered { .. } => ("undelivered".into(), Color::Red),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("#{id:<4} "), Style::new().fg(Color::DarkGray)),
            Span::styled(format!("{fig:>12} "), Style::new().fg(color)),
            Span::raw(sanitize(text).into_owned()),
        ]));
    }
    lines.reverse();
    f.render_widget(
        Paragraph::new(lines).block(pane(Line::raw(" Recent messages "), false)),
        area,
    );
}

fn kind_color(line: &str) -> Color {
    let kind = line.split(": ").next().unwrap_or("");
    match kind {
        "Error" => Color::Red,
        "Connection" | "Disconnection" | "Join" => Color::Yellow,
        "Message Sent" => Color::Blue,
        "Message Received" => Color::Green,
        "Stats" | "Server Start" | "Server Stop" => Color::Magenta,
        _ => Color::Gray,
    }
}

/// One log line for the panel: `HH:MM:SS.mmm Kind: message`. The date and
/// the last digits of the time are dropped to fit a side panel (the file
/// keeps the full line); a line that is not an event line is shown as it is.
fn log_spans(mark: &str, line: &str) -> Vec<Span<'static>> {
    let mark = Span::styled(mark.to_string(), Style::new().fg(Color::DarkGray));
    let Ok(e) = eventlog::parse_line(line) else {
        return vec![mark, Span::raw(sanitize(line).into_owned())];
    };
    let time = eventlog::format_time(e.time);
    let color = kind_color(line);
    vec![
        mark,
        Span::styled(
            format!("{} ", time.get(11..23).unwrap_or(&time)),
            Style::new().fg(Color::DarkGray),
        ),
        Span::styled(
            format!("{}: ", sanitize(e.kind)),
            Style::new().fg(color).bold(),
        ),
        // Escaped as in the file, then made safe to draw.
        Span::styled(
            sanitize(&eventlog::escape(&e.message)).into_owned(),
            Style::new().fg(color),
        ),
    ]
}

fn draw_log(f: &mut Frame, app: &mut App, area: Rect) {
    let focused = app.focus == Focus::Live;
    // As in the chat: the title shows the scroll once clamped below.
    let inner = pane(Line::default(), focused).inner(area);
    let width = inner.width as usize;
    let height = inner.height as usize;
    let mut rows: Vec<Line<'static>> = Vec::new();
    if let Some(note) = &app.log_note {
        rows.extend(wrap(
            vec![Span::styled(
                sanitize(note).into_owned(),
                Style::new().fg(Color::Yellow),
            )],
            width,
            2,
        ));
    }
    let need = height.saturating_add(app.log_scroll);
    let mut body: Vec<Line<'static>> = Vec::new();
    for l in app.visible_log().rev() {
        // In the merged view, mark what only the stream brought: those
        // lines are not in the file.
        let mark = match app.log_view {
            LogView::Both if l.sources.only(LogSource::Server) => "⇣",
            LogView::Both => " ",
            _ => "",
        };
        let mut ls = wrap(log_spans(mark, &l.text), width, 3);
        ls.reverse();
        body.extend(ls);
        if body.len() >= need {
            break;
        }
    }
    let avail = height.saturating_sub(rows.len());
    let max_scroll = body.len().saturating_sub(avail);
    app.log_scroll = app.log_scroll.min(max_scroll);
    let start = app.log_scroll;
    let end = start.saturating_add(avail).min(body.len());
    let mut shown: Vec<Line<'static>> = body[start..end].to_vec();
    shown.reverse();
    rows.extend(shown);
    let mut title = format!(" Log · {} · {} (F2) ", app.tail_path, app.log_view.label());
    if app.log_scroll > 0 {
        title.push_str(&format!("↑{} ", app.log_scroll));
    }
    f.render_widget(pane(Line::raw(title), focused), area);
    if rows.is_empty() {
        rows.push(Line::styled(
            "waiting for log lines…",
            Style::new().fg(Color::DarkGray),
        ));
    }
    f.render_widget(Paragraph::new(rows), inner);
}

fn draw_help(f: &mut Frame, area: Rect) {
    let text = vec![
        Line::from("Enter        send the message (or run a /command)".bold()),
        Line::from("↑ / ↓        recall earlier input"),
        Line::from("PgUp / PgDn  scroll the chat (mouse wheel too)"),
        Line::from("Ctrl-End     jump back to the newest message"),
        Line::from("Tab          move focus: input → chat → log"),
        Line::from("F2           log view: file / server stream / both"),
        Line::from("F1 or ?      this help (any key closes it)"),
        Line::from("Esc, Ctrl-C  quit"),
        Line::from(""),
        Line::from("/nick NAME   change your name"),
        Line::from("/log file|server|both   choose the log view"),
        Line::from("/clear       clear the chat pane"),
        Line::from("/quit        quit          //text sends /text"),
        Line::from(""),
        Line::from("Each message shows the server's reply and its round-trip".dark_gray()),
        Line::from("time, measured from the socket write to the reply's read.".dark_gray()),
    ];
    let w = 64.min(area.width);
    let h = (text.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(text).block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .title(" chatmon help ")
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        popup,
    );
}

/// Draws the app on an off-screen terminal of `width` × `height` and returns
/// the screen as text, one line per row (wide characters once): for render
/// tests and text screenshots.
pub fn to_text(app: &mut App, width: u16, height: u16) -> String {
    // An off-screen backend cannot fail (its error type is uninhabited).
    let Ok(mut t) = ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height));
    let Ok(_) = t.draw(|f| draw(f, app));
    let buf = t.backend().buffer();
    let mut s = String::new();
    for y in 0..buf.area.height {
        let mut skip = 0;
        for x in 0..buf.area.width {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let sym = buf[(x, y)].symbol();
            skip = unicode_width::UnicodeWidthStr::width(sym).saturating_sub(1);
            s.push_str(sym);
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientEvent;

    fn screen(app: &mut App, w: u16, h: u16) -> String {
        to_text(app, w, h)
    }

    fn sample_app() -> App {
        let mut app = App::new("127.0.0.1:7878", "alice", "log.txt");
        let now = Instant::now();
        app.on_client(
            ClientEvent::Connected {
                name: "alice".into(),
                users: vec!["alice".into(), "bob".into()],
                server: "chatmon 0.1.0".into(),
                embedded: false,
            },
            now,
        );
        app.sent_local(1, "hello 世界".into());
        app.on_client(ClientEvent::Sent { id: 1 }, now);
        app.on_client(
            ClientEvent::Reply {
                id: 1,
                text: "Server received: hello 世界".into(),
                rtt: Duration::from_micros(213),
            },
            now,
        );
        app.on_client(
            ClientEvent::Chat {
                from: "bob".into(),
                text: "hi \u{1b}[31mred".into(),
                ts: "2026-11-25 10:00:01.000000".into(),
            },
            now,
        );
        app.sent_local(2, "pending one".into());
        app.on_client(ClientEvent::Sent { id: 2 }, now);
        app.push_log(
            LogSource::File,
            "Connection: 2026-11-25 10:00:00.000000 - server: 127.0.0.1:5000 connected".into(),
        );
        app
    }

    #[test]
    fn wide_layout_shows_all_panels() {
        let mut app = sample_app();
        let s = screen(&mut app, 120, 40);
        assert!(s.contains("● connected"), "{s}");
        assert!(s.contains("2 in room"), "{s}");
        assert!(s.contains("alice: hello 世界"), "{s}");
        assert!(s.contains("↳ Server received: hello 世界"), "{s}");
        assert!(s.contains("rtt 0.213ms"), "{s}");
        assert!(s.contains("bob: hi \\u{1b}[31mred"), "{s}");
        assert!(s.contains("waiting for reply"), "{s}");
        assert!(s.contains("Round-trip latency"), "{s}");
        assert!(s.contains("p50 0.213ms"), "{s}");
        assert!(s.contains("Recent messages"), "{s}");
        assert!(
            s.contains("10:00:00.000 Connection: server: 127.0.0.1:5000"),
            "{s}"
        );
        assert!(!s.contains('\u{1b}'));
        // Side by side: the chat and the latency panel share a row.
        let row = s.lines().find(|l| l.contains("Chat")).expect("chat row");
        assert!(row.contains("Round-trip latency"), "{row}");
    }

    #[test]
    fn narrow_layout_stacks() {
        let mut app = sample_app();
        let s = screen(&mut app, 60, 40);
        let row = s.lines().find(|l| l.contains("Chat")).expect("chat row");
        assert!(!row.contains("Round-trip"), "{row}");
        assert!(s.contains("Round-trip latency"), "{s}");
        assert!(s.contains("Message"), "{s}");
    }

    #[test]
    fn tiny_terminal_does_not_panic() {
        let mut app = sample_app();
        app.show_help = true;
        for (w, h) in [(1, 1), (10, 3), (20, 8), (40, 12), (100, 10)] {
            let _ = screen(&mut app, w, h);
        }
    }

    #[test]
    fn help_popup_and_scroll_hint() {
        let mut app = sample_app();
        app.show_help = true;
        let s = screen(&mut app, 100, 30);
        assert!(s.contains("chatmon help"), "{s}");
        app.show_help = false;
        for i in 0..100 {
            app.notice(Level::Info, format!("line {i}"));
        }
        app.scroll = 5;
        let s = screen(&mut app, 100, 30);
        assert!(s.contains("scrolled"), "{s}");
        assert!(s.contains("line 94"), "{s}");
        assert!(!s.contains("line 99"), "{s}");
    }

    #[test]
    fn wrap_counts_wide_chars() {
        let lines = wrap(vec![Span::raw("世界世界世界")], 5, 0);
        let widths: Vec<usize> = lines.iter().map(|l| l.width()).collect();
        assert_eq!(widths, vec![4, 4, 4]);
    }

    #[test]
    fn wrap_breaks_at_spaces() {
        let text = |l: &Line| {
            l.spans
                .iter()
                .map(|s| s.content.as_ref())
                .collect::<String>()
        };
        let lines = wrap(vec![Span::raw("the quick brown fox")], 10, 2);
        let got: Vec<String> = lines.iter().map(text).collect();
        assert_eq!(got, vec!["the quick ", "  brown ", "  fox"]);
        assert!(lines.iter().all(|l| l.width() <= 10));
        let lines = wrap(vec![Span::raw("ab "), Span::raw("0123456789abc")], 6, 0);
        assert!(lines.iter().all(|l| l.width() <= 6), "{lines:?}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_dur(Duration::from_micros(213)), "0.213ms");
        assert_eq!(fmt_dur(Duration::from_micros(12_345)), "12.3ms");
        assert_eq!(fmt_dur(Duration::from_millis(1234)), "1.23s");
    }

    #[test]
    fn merged_view_marks_only_stream_only_lines() {
        let mut app = App::new("s", "me", "log.txt");
        let both = "Connection: 2026-01-01 10:00:01.000000 - in both";
        let stream = "Connection: 2026-01-01 10:00:02.000000 - stream only";
        app.push_log(LogSource::Server, both.into());
        app.push_log(LogSource::Server, stream.into());
        app.push_log(LogSource::File, both.into());
        let s = screen(&mut app, 120, 40);
        let row = |s: &str, text: &str| {
            s.lines()
                .find(|l| l.contains(text))
                .unwrap_or_else(|| panic!("no {text}:\n{s}"))
                .to_string()
        };
        assert!(!row(&s, "in both").contains('⇣'), "{s}");
        assert!(row(&s, "stream only").contains('⇣'), "{s}");
        // The file view shows every line that is in the file, streamed
        // first or not.
        app.log_view = LogView::File;
        let s = screen(&mut app, 120, 40);
        assert!(s.contains("in both") && !s.contains("stream only"), "{s}");
        app.log_view = LogView::Server;
        let s = screen(&mut app, 120, 40);
        assert!(s.contains("in both") && s.contains("stream only"), "{s}");
    }

    #[test]
    fn scroll_titles_show_the_clamped_offset() {
        let mut app = sample_app();
        app.scroll = crate::tui::app::MAX_SCROLL;
        app.log_scroll = crate::tui::app::MAX_SCROLL;
        let s = screen(&mut app, 120, 40);
        assert!(!s.contains(&crate::tui::app::MAX_SCROLL.to_string()), "{s}");
        assert!(app.scroll < 100 && app.log_scroll < 100);
    }
}
