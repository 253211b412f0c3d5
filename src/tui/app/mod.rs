//! The TUI's state and where every event goes: key presses, the mouse, paste,
//! the client's events and ticks are routed here to the panes (chat, log,
//! input, figures, status). Nothing here draws or does I/O: the run loop
//! feeds events in and carries [`Action`]s out, and the render reads the
//! panes.

mod chat;
mod figures;
mod input;
mod log;
mod status;

use std::time::Instant;

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};

use crate::client::ClientEvent;
use crate::protocol;

pub(crate) use chat::{ChatPane, Entry, Level, MsgStatus};
pub(crate) use figures::{Figures, ServerFigures};
pub(crate) use input::InputBox;
pub(crate) use log::{LogLine, LogPanel};
pub use log::{LogSource, LogView};
pub(crate) use status::{ConnState, Status};

/// Most rows a pane can be scrolled up. No pane holds this many rows
/// ([`SCROLLBACK`](chat::SCROLLBACK) entries of at most a protocol line each), so it never
/// stops a scroll short, and the render clamps to the rows that exist; it
/// keeps every sum of offsets and heights far from overflowing.
pub(crate) const MAX_SCROLL: usize = u32::MAX as usize;
/// Rows one turn of the mouse wheel scrolls.
const WHEEL_ROWS: isize = 3;
/// Rows Up/Down (or k/j) scroll a focused pane.
const KEY_ROWS: isize = 1;

/// `cur` scrolled up by `by` rows (down when negative). Capped, so that Home
/// pressed again and again cannot make the render's `height + scroll`
/// overflow; the render then clamps to the rows that exist.
fn scrolled(cur: usize, by: isize) -> usize {
    if by >= 0 {
        cur.saturating_add(by as usize).min(MAX_SCROLL)
    } else {
        cur.saturating_sub(by.unsigned_abs())
    }
}

/// Which pane keys go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Focus {
    Input,
    Replies,
    Live,
}

/// What the run loop must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(String),
    Nick(String),
    Subscribe(bool),
    Quit,
}

/// Everything the TUI shows, by pane.
pub struct App {
    status: Status,
    chat: ChatPane,
    log: LogPanel,
    input: InputBox,
    figures: Figures,
    /// Which sources the log panel shows. The App's, not the log pane's:
    /// keys and commands choose it, and it decides whether to subscribe.
    pub log_view: LogView,
    focus: Focus,
    show_help: bool,
    /// Area of the log side of the last frame, so that the wheel scrolls
    /// the pane under the mouse.
    live_area: Rect,
    /// Rows of the reply pane in the last frame, for paging.
    page: usize,
    /// Set once the user asked to quit; the run loop then ends.
    quit: bool,
}

impl App {
    pub fn new(server: &str, name: &str, tail_path: &str) -> App {
        App {
            status: Status::new(server, name),
            chat: ChatPane::default(),
            log: LogPanel::new(tail_path),
            input: InputBox::default(),
            figures: Figures::default(),
            log_view: LogView::Both,
            focus: Focus::Input,
            show_help: false,
            live_area: Rect::default(),
            page: 10,
            quit: false,
        }
    }

    pub(crate) fn status(&self) -> &Status {
        &self.status
    }

    pub(crate) fn chat(&self) -> &ChatPane {
        &self.chat
    }

    pub(crate) fn log(&self) -> &LogPanel {
        &self.log
    }

    pub(crate) fn input(&self) -> &InputBox {
        &self.input
    }

    pub(crate) fn figures(&self) -> &Figures {
        &self.figures
    }

    pub(crate) fn focus(&self) -> Focus {
        self.focus
    }

    pub(crate) fn show_help(&self) -> bool {
        self.show_help
    }

    pub(crate) fn quitting(&self) -> bool {
        self.quit
    }

    /// Ends the run loop (a signal, or the terminal went away).
    pub(crate) fn request_quit(&mut self) {
        self.quit = true;
    }

    /// Records what the last frame laid out, for the mouse and paging.
    pub(crate) fn set_frame(&mut self, live_area: Rect, page: usize) {
        self.live_area = live_area;
        self.page = page;
    }

    /// Clamps the reply pane's scroll to the rows the render found.
    pub(crate) fn clamp_chat_scroll(&mut self, max: usize) {
        self.chat.clamp_scroll(max);
    }

    /// Clamps the log panel's scroll to the rows the render found.
    pub(crate) fn clamp_log_scroll(&mut self, max: usize) {
        self.log.clamp_scroll(max);
    }

    pub(crate) fn notice(&mut self, level: Level, text: impl Into<String>) {
        self.chat.notice(level, text);
    }

    /// Says in the status bar that this process runs the server.
    pub(crate) fn set_local_server(&mut self, note: &str) {
        self.status.set_local_server(note);
    }

    pub(crate) fn set_log_note(&mut self, note: String) {
        self.log.set_note(note);
    }

    /// Records a message handed to the connection under `id`.
    pub(crate) fn sent_local(&mut self, id: u64, text: String) {
        self.chat.sent(id, text);
    }

    /// Adds a live-log line, keeping lines in time order across sources.
    pub fn push_log(&mut self, source: LogSource, text: String) {
        self.log.push(source, text);
    }

    /// The live-log lines the current view shows.
    pub(crate) fn visible_log(&self) -> impl DoubleEndedIterator<Item = &LogLine> {
        self.log.visible(self.log_view)
    }

    pub fn on_client(&mut self, ev: ClientEvent, now: Instant) {
        match ev {
            ClientEvent::Connecting { attempt } => {
                self.status.set_conn(ConnState::Connecting { attempt })
            }
            ClientEvent::Connected {
                name,
                users,
                server,
            } => {
                // INTEGRATE(embedded)
                self.status
                    .set_server_embedded(server.ends_with(crate::server::EMBEDDED_MARK));
                let was_down = matches!(self.status.conn(), ConnState::Disconnected { .. });
                self.status.set_conn(ConnState::Connected);
                self.status.set_name(name.clone());
                self.status.set_user_count(users.len());
                let verb = if was_down { "reconnected" } else { "connected" };
                let msg = format!("{verb} to {} as {name}", self.status.server());
                self.notice(Level::Info, msg);
            }
            ClientEvent::Disconnected { reason, retry_in } => {
                let first = !matches!(self.status.conn(), ConnState::Disconnected { reason: r, .. } if *r == reason);
                self.status.set_conn(ConnState::Disconnected {
                    reason: reason.clone(),
                    retry_at: now + retry_in,
                });
                if first {
                    self.notice(
                        Level::Warn,
                        format!("{reason}; reconnecting (messages you type are sent once back)"),
                    );
                }
            }
            ClientEvent::Queued { id } => {
                if let Some(s) = self.chat.status_of(id) {
                    *s = MsgStatus::Queued;
                }
            }
            ClientEvent::Sent { id } => {
                if let Some(s) = self.chat.status_of(id) {
                    *s = MsgStatus::Pending { since: now };
                }
            }
            ClientEvent::Reply { id, text, rtt } => {
                if let Some(s) = self.chat.status_of(id) {
                    *s = MsgStatus::Replied { rtt, reply: text };
                }
                self.figures.record_reply(id, rtt, now);
            }
            ClientEvent::TimedOut { id } => {
                if let Some(s) = self.chat.status_of(id)
                    && matches!(s, MsgStatus::Pending { .. })
                {
                    *s = MsgStatus::TimedOut { since: now };
                }
            }
            ClientEvent::Undelivered { id, reason } => {
                if let Some(s) = self.chat.status_of(id) {
                    *s = MsgStatus::Undelivered { reason };
                }
            }
            ClientEvent::Chat { from, text, ts } => {
                let time = chrono::NaiveDateTime::parse_from_str(&ts, TS_FORMAT).ok();
                self.chat.push(Entry::Other { from, text, time });
            }
            ClientEvent::Join { name, users } => {
                self.status.set_user_count(users);
                self.notice(Level::Info, format!("{name} joined ({users} in the room)"));
            }
            ClientEvent::Leave {
                name,
                users,
                reason,
            } => {
                self.status.set_user_count(users);
                self.notice(
                    Level::Info,
                    format!("{name} left: {reason} ({users} in the room)"),
                );
            }
            ClientEvent::Nick { old, new } => {
                if old == self.status.name() {
                    self.status.set_name(new.clone());
                    self.notice(Level::Info, format!("you are now known as {new}"));
                } else {
                    self.notice(Level::Info, format!("{old} is now known as {new}"));
                }
            }
            ClientEvent::ServerError(m) => self.notice(Level::Error, m),
            ClientEvent::ServerEvent(line) => self.push_log(LogSource::Server, line),
            ClientEvent::EventsDropped(n) => {
                self.figures.add_dropped(n);
                self.push_log(
                    LogSource::Server,
                    format!("({n} server events dropped: this client was too slow)"),
                );
            }
            ClientEvent::ServerStats {
                clients,
                names,
                msgs_per_sec,
                uptime_secs,
            } => self.figures.set_server(ServerFigures {
                clients,
                names,
                msgs_per_sec,
                uptime_secs,
                dropped_events: 0,
            }),
            ClientEvent::Closed => self.status.set_conn(ConnState::Closed),
        }
    }

    /// Periodic work; returns whether anything visible changed.
    pub(crate) fn on_tick(&mut self, now: Instant) -> bool {
        let rate_changed = self.figures.refresh(now);
        self.chat.has_live_timer()
            || rate_changed
            || matches!(self.status.conn(), ConnState::Disconnected { .. })
    }

    pub fn on_event(&mut self, ev: &Event) -> Option<Action> {
        match ev {
            Event::Key(k) if k.kind == KeyEventKind::Press => self.on_key(*k, ev),
            Event::Mouse(m) => {
                self.on_mouse(*m);
                None
            }
            Event::Paste(s) => {
                // Pasted newlines would otherwise send half a paste; keep it
                // on one line.
                let flat = s.replace(['\r', '\n'], " ");
                for c in flat.chars() {
                    self.input.insert(c);
                }
                None
            }
            _ => None,
        }
    }

    fn on_mouse(&mut self, m: MouseEvent) {
        let in_live = self.live_area.contains(Position::new(m.column, m.row));
        let by = match m.kind {
            MouseEventKind::ScrollUp => WHEEL_ROWS,
            MouseEventKind::ScrollDown => -WHEEL_ROWS,
            _ => return,
        };
        if in_live {
            self.log.scroll_by(by);
        } else {
            self.chat.scroll_by(by);
        }
    }

    fn on_key(&mut self, k: KeyEvent, ev: &Event) -> Option<Action> {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if self.show_help {
            // Any key closes the help; Ctrl-C still quits.
            self.show_help = false;
            if ctrl && k.code == KeyCode::Char('c') {
                return Some(self.quit());
            }
            return None;
        }
        match k.code {
            KeyCode::Char('c') if ctrl => return Some(self.quit()),
            KeyCode::Esc => return Some(self.quit()),
            KeyCode::F(1) => {
                self.show_help = true;
                return None;
            }
            KeyCode::F(2) => {
                self.next_log_view();
                return None;
            }
            KeyCode::Char('?') if self.focus != Focus::Input || self.input.value().is_empty() => {
                self.show_help = true;
                return None;
            }
            KeyCode::Tab => {
                self.focus = match self.focus {
                    Focus::Input => Focus::Replies,
                    Focus::Replies => Focus::Live,
                    Focus::Live => Focus::Input,
                };
                return None;
            }
            KeyCode::BackTab => {
                self.focus = match self.focus {
                    Focus::Input => Focus::Live,
                    Focus::Replies => Focus::Input,
                    Focus::Live => Focus::Replies,
                };
                return None;
            }
            KeyCode::PageUp => {
                self.scroll_focused(self.page.max(1) as isize);
                return None;
            }
            KeyCode::PageDown => {
                self.scroll_focused(-(self.page.max(1) as isize));
                return None;
            }
            _ => {}
        }
        match self.focus {
            Focus::Input => self.on_input_key(k, ev),
            Focus::Replies | Focus::Live => {
                match k.code {
                    KeyCode::Up | KeyCode::Char('k') => self.scroll_focused(KEY_ROWS),
                    KeyCode::Down | KeyCode::Char('j') => self.scroll_focused(-KEY_ROWS),
                    KeyCode::Home | KeyCode::Char('g') => self.scroll_focused(isize::MAX),
                    KeyCode::End | KeyCode::Char('G') => self.scroll_focused(isize::MIN),
                    KeyCode::Char('l') if self.focus == Focus::Live => self.next_log_view(),
                    KeyCode::Enter => self.focus = Focus::Input,
                    KeyCode::Char(c) if !ctrl => {
                        // Typing anywhere goes to the input, as in any chat app.
                        self.focus = Focus::Input;
                        self.input.insert(c);
                    }
                    _ => {}
                }
                None
            }
        }
    }

    fn next_log_view(&mut self) {
        self.log_view = self.log_view.next();
        self.log.follow();
    }

    /// Scrolls the focused pane (the chat when the input has the focus).
    fn scroll_focused(&mut self, by: isize) {
        if self.focus == Focus::Live {
            self.log.scroll_by(by);
        } else {
            self.chat.scroll_by(by);
        }
    }

    fn quit(&mut self) -> Action {
        self.quit = true;
        Action::Quit
    }

    fn on_input_key(&mut self, k: KeyEvent, ev: &Event) -> Option<Action> {
        match k.code {
            KeyCode::Enter => self.submit(),
            KeyCode::Up => {
                self.input.recall(1);
                None
            }
            KeyCode::Down => {
                self.input.recall(-1);
                None
            }
            KeyCode::End if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.chat.follow();
                None
            }
            _ => {
                self.input.edit(ev);
                None
            }
        }
    }

    fn submit(&mut self) -> Option<Action> {
        let text = self.input.submit()?;
        if let Some(cmd) = text.strip_prefix('/') {
            return self.command(cmd);
        }
        self.chat.follow();
        Some(Action::Send(text))
    }

    fn command(&mut self, cmd: &str) -> Option<Action> {
        let mut parts = cmd.splitn(2, ' ');
        let verb = parts.next().unwrap_or("");
        let arg = parts.next().unwrap_or("").trim();
        match verb {
            "quit" | "q" | "exit" => Some(self.quit()),
            "nick" => {
                if let Err(why) = protocol::validate_name(arg) {
                    self.notice(Level::Error, format!("/nick {arg}: {why}"));
                    None
                } else {
                    Some(Action::Nick(arg.to_string()))
                }
            }
            "help" => {
                self.show_help = true;
                None
            }
            "clear" => {
                self.chat.clear();
                None
            }
            "log" => {
                self.log_view = match arg {
                    "file" | "local" => LogView::File,
                    "server" => LogView::Server,
                    "both" => LogView::Both,
                    _ => {
                        self.notice(Level::Error, "usage: /log file|server|both");
                        return None;
                    }
                };
                self.log.follow();
                match self.log_view {
                    LogView::File => None,
                    _ => Some(Action::Subscribe(true)),
                }
            }
            // A message that starts with a slash: `//text` sends `/text`.
            _ if verb.starts_with('/') => {
                self.chat.follow();
                Some(Action::Send(cmd.to_string()))
            }
            _ => {
                self.notice(
                    Level::Error,
                    format!("unknown command /{verb} (try /help; //text sends /text)"),
                );
                None
            }
        }
    }
}

/// How the server writes a relayed message's time (its log's format).
const TS_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

#[cfg(test)]
mod tests {
    use super::chat::SCROLLBACK;
    use super::*;
    use std::time::Duration;

    fn key(code: KeyCode) -> Event {
        Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn type_str(app: &mut App, s: &str) -> Option<Action> {
        let mut last = None;
        for c in s.chars() {
            last = app.on_event(&key(KeyCode::Char(c)));
        }
        last
    }

    fn event_line(i: usize) -> String {
        format!(
            "Message Sent: 2026-01-01 10:{:02}:{:02}.{:06} - #{i}",
            i / 60_000 % 60,
            i / 1000 % 60,
            i % 1000
        )
    }

    #[test]
    fn enter_sends_and_history_recalls() {
        let mut app = App::new("127.0.0.1:7878", "me", "log.txt");
        type_str(&mut app, "hello 世界");
        assert_eq!(
            app.on_event(&key(KeyCode::Enter)),
            Some(Action::Send("hello 世界".into()))
        );
        assert_eq!(app.input().value(), "");
        type_str(&mut app, "second");
        app.on_event(&key(KeyCode::Enter));
        type_str(&mut app, "draft");
        app.on_event(&key(KeyCode::Up));
        assert_eq!(app.input().value(), "second");
        app.on_event(&key(KeyCode::Up));
        assert_eq!(app.input().value(), "hello 世界");
        app.on_event(&key(KeyCode::Down));
        app.on_event(&key(KeyCode::Down));
        assert_eq!(app.input().value(), "draft");
    }

    #[test]
    fn commands() {
        let mut app = App::new("s", "me", "log.txt");
        type_str(&mut app, "/nick bob");
        assert_eq!(
            app.on_event(&key(KeyCode::Enter)),
            Some(Action::Nick("bob".into()))
        );
        type_str(&mut app, "/nick server");
        assert_eq!(app.on_event(&key(KeyCode::Enter)), None);
        assert!(matches!(
            app.chat().entries().back(),
            Some(Entry::Notice {
                level: Level::Error,
                ..
            })
        ));
        type_str(&mut app, "//slash");
        assert_eq!(
            app.on_event(&key(KeyCode::Enter)),
            Some(Action::Send("/slash".into()))
        );
        type_str(&mut app, "/quit");
        assert_eq!(app.on_event(&key(KeyCode::Enter)), Some(Action::Quit));
        assert!(app.quitting());
    }

    #[test]
    fn message_lifecycle_and_figures() {
        let mut app = App::new("s", "me", "log.txt");
        let t0 = Instant::now();
        app.sent_local(1, "hi".into());
        app.sent_local(2, "yo".into());
        app.on_client(ClientEvent::Sent { id: 1 }, t0);
        app.on_client(ClientEvent::Sent { id: 2 }, t0);
        app.on_client(
            ClientEvent::Reply {
                id: 2,
                text: "Server received: yo".into(),
                rtt: Duration::from_micros(300),
            },
            t0,
        );
        app.on_client(ClientEvent::TimedOut { id: 1 }, t0);
        match &app.chat().entries()[0] {
            Entry::Mine { status, .. } => assert!(matches!(status, MsgStatus::TimedOut { .. })),
            e => panic!("unexpected {e:?}"),
        }
        match &app.chat().entries()[1] {
            Entry::Mine { status, .. } => assert!(matches!(status, MsgStatus::Replied { .. })),
            e => panic!("unexpected {e:?}"),
        }
        assert_eq!(app.figures().rtt().count, 1);
        assert_eq!(app.figures().rtt().p99, Duration::from_micros(300));
    }

    #[test]
    fn scrollback_is_capped_and_ids_survive_through_client_events() {
        let mut app = App::new("s", "me", "log.txt");
        for i in 0..(SCROLLBACK as u64 + 10) {
            app.sent_local(i, format!("m{i}"));
        }
        assert_eq!(app.chat().entries().len(), SCROLLBACK);
        let last = SCROLLBACK as u64 + 9;
        app.on_client(ClientEvent::Sent { id: last }, Instant::now());
        match app.chat().entries().back() {
            Some(Entry::Mine { status, .. }) => {
                assert!(matches!(status, MsgStatus::Pending { .. }))
            }
            e => panic!("unexpected {e:?}"),
        }
        // An id that scrolled away is ignored, not misapplied.
        app.on_client(ClientEvent::Sent { id: 0 }, Instant::now());
        assert!(app.chat().entries().iter().all(|e| matches!(
            e,
            Entry::Mine {
                status: MsgStatus::Queued,
                ..
            }
        ) || matches!(e, Entry::Mine { id, .. } if *id == last)));
    }

    #[test]
    fn a_relayed_message_keeps_the_servers_time_as_a_time() {
        let mut app = App::new("s", "me", "log.txt");
        let chat = |ts: &str| ClientEvent::Chat {
            from: "bob".into(),
            text: "hi".into(),
            ts: ts.into(),
        };
        app.on_client(chat("2026-11-25 10:00:01.000000"), Instant::now());
        app.on_client(chat("2026-11-25 10:00:02"), Instant::now());
        app.on_client(chat("garbage"), Instant::now());
        let times: Vec<_> = app
            .chat()
            .entries()
            .iter()
            .map(|e| match e {
                Entry::Other { time, .. } => time.map(|t| t.format("%H:%M:%S").to_string()),
                e => panic!("unexpected {e:?}"),
            })
            .collect();
        assert_eq!(
            times,
            vec![Some("10:00:01".into()), Some("10:00:02".into()), None]
        );
    }

    #[test]
    fn log_view_keys_cycle_and_commands_choose() {
        let mut app = App::new("s", "me", "log.txt");
        for i in 0..3 {
            app.push_log(LogSource::Server, event_line(i));
        }
        app.push_log(LogSource::File, event_line(10));
        assert_eq!(app.visible_log().count(), 4);
        app.on_event(&key(KeyCode::F(2)));
        assert_eq!(app.log_view, LogView::File);
        assert_eq!(app.visible_log().count(), 1);
        type_str(&mut app, "/log server");
        assert_eq!(
            app.on_event(&key(KeyCode::Enter)),
            Some(Action::Subscribe(true))
        );
        assert_eq!(app.visible_log().count(), 3);
    }

    #[test]
    fn home_pressed_many_times_does_not_overflow_the_scroll() {
        let mut app = App::new("s", "me", "log.txt");
        for focus in [Focus::Replies, Focus::Live] {
            app.focus = focus;
            for _ in 0..10 {
                app.on_event(&key(KeyCode::Home));
                app.on_event(&key(KeyCode::Char('g')));
                app.on_event(&key(KeyCode::PageUp));
                app.on_event(&key(KeyCode::Up));
            }
        }
        for _ in 0..10 {
            app.on_mouse(MouseEvent {
                kind: MouseEventKind::ScrollUp,
                column: 0,
                row: 0,
                modifiers: KeyModifiers::NONE,
            });
        }
        assert!(app.chat().scroll() <= MAX_SCROLL && app.log().scroll() <= MAX_SCROLL);
        for i in 0..10 {
            app.notice(Level::Info, format!("n{i}"));
            app.push_log(LogSource::Server, event_line(i));
        }
        assert!(app.chat().scroll() <= MAX_SCROLL && app.log().scroll() <= MAX_SCROLL);
        let s = super::super::render::to_text(&mut app, 120, 40);
        // Drawn clamped to the rows that exist: at the top of each pane.
        assert!(s.contains("n0") && s.contains("#0"), "{s}");
        assert!(
            app.chat().scroll() < 100 && app.log().scroll() < 100,
            "clamped by the render"
        );
    }
}
