//! The TUI's state and how events change it. Nothing here draws or does I/O:
//! the run loop feeds events in and carries [`Action`]s out, and the render
//! functions read the state.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::client::ClientEvent;
use crate::eventlog;
use crate::protocol;

/// Lines of chat history kept; older ones are dropped.
pub const SCROLLBACK: usize = 5000;
/// Lines of the live log kept.
pub const LOG_LINES: usize = 500;
/// Round-trip samples kept for the figures.
pub const RTT_SAMPLES: usize = 10_000;
/// Window for messages per second.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Inputs kept for Up/Down recall.
pub const HISTORY: usize = 500;

/// Which pane keys go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Input,
    Replies,
    Live,
}

/// Where the live log's lines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// The tailed file.
    File,
    /// The server's event stream.
    Server,
}

impl LogSource {
    fn bit(self) -> u8 {
        match self {
            LogSource::File => 1,
            LogSource::Server => 2,
        }
    }
}

/// The sources a live-log line came from: a line the server both streams
/// and writes to the tailed file arrives from each, and is kept once with
/// both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sources(u8);

impl Sources {
    pub fn of(s: LogSource) -> Sources {
        Sources(s.bit())
    }

    pub fn has(self, s: LogSource) -> bool {
        self.0 & s.bit() != 0
    }

    pub fn insert(&mut self, s: LogSource) {
        self.0 |= s.bit();
    }

    /// Whether `s` is the only source.
    pub fn only(self, s: LogSource) -> bool {
        self.0 == s.bit()
    }
}

/// Most rows a pane can be scrolled up. No pane holds this many rows
/// ([`SCROLLBACK`] entries of at most a protocol line each), so it never
/// stops a scroll short, and the render clamps to the rows that exist; it
/// keeps every sum of offsets and heights far from overflowing.
pub const MAX_SCROLL: usize = u32::MAX as usize;

/// Which sources the live log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogView {
    File,
    Server,
    Both,
}

impl LogView {
    pub fn label(self) -> &'static str {
        match self {
            LogView::File => "log file",
            LogView::Server => "server stream",
            LogView::Both => "file + server",
        }
    }

    fn next(self) -> LogView {
        match self {
            LogView::Both => LogView::File,
            LogView::File => LogView::Server,
            LogView::Server => LogView::Both,
        }
    }

    pub fn shows(self, s: LogSource) -> bool {
        matches!(
            (self, s),
            (LogView::Both, _)
                | (LogView::File, LogSource::File)
                | (LogView::Server, LogSource::Server)
        )
    }

    /// Whether a line from `sources` is shown: it is when any of them is.
    pub fn shows_any(self, sources: Sources) -> bool {
        [LogSource::File, LogSource::Server]
            .into_iter()
            .any(|s| sources.has(s) && self.shows(s))
    }
}

/// The connection as the status bar shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnState {
    Connecting { attempt: u32 },
    Connected,
    Disconnected { reason: String, retry_at: Instant },
    Closed,
}

/// Where one of our messages is.
#[derive(Debug, Clone, PartialEq)]
pub enum MsgStatus {
    /// Waiting for a connection.
    Queued,
    /// Written; waiting for the reply.
    Pending {
        since: Instant,
    },
    Replied {
        rtt: Duration,
        reply: String,
    },
    TimedOut {
        since: Instant,
    },
    Undelivered {
        reason: String,
    },
}

/// One entry of the reply pane.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Mine {
        id: u64,
        text: String,
        status: MsgStatus,
    },
    Other {
        from: String,
        text: String,
        ts: String,
    },
    Notice {
        text: String,
        level: Level,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What the run loop must do after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(String),
    Nick(String),
    Subscribe(bool),
    Quit,
}

/// One line of the live log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub sources: Sources,
    pub time: Option<chrono::NaiveDateTime>,
    pub text: String,
    /// Hash of `text`, so that looking for a duplicate in the whole buffer
    /// compares integers, not strings that share a long prefix.
    hash: u64,
}

fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Figures from the server's stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerFigures {
    pub clients: usize,
    pub names: Vec<String>,
    pub msgs_per_sec: f64,
    pub uptime_secs: u64,
    pub dropped_events: u64,
}

/// Round-trip statistics over the kept samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RttFigures {
    pub count: usize,
    pub min: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub per_sec: f64,
}

/// Nearest-rank percentile of sorted samples: `sorted[ceil(p*n) - 1]`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Makes text from the network or a file safe to draw: control characters
/// (escape sequences, `\r`, bells) and bidi overrides become visible escapes.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    let bad =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut s = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if bad(c) {
            s.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            s.push(c);
        }
    }
    Cow::Owned(s)
}

/// Everything the TUI shows.
pub struct App {
    pub server: String,
    pub name: String,
    pub conn: ConnState,
    pub users: Vec<String>,
    pub user_count: usize,
    /// Set when this process runs the server itself.
    pub local_server: Option<String>,
    /// Whether the server we last connected to runs inside a chat TUI.
    pub server_embedded: bool,
    pub entries: VecDeque<Entry>,
    /// Index in `entries` of each of our messages, by id (offset by `dropped`).
    by_id: HashMap<u64, u64>,
    /// How many entries were dropped from the front (for stable indexes).
    dropped: u64,
    pub input: Input,
    history: VecDeque<String>,
    history_pos: Option<usize>,
    draft: String,
    /// Rows scrolled up from the bottom of the reply pane (0: follow).
    pub scroll: usize,
    /// Rows scrolled up in the live log (0: follow).
    pub log_scroll: usize,
    pub focus: Focus,
    pub show_help: bool,
    pub log: VecDeque<LogLine>,
    pub log_view: LogView,
    pub log_note: Option<String>,
    pub tail_path: String,
    /// Recent round trips, oldest first, with the message id.
    pub rtts: VecDeque<(u64, Duration)>,
    reply_times: VecDeque<Instant>,
    pub figures: RttFigures,
    pub server_figures: Option<ServerFigures>,
    /// Areas of the last frame, for the mouse.
    pub reply_area: Rect,
    pub live_area: Rect,
    /// Rows of the reply pane in the last frame, for paging.
    pub page: usize,
    pub quit: bool,
    /// How long a message may go without reply before it shows as timed out.
    pub reply_timeout: Duration,
}

impl App {
    pub fn new(server: &str, name: &str, tail_path: &str) -> App {
        App {
            server: server.to_string(),
            name: name.to_string(),
            conn: ConnState::Connecting { attempt: 1 },
            users: Vec::new(),
            user_count: 0,
            local_server: None,
            server_embedded: false,
            entries: VecDeque::new(),
            by_id: HashMap::new(),
            dropped: 0,
            input: Input::default(),
            history: VecDeque::new(),
            history_pos: None,
            draft: String::new(),
            scroll: 0,
            log_scroll: 0,
            focus: Focus::Input,
            show_help: false,
            log: VecDeque::new(),
            log_view: LogView::Both,
            log_note: None,
            tail_path: tail_path.to_string(),
            rtts: VecDeque::new(),
            reply_times: VecDeque::new(),
            figures: RttFigures::default(),
            server_figures: None,
            reply_area: Rect::default(),
            live_area: Rect::default(),
            page: 10,
            quit: false,
            reply_timeout: Duration::from_secs(5),
        }
    }

    pub fn notice(&mut self, level: Level, text: impl Into<String>) {
        self.push(Entry::Notice {
            text: text.into(),
            level,
        });
    }

    fn push(&mut self, e: Entry) {
        if let Entry::Mine { id, .. } = &e {
            self.by_id
                .insert(*id, self.dropped + self.entries.len() as u64);
        }
        self.entries.push_back(e);
        while self.entries.len() > SCROLLBACK {
            if let Some(Entry::Mine { id, .. }) = self.entries.pop_front() {
                self.by_id.remove(&id);
            }
            self.dropped += 1;
        }
        // While scrolled up, keep the view still as lines arrive below.
        if self.scroll > 0 {
            self.scroll = self.scroll.saturating_add(1).min(MAX_SCROLL);
        }
    }

    fn status_of(&mut self, id: u64) -> Option<&mut MsgStatus> {
        let idx = self.by_id.get(&id)?.checked_sub(self.dropped)?;
        match self.entries.get_mut(idx as usize) {
            Some(Entry::Mine { status, .. }) => Some(status),
            _ => None,
        }
    }

    /// Records a message handed to the connection under `id`.
    pub fn sent_local(&mut self, id: u64, text: String) {
        self.push(Entry::Mine {
            id,
            text,
            status: MsgStatus::Queued,
        });
        self.scroll = 0;
    }

    pub fn on_client(&mut self, ev: ClientEvent, now: Instant) {
        match ev {
            ClientEvent::Connecting { attempt } => self.conn = ConnState::Connecting { attempt },
            ClientEvent::Connected {
                name,
                users,
                server,
                ..
            } => {
                self.server_embedded = server.ends_with(crate::server::EMBEDDED_MARK);
                let was_down = matches!(self.conn, ConnState::Disconnected { .. });
                self.conn = ConnState::Connected;
                self.name = name.clone();
                self.user_count = users.len();
                self.users = users;
                let msg = if was_down {
                    format!("reconnected to {} as {name}", self.server)
                } else {
                    format!("connected to {} as {name}", self.server)
                };
                self.notice(Level::Info, msg);
            }
            ClientEvent::Disconnected {
                reason, retry_in, ..
            } => {
                let first = !matches!(&self.conn, ConnState::Disconnected { reason: r, .. } if *r == reason);
                self.conn = ConnState::Disconnected {
                    reason: reason.clone(),
                    retry_at: now + retry_in,
                };
                if first {
                    self.notice(
                        Level::Warn,
                        format!("{reason}; reconnecting (messages you type are sent once back)"),
                    );
                }
            }
            ClientEvent::Queued { id } => {
                if let Some(s) = self.status_of(id) {
                    *s = MsgStatus::Queued;
                }
            }
            ClientEvent::Sent { id } => {
                if let Some(s) = self.status_of(id) {
                    *s = MsgStatus::Pending { since: now };
                }
            }
            ClientEvent::Reply { id, text, rtt } => {
                if let Some(s) = self.status_of(id) {
                    *s = MsgStatus::Replied { rtt, reply: text };
                }
                self.rtts.push_back((id, rtt));
                while self.rtts.len() > RTT_SAMPLES {
                    self.rtts.pop_front();
                }
                self.reply_times.push_back(now);
                self.refresh_figures(now);
            }
            ClientEvent::TimedOut { id } => {
                if let Some(s) = self.status_of(id)
                    && matches!(s, MsgStatus::Pending { .. })
                {
                    *s = MsgStatus::TimedOut { since: now };
                }
            }
            ClientEvent::Undelivered { id, reason } => {
                if let Some(s) = self.status_of(id) {
                    *s = MsgStatus::Undelivered { reason };
                }
            }
            ClientEvent::Chat { from, text, ts } => self.push(Entry::Other { from, text, ts }),
            ClientEvent::Join { name, users } => {
                self.user_count = users;
                if !self.users.contains(&name) {
                    self.users.push(name.clone());
                    self.users.sort();
                }
                self.notice(Level::Info, format!("{name} joined ({users} in the room)"));
            }
            ClientEvent::Leave {
                name,
                users,
                reason,
            } => {
                self.user_count = users;
                self.users.retain(|u| *u != name);
                self.notice(
                    Level::Info,
                    format!("{name} left: {reason} ({users} in the room)"),
                );
            }
            ClientEvent::Nick { old, new } => {
                for u in self.users.iter_mut() {
                    if *u == old {
                        *u = new.clone();
                    }
                }
                if old == self.name {
                    self.name = new.clone();
                    self.notice(Level::Info, format!("you are now known as {new}"));
                } else {
                    self.notice(Level::Info, format!("{old} is now known as {new}"));
                }
            }
            ClientEvent::ServerError(m) => self.notice(Level::Error, m),
            ClientEvent::ServerEvent(line) => self.push_log(LogSource::Server, line),
            ClientEvent::EventsDropped(n) => {
                let f = self.server_figures.get_or_insert_with(Default::default);
                f.dropped_events += n;
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
            } => {
                let dropped = self
                    .server_figures
                    .as_ref()
                    .map(|f| f.dropped_events)
                    .unwrap_or(0);
                self.server_figures = Some(ServerFigures {
                    clients,
                    names,
                    msgs_per_sec,
                    uptime_secs,
                    dropped_events: dropped,
                });
            }
            ClientEvent::Closed => self.conn = ConnState::Closed,
        }
    }

    /// Adds a live-log line, keeping lines in time order across sources.
    pub fn push_log(&mut self, source: LogSource, text: String) {
        // With the server writing the file we tail, its lines come twice
        // (stream first, file a poll later): keep one line that has both
        // sources, so that each view still shows it. The whole buffer is
        // searched (by hash, newest first), since at high rates the copy
        // arrives hundreds of lines later.
        let hash = text_hash(&text);
        if let Some(l) = self
            .log
            .iter_mut()
            .rev()
            .find(|l| l.hash == hash && !l.sources.has(source) && l.text == text)
        {
            l.sources.insert(source);
            return;
        }
        let time = eventlog::parse_line(&text).ok().map(|e| e.time);
        let line = LogLine {
            sources: Sources::of(source),
            time,
            text,
            hash,
        };
        // Lines arrive nearly in order; walk back from the end to the place.
        let mut at = self.log.len();
        if let Some(t) = line.time {
            while at > 0 {
                match self.log[at - 1].time {
                    Some(prev) if prev > t => at -= 1,
                    _ => break,
                }
            }
        }
        self.log.insert(at, line);
        while self.log.len() > LOG_LINES {
            self.log.pop_front();
        }
        if self.log_scroll > 0 {
            self.log_scroll = self.log_scroll.saturating_add(1).min(MAX_SCROLL);
        }
    }

    /// The live-log lines the current view shows.
    pub fn visible_log(&self) -> impl DoubleEndedIterator<Item = &LogLine> {
        self.log
            .iter()
            .filter(|l| self.log_view.shows_any(l.sources))
    }

    /// Periodic work; returns whether anything visible changed.
    pub fn on_tick(&mut self, now: Instant) -> bool {
        let before = self.figures.per_sec;
        self.refresh_figures(now);
        let pending = self.entries.iter().rev().take(200).any(|e| {
            matches!(
                e,
                Entry::Mine {
                    status: MsgStatus::Pending { .. } | MsgStatus::Queued,
                    ..
                }
            )
        });
        pending
            || before != self.figures.per_sec
            || matches!(self.conn, ConnState::Disconnected { .. })
    }

    fn refresh_figures(&mut self, now: Instant) {
        while let Some(t) = self.reply_times.front() {
            if now.saturating_duration_since(*t) > RATE_WINDOW {
                self.reply_times.pop_front();
            } else {
                break;
            }
        }
        let mut sorted: Vec<Duration> = self.rtts.iter().map(|(_, d)| *d).collect();
        sorted.sort_unstable();
        self.figures = RttFigures {
            count: sorted.len(),
            min: sorted.first().copied().unwrap_or_default(),
            p50: percentile(&sorted, 0.50),
            p90: percentile(&sorted, 0.90),
            p99: percentile(&sorted, 0.99),
            max: sorted.last().copied().unwrap_or_default(),
            per_sec: self.reply_times.len() as f64 / RATE_WINDOW.as_secs_f64(),
        };
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
                    self.input.handle(tui_input::InputRequest::InsertChar(c));
                }
                None
            }
            _ => None,
        }
    }

    fn on_mouse(&mut self, m: MouseEvent) {
        let pos = Position::new(m.column, m.row);
        let in_live = self.live_area.contains(pos);
        match m.kind {
            MouseEventKind::ScrollUp => {
                let target = if in_live {
                    &mut self.log_scroll
                } else {
                    &mut self.scroll
                };
                *target = target.saturating_add(3).min(MAX_SCROLL);
            }
            MouseEventKind::ScrollDown => {
                if in_live {
                    self.log_scroll = self.log_scroll.saturating_sub(3);
                } else {
                    self.scroll = self.scroll.saturating_sub(3);
                }
            }
            _ => {}
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
                self.log_view = self.log_view.next();
                self.log_scroll = 0;
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
                    KeyCode::Up | KeyCode::Char('k') => self.scroll_focused(1),
                    KeyCode::Down | KeyCode::Char('j') => self.scroll_focused(-1),
                    KeyCode::Home | KeyCode::Char('g') => self.scroll_focused(isize::MAX),
                    KeyCode::End | KeyCode::Char('G') => self.scroll_focused(isize::MIN),
                    KeyCode::Char('l') if self.focus == Focus::Live => {
                        self.log_view = self.log_view.next();
                        self.log_scroll = 0;
                    }
                    KeyCode::Enter => self.focus = Focus::Input,
                    KeyCode::Char(c) if !ctrl => {
                        // Typing anywhere goes to the input, as in any chat app.
                        self.focus = Focus::Input;
                        self.input.handle(tui_input::InputRequest::InsertChar(c));
                    }
                    _ => {}
                }
                None
            }
        }
    }

    fn scroll_focused(&mut self, by: isize) {
        let target = if self.focus == Focus::Live {
            &mut self.log_scroll
        } else {
            &mut self.scroll
        };
        // Capped, so that Home pressed again and again cannot make the
        // render's `height + scroll` overflow; the render then clamps to the
        // rows that exist.
        *target = if by >= 0 {
            target.saturating_add(by as usize).min(MAX_SCROLL)
        } else {
            target.saturating_sub(by.unsigned_abs())
        };
    }

    fn quit(&mut self) -> Action {
        self.quit = true;
        Action::Quit
    }

    fn on_input_key(&mut self, k: KeyEvent, ev: &Event) -> Option<Action> {
        match k.code {
            KeyCode::Enter => self.submit(),
            KeyCode::Up => {
                self.recall(1);
                None
            }
            KeyCode::Down => {
                self.recall(-1);
                None
            }
            KeyCode::End if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.scroll = 0;
                None
            }
            _ => {
                self.input.handle_event(ev);
                None
            }
        }
    }

    /// Walks the input history: +1 older, -1 newer.
    fn recall(&mut self, dir: isize) {
        if self.history.is_empty() {
            return;
        }
        let pos = match (self.history_pos, dir > 0) {
            (None, true) => {
                self.draft = self.input.value().to_string();
                Some(self.history.len() - 1)
            }
            (None, false) => None,
            (Some(p), true) => Some(p.saturating_sub(1)),
            (Some(p), false) if p + 1 < self.history.len() => Some(p + 1),
            (Some(_), false) => None,
        };
        self.history_pos = pos;
        let text = match pos {
            Some(p) => self.history[p].clone(),
            None => std::mem::take(&mut self.draft),
        };
        self.input = Input::new(text);
    }

    fn submit(&mut self) -> Option<Action> {
        let text = self.input.value().trim_end().to_string();
        if text.trim().is_empty() {
            return None;
        }
        self.input.reset();
        self.history_pos = None;
        self.draft.clear();
        if self.history.back() != Some(&text) {
            self.history.push_back(text.clone());
            if self.history.len() > HISTORY {
                self.history.pop_front();
            }
        }
        if let Some(cmd) = text.strip_prefix('/') {
            return self.command(cmd);
        }
        self.scroll = 0;
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
                self.entries.clear();
                self.by_id.clear();
                self.scroll = 0;
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
                self.log_scroll = 0;
                match self.log_view {
                    LogView::File => None,
                    _ => Some(Action::Subscribe(true)),
                }
            }
            // A message that starts with a slash: `//text` sends `/text`.
            _ if verb.starts_with('/') => {
                self.scroll = 0;
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn enter_sends_and_history_recalls() {
        let mut app = App::new("127.0.0.1:7878", "me", "log.txt");
        type_str(&mut app, "hello 世界");
        assert_eq!(
            app.on_event(&key(KeyCode::Enter)),
            Some(Action::Send("hello 世界".into()))
        );
        assert_eq!(app.input.value(), "");
        type_str(&mut app, "second");
        app.on_event(&key(KeyCode::Enter));
        type_str(&mut app, "draft");
        app.on_event(&key(KeyCode::Up));
        assert_eq!(app.input.value(), "second");
        app.on_event(&key(KeyCode::Up));
        assert_eq!(app.input.value(), "hello 世界");
        app.on_event(&key(KeyCode::Down));
        app.on_event(&key(KeyCode::Down));
        assert_eq!(app.input.value(), "draft");
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
            app.entries.back(),
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
        assert!(app.quit);
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
        match &app.entries[0] {
            Entry::Mine { status, .. } => assert!(matches!(status, MsgStatus::TimedOut { .. })),
            e => panic!("unexpected {e:?}"),
        }
        match &app.entries[1] {
            Entry::Mine { status, .. } => assert!(matches!(status, MsgStatus::Replied { .. })),
            e => panic!("unexpected {e:?}"),
        }
        assert_eq!(app.figures.count, 1);
        assert_eq!(app.figures.p99, Duration::from_micros(300));
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(5));
        assert_eq!(percentile(&v, 0.9), Duration::from_millis(9));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(10));
        assert_eq!(percentile(&v[..1], 0.5), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn scrollback_is_capped_and_ids_survive() {
        let mut app = App::new("s", "me", "log.txt");
        for i in 0..(SCROLLBACK as u64 + 10) {
            app.sent_local(i, format!("m{i}"));
        }
        assert_eq!(app.entries.len(), SCROLLBACK);
        let last = SCROLLBACK as u64 + 9;
        app.on_client(ClientEvent::Sent { id: last }, Instant::now());
        match app.entries.back() {
            Some(Entry::Mine { status, .. }) => {
                assert!(matches!(status, MsgStatus::Pending { .. }))
            }
            e => panic!("unexpected {e:?}"),
        }
        // An id that scrolled away is ignored, not misapplied.
        app.on_client(ClientEvent::Sent { id: 0 }, Instant::now());
    }

    #[test]
    fn log_lines_merge_in_time_order() {
        let mut app = App::new("s", "me", "log.txt");
        app.push_log(
            LogSource::File,
            "Connection: 2026-01-01 10:00:02.000000 - b".into(),
        );
        app.push_log(
            LogSource::Server,
            "Connection: 2026-01-01 10:00:01.000000 - a".into(),
        );
        app.push_log(LogSource::File, "not a log line".into());
        let texts: Vec<_> = app.log.iter().map(|l| l.text.as_str()).collect();
        assert!(texts[0].ends_with("- a"));
        assert!(texts[1].ends_with("- b"));
        app.log_view = LogView::Server;
        assert_eq!(app.visible_log().count(), 1);
    }

    #[test]
    fn sanitize_neutralises_escapes() {
        assert_eq!(sanitize("plain"), "plain");
        assert_eq!(sanitize("a\u{1b}[2Jb\r"), "a\\u{1b}[2Jb\\u{d}");
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
    fn a_line_from_both_sources_is_kept_once_and_shown_in_every_view() {
        let mut app = App::new("s", "me", "log.txt");
        let line = event_line(1);
        // The stream is first; the tailed file brings the same line later.
        app.push_log(LogSource::Server, line.clone());
        app.push_log(LogSource::File, line.clone());
        assert_eq!(app.log.len(), 1);
        let l = &app.log[0];
        assert!(l.sources.has(LogSource::File) && l.sources.has(LogSource::Server));
        for view in [LogView::File, LogView::Server, LogView::Both] {
            app.log_view = view;
            assert_eq!(app.visible_log().count(), 1, "{view:?}");
        }
        // The same text again from a source it already has is a new line
        // (a log may repeat itself).
        app.push_log(LogSource::File, line);
        assert_eq!(app.log.len(), 2);
        app.log_view = LogView::Server;
        assert_eq!(app.visible_log().count(), 1);
    }

    #[test]
    fn duplicates_are_found_anywhere_in_the_buffer() {
        let mut app = App::new("s", "me", "log.txt");
        // A poll of the file later than 400 streamed lines: far more than
        // the last few lines apart.
        for i in 0..400 {
            app.push_log(LogSource::Server, event_line(i));
        }
        for i in 0..400 {
            app.push_log(LogSource::File, event_line(i));
        }
        assert_eq!(app.log.len(), 400);
        assert!(
            app.log
                .iter()
                .all(|l| l.sources.has(LogSource::File) && l.sources.has(LogSource::Server))
        );
        app.log_view = LogView::File;
        assert_eq!(app.visible_log().count(), 400);
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
        assert!(app.scroll <= MAX_SCROLL && app.log_scroll <= MAX_SCROLL);
        for i in 0..10 {
            app.notice(Level::Info, format!("n{i}"));
            app.push_log(LogSource::Server, event_line(i));
        }
        assert!(app.scroll <= MAX_SCROLL && app.log_scroll <= MAX_SCROLL);
        let s = super::super::render::to_text(&mut app, 120, 40);
        // Drawn clamped to the rows that exist: at the top of each pane.
        assert!(s.contains("n0") && s.contains("#0"), "{s}");
        assert!(
            app.scroll < 100 && app.log_scroll < 100,
            "clamped by the render"
        );
    }
}
