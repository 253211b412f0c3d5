//! Drawing: the layout of the screen and one file per panel, each a function
//! from the [`App`]'s panes and a `Theme` to a part of the frame. Drawing
//! reads the state and writes back only what only it can know: the rows the
//! panes wrap to (scrolls are clamped to them) and the areas it laid out
//! (for the mouse and paging).

mod chart;
mod chat;
mod figures;
mod help;
mod input;
mod lag;
mod log;
mod recent;
mod server;
mod status;
mod text;
mod theme;

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType};

use super::app::App;
pub(crate) use theme::Theme;
pub use theme::ThemeChoice;

/// Below this width the panes stack instead of standing side by side.
pub(crate) const WIDE: u16 = 100;
/// Side by side: the share of the width the chat and input get; the log
/// side has the rest.
const CHAT_PERCENT: u16 = 56;
/// Rows of the input box (one line and its borders).
const INPUT_ROWS: u16 = 3;
/// Fewest rows of the chat pane (one line and its borders).
const CHAT_MIN_ROWS: u16 = 3;
/// Stacked: the log side gets this share of the height...
const STACKED_LIVE_SHARE: (u16, u16) = (2, 5);
/// ...but at least this many rows...
const STACKED_LIVE_MIN: u16 = 8;
/// ...while leaving this many for the chat and the input.
const STACKED_CHAT_KEEP: u16 = 6;
/// Rows of the server panel, when the server streams figures.
const SERVER_ROWS: u16 = 3;
/// Fewest rows of the chart (its axes, labels and a few rows of points):
/// with fewer it is not drawn at all.
const CHART_MIN_ROWS: u16 = 8;
/// Most rows the chart takes; the log has the rest.
const CHART_MAX_ROWS: u16 = 12;
/// The chart's share of the rows the figures and the log leave.
const CHART_SHARE: (u16, u16) = (2, 5);
/// Rows of the recent messages, shown when the chart leaves them...
const RECENT_ROWS: u16 = 7;
/// ...and the log still has this many more than its least.
const LOG_KEEP_ROWS: u16 = 6;
/// Fewest rows of the log panel.
const LOG_MIN_ROWS: u16 = 3;
/// Rows of the reply pane a page leaves out: its two borders, and one row
/// kept from the page before for context.
const PAGE_OVERLAP: u16 = 3;

/// Draws the whole screen and records pane areas for the mouse.
pub(crate) fn draw(f: &mut Frame, app: &mut App, theme: &Theme) {
    app.sync_live(Instant::now());
    let area = f.area();
    let [status, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    status::draw(f, app, status, Instant::now(), theme);
    let (chat, input, live) = if area.width >= WIDE {
        let [left, right] = Layout::horizontal([
            Constraint::Percentage(CHAT_PERCENT),
            Constraint::Percentage(100 - CHAT_PERCENT),
        ])
        .areas(body);
        let [chat, input] = Layout::vertical([
            Constraint::Min(CHAT_MIN_ROWS),
            Constraint::Length(INPUT_ROWS),
        ])
        .areas(left);
        (chat, input, right)
    } else {
        let (num, den) = STACKED_LIVE_SHARE;
        let live_h = (body.height * num / den)
            .max(STACKED_LIVE_MIN)
            .min(body.height.saturating_sub(STACKED_CHAT_KEEP));
        let [chat, live, input] = Layout::vertical([
            Constraint::Min(CHAT_MIN_ROWS),
            Constraint::Length(live_h),
            Constraint::Length(INPUT_ROWS),
        ])
        .areas(body);
        (chat, input, live)
    };
    app.set_frame(live, chat.height.saturating_sub(PAGE_OVERLAP) as usize);
    chat::draw(f, app, chat, theme);
    input::draw(f, app, input, theme);
    draw_live(f, app, live, theme);
    if app.show_help() {
        help::draw(f, area, theme);
    }
}

/// The log side: figures, server, chart, recent messages and the log. When
/// rows are short the chart shrinks and goes first, then the figures drop
/// to two lines; the log keeps a few rows (and the chat, beside or above,
/// is never what gives way).
fn draw_live(f: &mut Frame, app: &mut App, area: ratatui::layout::Rect, theme: &Theme) {
    let server_h = if app.figures().server().is_some() {
        SERVER_ROWS
    } else {
        0
    };
    // Where the time goes (server/network time, clock offset) takes rows of
    // its own below the table, and is the first to go when rows are short.
    let timing_h = figures::timing_rows(app);
    let figures_h = if area.height >= figures::FULL_ROWS + timing_h + LOG_MIN_ROWS {
        figures::FULL_ROWS + timing_h
    } else if area.height >= figures::FULL_ROWS + LOG_MIN_ROWS {
        figures::FULL_ROWS
    } else {
        figures::COMPACT_ROWS
    };
    let rest = area
        .height
        .saturating_sub(figures_h + server_h + LOG_MIN_ROWS);
    let (num, den) = CHART_SHARE;
    let chart_h = if rest >= CHART_MIN_ROWS {
        (rest * num / den).clamp(CHART_MIN_ROWS, CHART_MAX_ROWS)
    } else {
        0
    };
    let recent_h = if rest.saturating_sub(chart_h) >= RECENT_ROWS + LOG_KEEP_ROWS {
        RECENT_ROWS
    } else {
        0
    };
    let [stats, server, chart, recent, log] = Layout::vertical([
        Constraint::Length(figures_h),
        Constraint::Length(server_h),
        Constraint::Length(chart_h),
        Constraint::Length(recent_h),
        Constraint::Min(LOG_MIN_ROWS),
    ])
    .areas(area);
    figures::draw(f, app, stats, theme);
    if server_h > 0 {
        server::draw(f, app, server, theme);
    }
    if chart_h > 0 {
        chart::draw(f, app, chart, Instant::now(), theme);
    }
    if recent_h > 0 {
        recent::draw(f, app, recent, theme);
    }
    log::draw(f, app, log, theme);
}

/// A bordered pane; the focused one has a thick border in the focus colour.
fn pane(title: Line<'static>, focused: bool, theme: &Theme) -> Block<'static> {
    Block::bordered()
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Plain
        })
        .border_style(if focused {
            theme.border_focused
        } else {
            theme.border
        })
        .title(title)
}

/// Draws the app with the default theme on an off-screen terminal of
/// `width` × `height` and returns the screen as text, one line per row (wide
/// characters once): for render tests and text screenshots.
pub fn to_text(app: &mut App, width: u16, height: u16) -> String {
    buffer_text(&to_buffer(app, width, height, &Theme::default()))
}

/// Draws the app with the default theme off screen and returns the screen
/// as ANSI text (SGR colours and bold/dim/italic/underline/reverse, one
/// line per row): for the README's screenshot (`examples/screenshot.rs`).
pub fn to_ansi(app: &mut App, width: u16, height: u16) -> String {
    use ratatui::style::{Color, Modifier};
    let buf = to_buffer(app, width, height, &Theme::default());
    let colour = |c: Color, fg: bool| -> String {
        let base = if fg { 30 } else { 40 };
        match c {
            Color::Reset => format!("{}", base + 9),
            Color::Black => format!("{base}"),
            Color::Red => format!("{}", base + 1),
            Color::Green => format!("{}", base + 2),
            Color::Yellow => format!("{}", base + 3),
            Color::Blue => format!("{}", base + 4),
            Color::Magenta => format!("{}", base + 5),
            Color::Cyan => format!("{}", base + 6),
            Color::Gray => format!("{}", base + 7),
            Color::DarkGray => format!("{}", base + 60),
            Color::LightRed => format!("{}", base + 61),
            Color::LightGreen => format!("{}", base + 62),
            Color::LightYellow => format!("{}", base + 63),
            Color::LightBlue => format!("{}", base + 64),
            Color::LightMagenta => format!("{}", base + 65),
            Color::LightCyan => format!("{}", base + 66),
            Color::White => format!("{}", base + 67),
            Color::Indexed(i) => format!("{};5;{i}", base + 8),
            Color::Rgb(r, g, b) => format!("{};2;{r};{g};{b}", base + 8),
        }
    };
    let mut s = String::new();
    for y in 0..buf.area.height {
        let mut last = None;
        let mut skip = 0;
        for x in 0..buf.area.width {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let cell = &buf[(x, y)];
            let style = (cell.fg, cell.bg, cell.modifier);
            if last != Some(style) {
                let mut sgr = vec![
                    "0".to_string(),
                    colour(cell.fg, true),
                    colour(cell.bg, false),
                ];
                for (m, code) in [
                    (Modifier::BOLD, "1"),
                    (Modifier::DIM, "2"),
                    (Modifier::ITALIC, "3"),
                    (Modifier::UNDERLINED, "4"),
                    (Modifier::REVERSED, "7"),
                ] {
                    if cell.modifier.contains(m) {
                        sgr.push(code.to_string());
                    }
                }
                s.push_str(&format!("\x1b[{}m", sgr.join(";")));
                last = Some(style);
            }
            skip = unicode_width::UnicodeWidthStr::width(cell.symbol()).saturating_sub(1);
            s.push_str(cell.symbol());
        }
        s.push_str("\x1b[0m\n");
    }
    s
}

/// Draws the app with `theme` on an off-screen terminal and returns its
/// cells, colours included: for render tests of the themes.
pub(crate) fn to_buffer(
    app: &mut App,
    width: u16,
    height: u16,
    theme: &Theme,
) -> ratatui::buffer::Buffer {
    // An off-screen backend cannot fail (its error type is uninhabited).
    let Ok(mut t) = ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height));
    let Ok(_) = t.draw(|f| draw(f, app, theme));
    t.backend().buffer().clone()
}

/// The screen as text, one line per row (wide characters once).
pub(crate) fn buffer_text(buf: &ratatui::buffer::Buffer) -> String {
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
    use std::time::Duration;

    use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};

    use super::*;
    use crate::client::ClientEvent;
    use crate::tui::app::{Level, LogSource, LogView, MAX_SCROLL};

    fn screen(app: &mut App, w: u16, h: u16) -> String {
        to_text(app, w, h)
    }

    fn press(app: &mut App, code: KeyCode) {
        app.on_event(&Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
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
                plain: false,
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
                split: None,
            },
            now,
        );
        app.on_client(
            ClientEvent::Chat {
                from: "bob".into(),
                text: "hi \u{1b}[31mred".into(),
                ts: "2026-11-25 10:00:01.000000".into(),
                timing: None,
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
    fn status_bar_says_when_the_cluster_link_is_down() {
        let mut app = sample_app();
        let now = Instant::now();
        assert!(!screen(&mut app, 120, 40).contains("cluster link down"));
        app.on_client(
            ClientEvent::ClusterLink {
                up: false,
                node: "b".into(),
            },
            now,
        );
        let s = screen(&mut app, 120, 40);
        assert!(s.contains("cluster link down (b only)"), "{s}");
        app.on_client(
            ClientEvent::ClusterLink {
                up: true,
                node: "b".into(),
            },
            now,
        );
        assert!(!screen(&mut app, 120, 40).contains("cluster link down"));
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
        assert!(s.contains("10:00:01 bob: hi \\u{1b}[31mred"), "{s}");
        assert!(s.contains("waiting for reply"), "{s}");
        assert!(s.contains("Round-trip latency"), "{s}");
        let p50 = s.lines().find(|l| l.contains("│ p50")).expect("p50 row");
        assert!(p50.trim_end().ends_with("0.213ms│"), "{p50}");
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

    /// An app with one stamped reply, one relayed message with its one-way
    /// delay, and a clock offset.
    fn timed_app() -> App {
        use crate::timing::{Offset, OneWay, RelayTiming, Sample};
        let mut app = App::new("127.0.0.1:7878", "alice", "log.txt");
        let now = Instant::now();
        app.on_client(
            ClientEvent::Connected {
                name: "alice".into(),
                users: vec!["alice".into(), "bob".into()],
                server: "chatmon 0.1.0".into(),
                embedded: false,
                plain: false,
            },
            now,
        );
        app.sent_local(1, "hello".into());
        app.on_client(ClientEvent::Sent { id: 1 }, now);
        app.on_client(
            ClientEvent::Reply {
                id: 1,
                text: "Server received: hello".into(),
                rtt: Duration::from_micros(940),
                split: Some(Sample {
                    rtt_us: 940,
                    server_us: 31,
                    network_us: 909,
                    offset_us: -2_000_012,
                    bound_us: 455,
                    flaw: None,
                }),
            },
            now,
        );
        app.on_client(
            ClientEvent::Clock(Offset {
                offset_us: -2_000_012,
                bound_us: 45,
            }),
            now,
        );
        app.on_client(
            ClientEvent::Chat {
                from: "bob".into(),
                text: "hi".into(),
                ts: "2026-11-25 10:00:01.000000".into(),
                timing: Some(RelayTiming::OneWay(OneWay {
                    delay_us: 410,
                    bound_us: 60,
                })),
            },
            now,
        );
        app
    }

    #[test]
    fn where_the_time_goes_shows_in_the_panes() {
        let mut app = timed_app();
        let s = screen(&mut app, 140, 40);
        assert!(s.contains("rtt 0.940ms (server 0.031, net 0.909)"), "{s}");
        assert!(s.contains("bob: hi  · 0.41ms ±0.06 one way"), "{s}");
        assert!(
            s.contains("server p50 0.031 p99 0.031  net p50 0.909 p99 0.909"),
            "{s}"
        );
        assert!(s.contains("clock offset -2000.012ms ±0.045"), "{s}");
        // Narrow: the figures go, the message text stays whole.
        let s = screen(&mut app, 40, 40);
        assert!(s.contains("#1 rtt") && s.contains("0.940ms"), "{s}");
        assert!(!s.contains("(server 0.031"), "{s}");
        assert!(s.contains("bob: hi"), "{s}");
        assert!(!s.contains("one way"), "{s}");
        // Short: the latency panel keeps its two lines only.
        let s = screen(&mut app, 140, 12);
        assert!(!s.contains("clock offset"), "{s}");
    }

    #[test]
    fn a_plain_server_says_so_in_the_status_bar() {
        let mut app = App::new("127.0.0.1:7878", "alice", "log.txt");
        app.on_client(
            ClientEvent::Connected {
                name: "alice".into(),
                users: Vec::new(),
                server: crate::client::PLAIN_SERVER.into(),
                embedded: false,
                plain: true,
            },
            Instant::now(),
        );
        let s = screen(&mut app, 120, 30);
        let bar = s.lines().next().unwrap_or_default();
        assert!(bar.contains("● connected"), "{bar}");
        assert!(bar.contains("plain server (no chat)"), "{bar}");
        assert!(!bar.contains("in room"), "{bar}");
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
        press(&mut app, KeyCode::F(1));
        assert!(app.show_help());
        for (w, h) in [(1, 1), (10, 3), (20, 8), (40, 12), (100, 10)] {
            let _ = screen(&mut app, w, h);
        }
    }

    #[test]
    fn help_popup_and_scroll_hint() {
        let mut app = sample_app();
        press(&mut app, KeyCode::F(1));
        let s = screen(&mut app, 100, 30);
        assert!(s.contains("chatmon help"), "{s}");
        // Any key closes it.
        press(&mut app, KeyCode::Char('x'));
        assert!(!app.show_help());
        for i in 0..100 {
            app.notice(Level::Info, format!("line {i}"));
        }
        // Five rows up in the focused chat pane.
        press(&mut app, KeyCode::Tab);
        for _ in 0..5 {
            press(&mut app, KeyCode::Up);
        }
        assert_eq!(app.chat().scroll(), 5);
        let s = screen(&mut app, 100, 30);
        assert!(s.contains("scrolled"), "{s}");
        assert!(s.contains("line 94"), "{s}");
        assert!(!s.contains("line 99"), "{s}");
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
        // Home in the chat, then in the log: both scroll to the cap.
        press(&mut app, KeyCode::Tab);
        press(&mut app, KeyCode::Home);
        press(&mut app, KeyCode::Tab);
        press(&mut app, KeyCode::Home);
        assert_eq!(app.chat().scroll(), MAX_SCROLL);
        assert_eq!(app.log().scroll(), MAX_SCROLL);
        let s = screen(&mut app, 120, 40);
        assert!(!s.contains(&MAX_SCROLL.to_string()), "{s}");
        assert!(app.chat().scroll() < 100 && app.log().scroll() < 100);
    }

    #[test]
    fn log_lines_show_the_time_of_day_and_the_kind() {
        let mut app = App::new("s", "me", "log.txt");
        app.push_log(
            LogSource::File,
            "Message Received: 2026-01-01 23:59:59.987654 - a\\nb".into(),
        );
        app.push_log(LogSource::File, "Whatever: 2026-01-01 01:02:03 - x".into());
        let s = screen(&mut app, 120, 40);
        assert!(s.contains("23:59:59.987 Message Received: a\\nb"), "{s}");
        assert!(s.contains("01:02:03.000 Whatever: x"), "{s}");
    }
}
