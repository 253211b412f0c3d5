//! The TUI's state, by pane (chat, log, input, figures, status), and where
//! the client's events and ticks go. Keys, the mouse and `/commands` are
//! routed in `keys`. Nothing here draws or does I/O: the run loop feeds
//! events in and carries [`Action`]s out, and the render reads the panes.

mod chat;
mod figures;
mod input;
mod keys;
mod live;
mod live_keys;
mod log;
mod status;

use std::time::{Duration, Instant};

use ratatui::layout::Rect;

use crate::client::ClientEvent;

pub(crate) use chat::{ChatPane, Entry, Level, MsgStatus};
pub(crate) use figures::{Figures, ServerFigures};
pub(crate) use input::InputBox;
pub(crate) use live::{Kind, Lag, Live, wall_at as live_wall_at};
pub(crate) use log::{LogLine, LogPanel};
pub use log::{LogSource, LogView};
pub(crate) use status::{ConnState, Status, TlsBadge};

/// Most rows a pane can be scrolled up. No pane holds this many rows
/// ([`SCROLLBACK`](chat::SCROLLBACK) entries of at most a protocol line each), so it never
/// stops a scroll short, and the render clamps to the rows that exist; it
/// keeps every sum of offsets and heights far from overflowing.
pub(crate) const MAX_SCROLL: usize = u32::MAX as usize;

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
    /// Write the live panel's export (JSON Lines, `count` samples) to a
    /// file and say where with [`App::exported`].
    Export {
        text: String,
        count: usize,
    },
    /// The figures were cleared: leave a marker in the log.
    ResetFigures,
    /// Capture the mouse (wheel scrolling), or let the terminal have it
    /// (text selection).
    Mouse(bool),
}

/// Everything the TUI shows, by pane.
pub struct App {
    status: Status,
    chat: ChatPane,
    log: LogPanel,
    input: InputBox,
    figures: Figures,
    /// The live latency panel: probes, messages, chart, lag.
    live: Live,
    /// Whether the mouse is captured (wheel scrolls) or left to the
    /// terminal (text can be selected and copied).
    mouse: bool,
    /// The last export's or reset's result, for the status bar: whether it
    /// failed, and its words.
    live_note: Option<(bool, String)>,
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
            live: Live::new(crate::client::DEFAULT_PROBE_EVERY),
            mouse: true,
            live_note: None,
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

    pub(crate) fn live(&self) -> &Live {
        &self.live
    }

    pub(crate) fn mouse(&self) -> bool {
        self.mouse
    }

    pub(crate) fn live_note(&self) -> Option<&(bool, String)> {
        self.live_note.as_ref()
    }

    /// The probe period (zero: off) and whether the mouse starts captured.
    pub fn configure(&mut self, probe_every: Duration, mouse: bool) {
        self.live = Live::new(probe_every);
        self.mouse = mouse;
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

    /// The connection is TLS; the status bar says how it is checked.
    pub(crate) fn set_tls(&mut self, badge: TlsBadge) {
        self.status.set_tls(badge);
    }

    /// Says in the status bar that this process runs the server.
    pub(crate) fn set_local_server(&mut self, note: &str) {
        self.status.set_local_server(note);
    }

    pub(crate) fn set_log_note(&mut self, note: String) {
        self.log.set_note(note);
    }

    /// Records a message handed to the connection under `id`.
    pub fn sent_local(&mut self, id: u64, text: String) {
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
                server: _,
                embedded,
                plain,
            } => {
                self.status.set_server_embedded(embedded);
                self.status.set_plain(plain);
                // A new session: its server says again if its link is down.
                self.status.set_cluster_link(true, String::new());
                let was_down = matches!(self.status.conn(), ConnState::Disconnected { .. });
                self.status.set_conn(ConnState::Connected);
                self.status.set_name(name.clone());
                self.status.set_user_count(users.len());
                if was_down {
                    self.live.reconnected(now);
                }
                let verb = if was_down { "reconnected" } else { "connected" };
                let msg = format!("{verb} to {} as {name}", self.status.server());
                self.notice(Level::Info, msg);
                if plain {
                    self.notice(
                        Level::Info,
                        "a plain server (the seed's protocol): replies and round trips only, no room",
                    );
                }
            }
            ClientEvent::Disconnected {
                reason, retry_in, ..
            } => {
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
            ClientEvent::Reply {
                id,
                text,
                rtt,
                split,
            } => {
                if let Some(s) = self.chat.status_of(id) {
                    *s = MsgStatus::Replied {
                        rtt,
                        reply: text,
                        split,
                    };
                }
                if let Some(sp) = split {
                    self.figures.record_split(sp.server_us, sp.network_us);
                }
                self.figures.record_reply(now);
                self.live.reply(id, rtt, now);
            }
            ClientEvent::Clock(offset) => self.figures.set_offset(offset),
            ClientEvent::TimedOut { id } => {
                if let Some(s) = self.chat.status_of(id)
                    && matches!(s, MsgStatus::Pending { .. })
                {
                    *s = MsgStatus::TimedOut { since: now };
                }
                self.live.message_lost(id, now);
            }
            ClientEvent::Undelivered { id, reason } => {
                if let Some(s) = self.chat.status_of(id) {
                    // Sent and cut off by the connection: lost. Never sent
                    // (queued at quit, queue full): no round trip at all.
                    if matches!(s, MsgStatus::Pending { .. }) {
                        self.live.message_lost(id, now);
                    }
                    *s = MsgStatus::Undelivered { reason };
                }
            }
            ClientEvent::Probe { id, rtt } => self.live.probe(id, rtt, now),
            ClientEvent::ProbeLost { id } => self.live.probe_lost(id, now),
            ClientEvent::Chat {
                from,
                text,
                ts,
                timing,
            } => {
                let time = chrono::NaiveDateTime::parse_from_str(&ts, TS_FORMAT).ok();
                self.chat.push(Entry::Other {
                    from,
                    text,
                    time,
                    timing,
                });
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
            ClientEvent::ClusterLink { up, node } => {
                if up {
                    self.notice(Level::Info, format!("cluster link of node {node} is up"));
                } else {
                    self.notice(
                        Level::Error,
                        format!("cluster link of node {node} is down: the room is this node only"),
                    );
                }
                self.status.set_cluster_link(up, node);
            }
            ClientEvent::Closed => self.status.set_conn(ConnState::Closed),
        }
    }

    /// Brings the live panel's figures up to date with the samples that
    /// arrived (once per frame at most: the render calls it).
    pub(crate) fn sync_live(&mut self, now: Instant) {
        self.live.sync(now);
    }

    /// Periodic work; returns whether anything visible changed.
    pub(crate) fn on_tick(&mut self, now: Instant) -> bool {
        let rate_changed = self.figures.refresh(now);
        self.live.refresh(now);
        // The chart's time axis moves with the clock.
        let live_moves = self.live.frozen().is_none()
            && (self.live.probes_on() || self.live.points_until(now).next().is_some());
        live_moves
            || self.chat.has_live_timer()
            || rate_changed
            || matches!(self.status.conn(), ConnState::Disconnected { .. })
    }
}

/// How the server writes a relayed message's time (its log's format).
const TS_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

#[cfg(test)]
mod tests {
    use super::chat::SCROLLBACK;
    use super::*;
    use std::time::Duration;

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
                split: None,
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
        app.sync_live(t0);
        let m = app.live().figures(Kind::Message);
        assert_eq!((m.count, m.lost), (1, 1));
        assert_eq!(m.p99, Duration::from_micros(300));
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
            timing: None,
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
}
