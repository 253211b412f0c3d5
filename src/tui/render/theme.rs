//! Every colour and text style the TUI draws with, by role. The render
//! functions name a role (`theme.peer`), never a colour, so that a light or
//! colourless theme is one more constructor here.

use ratatui::style::{Color, Modifier, Style};

use crate::eventlog::EventKind;

/// Styles by role. Each is a whole [`Style`] (colours and modifiers), so a
/// theme may also change what is bold or italic, or use reverse video where
/// it has no colours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Theme {
    /// Border of the pane that has the focus.
    pub(crate) border_focused: Style,
    /// Border of every other pane.
    pub(crate) border: Style,
    /// Border of the help popup.
    pub(crate) help_border: Style,
    /// Secondary text: labels, times, ids, marks, hints, placeholders.
    pub(crate) dim: Style,
    /// The status bar's background and plain text.
    pub(crate) status_bar: Style,
    /// The connection state in the status bar, by state.
    pub(crate) conn_up: Style,
    pub(crate) conn_trying: Style,
    pub(crate) conn_down: Style,
    pub(crate) conn_closed: Style,
    /// The server's address in the status bar.
    pub(crate) server_addr: Style,
    /// Our own name (status bar and our messages).
    pub(crate) me: Style,
    /// The "local server" note in the status bar.
    pub(crate) local_server: Style,
    /// Someone else's name on a relayed message.
    pub(crate) peer: Style,
    /// The server's reply under one of our messages.
    pub(crate) reply: Style,
    /// A message still on its way (queued, pending).
    pub(crate) waiting: Style,
    /// A message that failed (timed out, undelivered).
    pub(crate) failed: Style,
    /// A message that got its reply (its round trip in the recent list).
    pub(crate) replied: Style,
    /// Notices in the reply pane, by level.
    pub(crate) notice_info: Style,
    pub(crate) notice_warn: Style,
    pub(crate) notice_error: Style,
    /// The "scrolled up" bar in the reply pane's title.
    pub(crate) scroll_bar: Style,
    /// A figure's value (after its dim label).
    pub(crate) figure: Style,
    /// The round-trip sparkline.
    pub(crate) spark: Style,
    /// The log panel's note (why it may look stale).
    pub(crate) log_note: Style,
    /// Log lines by kind of event.
    pub(crate) kind_error: Style,
    /// Connections, disconnections and joins.
    pub(crate) kind_session: Style,
    pub(crate) kind_sent: Style,
    pub(crate) kind_received: Style,
    /// Server start, stop and figures.
    pub(crate) kind_server: Style,
    pub(crate) kind_other: Style,
    /// The help's first line, and its closing note.
    pub(crate) help_title: Style,
    pub(crate) help_note: Style,
}

impl Default for Theme {
    fn default() -> Theme {
        Theme::dark()
    }
}

impl Theme {
    /// For dark terminals: chatmon's colours from the start.
    pub(crate) fn dark() -> Theme {
        let fg = |c: Color| Style::new().fg(c);
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let italic = |c: Color| fg(c).add_modifier(Modifier::ITALIC);
        Theme {
            border_focused: fg(Color::Cyan),
            border: fg(Color::DarkGray),
            help_border: fg(Color::Cyan),
            dim: fg(Color::DarkGray),
            status_bar: Style::new().bg(Color::Black).fg(Color::White),
            conn_up: fg(Color::Green).patch(bold),
            conn_trying: fg(Color::Yellow).patch(bold),
            conn_down: fg(Color::Red).patch(bold),
            conn_closed: fg(Color::DarkGray).patch(bold),
            server_addr: bold,
            me: fg(Color::Cyan).patch(bold),
            local_server: fg(Color::Magenta),
            peer: fg(Color::Magenta).patch(bold),
            reply: fg(Color::Green),
            waiting: fg(Color::Yellow),
            failed: fg(Color::Red),
            replied: fg(Color::Green),
            notice_info: italic(Color::DarkGray),
            notice_warn: italic(Color::Yellow),
            notice_error: italic(Color::Red),
            scroll_bar: Style::new().fg(Color::Black).bg(Color::Yellow),
            figure: bold,
            spark: fg(Color::Green),
            log_note: fg(Color::Yellow),
            kind_error: fg(Color::Red),
            kind_session: fg(Color::Yellow),
            kind_sent: fg(Color::Blue),
            kind_received: fg(Color::Green),
            kind_server: fg(Color::Magenta),
            kind_other: fg(Color::Gray),
            help_title: bold,
            help_note: fg(Color::DarkGray),
        }
    }

    /// The style of a log line's message by its kind (its kind name is the
    /// same, bold).
    pub(crate) fn kind(&self, kind: &EventKind) -> Style {
        match kind {
            EventKind::Error => self.kind_error,
            EventKind::Connection | EventKind::Disconnection | EventKind::Join => self.kind_session,
            EventKind::MessageSent => self.kind_sent,
            EventKind::MessageReceived => self.kind_received,
            EventKind::Stats | EventKind::ServerStart | EventKind::ServerStop => self.kind_server,
            _ => self.kind_other,
        }
    }
}
