//! Every colour and text style the TUI draws with, by role. The render
//! functions name a role (`theme.peer`), never a colour: `dark` (the
//! default), `light` (for light backgrounds) and `mono` (no colour at all:
//! `NO_COLOR`, or `--theme mono`) are the constructors here. No role carries
//! a meaning by colour alone: the panels say it with a word or a glyph too.

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
    /// The chart's probe and message round trips.
    pub(crate) chart_probe: Style,
    pub(crate) chart_msg: Style,
    /// The chart's p50 and p99 lines.
    pub(crate) chart_p50: Style,
    pub(crate) chart_p99: Style,
    /// Lost probes and messages (chart marks, figures, status bar).
    pub(crate) lost: Style,
    /// The chart's reconnect marks.
    pub(crate) reconnect: Style,
    /// The chart's axes and their labels.
    pub(crate) axis: Style,
    /// The histogram's bars.
    pub(crate) hist_bar: Style,
    /// The lag in the status bar: normal, above twice the p50.
    pub(crate) lag_ok: Style,
    pub(crate) lag_high: Style,
    /// The `frozen` mark in the panels' titles.
    pub(crate) frozen: Style,
}

/// The themes `--theme` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThemeChoice {
    Dark,
    Light,
    Mono,
}

impl std::str::FromStr for ThemeChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<ThemeChoice, String> {
        match s {
            "dark" => Ok(ThemeChoice::Dark),
            "light" => Ok(ThemeChoice::Light),
            "mono" => Ok(ThemeChoice::Mono),
            _ => Err(format!("unknown theme {s:?} (dark, light or mono)")),
        }
    }
}

impl Default for Theme {
    fn default() -> Theme {
        Theme::dark()
    }
}

impl Theme {
    /// The theme asked for, else `mono` when `NO_COLOR` is set to anything
    /// but the empty string (no-color.org: a command-line choice wins over
    /// the variable), else `dark`.
    pub(crate) fn resolve(
        choice: Option<ThemeChoice>,
        no_color: Option<&std::ffi::OsStr>,
    ) -> Theme {
        let no_color = no_color.is_some_and(|v| !v.is_empty());
        match choice {
            Some(ThemeChoice::Dark) => Theme::dark(),
            Some(ThemeChoice::Light) => Theme::light(),
            Some(ThemeChoice::Mono) => Theme::mono(),
            None if no_color => Theme::mono(),
            None => Theme::dark(),
        }
    }

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
            chart_probe: fg(Color::Cyan),
            chart_msg: fg(Color::Green),
            chart_p50: fg(Color::Yellow),
            chart_p99: fg(Color::Magenta),
            lost: fg(Color::Red).patch(bold),
            reconnect: fg(Color::Blue),
            axis: fg(Color::DarkGray),
            hist_bar: fg(Color::Cyan),
            lag_ok: fg(Color::Green),
            lag_high: fg(Color::Yellow).patch(bold),
            frozen: Style::new().fg(Color::Black).bg(Color::Cyan),
        }
    }

    /// For light terminals: no white or yellow text, darker greens.
    pub(crate) fn light() -> Theme {
        let fg = |c: Color| Style::new().fg(c);
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let italic = |c: Color| fg(c).add_modifier(Modifier::ITALIC);
        let amber = Color::Rgb(0x9a, 0x60, 0x00);
        let green = Color::Rgb(0x1a, 0x7f, 0x37);
        Theme {
            border_focused: fg(Color::Blue),
            border: fg(Color::Gray),
            help_border: fg(Color::Blue),
            dim: fg(Color::DarkGray),
            status_bar: Style::new().bg(Color::Gray).fg(Color::Black),
            conn_up: fg(green).patch(bold),
            conn_trying: fg(amber).patch(bold),
            conn_down: fg(Color::Red).patch(bold),
            conn_closed: fg(Color::DarkGray).patch(bold),
            server_addr: bold,
            me: fg(Color::Blue).patch(bold),
            local_server: fg(Color::Magenta),
            peer: fg(Color::Magenta).patch(bold),
            reply: fg(green),
            waiting: fg(amber),
            failed: fg(Color::Red),
            replied: fg(green),
            notice_info: italic(Color::DarkGray),
            notice_warn: italic(amber),
            notice_error: italic(Color::Red),
            scroll_bar: Style::new().fg(Color::White).bg(Color::Blue),
            figure: bold,
            spark: fg(green),
            log_note: fg(amber),
            kind_error: fg(Color::Red),
            kind_session: fg(amber),
            kind_sent: fg(Color::Blue),
            kind_received: fg(green),
            kind_server: fg(Color::Magenta),
            kind_other: fg(Color::DarkGray),
            help_title: bold,
            help_note: fg(Color::DarkGray),
            chart_probe: fg(Color::Blue),
            chart_msg: fg(green),
            chart_p50: fg(amber),
            chart_p99: fg(Color::Magenta),
            lost: fg(Color::Red).patch(bold),
            reconnect: fg(Color::Blue),
            axis: fg(Color::DarkGray),
            hist_bar: fg(Color::Blue),
            lag_ok: fg(green),
            lag_high: fg(amber).patch(bold),
            frozen: Style::new().fg(Color::White).bg(Color::Blue),
        }
    }

    /// No colour at all (`NO_COLOR`): bold, dim, italic and reverse video
    /// only, so every state still reads apart.
    pub(crate) fn mono() -> Theme {
        let m = |m: Modifier| Style::new().add_modifier(m);
        let plain = Style::new();
        let (bold, dim, italic, rev) = (
            m(Modifier::BOLD),
            m(Modifier::DIM),
            m(Modifier::ITALIC),
            m(Modifier::REVERSED),
        );
        Theme {
            border_focused: bold,
            border: plain,
            help_border: bold,
            dim,
            status_bar: rev,
            conn_up: bold,
            conn_trying: bold,
            conn_down: bold.patch(m(Modifier::UNDERLINED)),
            conn_closed: dim,
            server_addr: bold,
            me: bold,
            local_server: italic,
            peer: bold,
            reply: plain,
            waiting: italic,
            failed: bold,
            replied: plain,
            notice_info: italic,
            notice_warn: italic.patch(bold),
            notice_error: italic.patch(bold),
            scroll_bar: rev,
            figure: bold,
            spark: plain,
            log_note: italic,
            kind_error: bold,
            kind_session: plain,
            kind_sent: plain,
            kind_received: plain,
            kind_server: plain,
            kind_other: dim,
            help_title: bold,
            help_note: dim,
            chart_probe: plain,
            chart_msg: bold,
            chart_p50: dim,
            chart_p99: dim,
            lost: bold,
            reconnect: dim,
            axis: dim,
            hist_bar: plain,
            lag_ok: plain,
            lag_high: bold,
            frozen: rev,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn no_color_chooses_mono_unless_a_theme_is_asked_for() {
        assert_eq!(Theme::resolve(None, None), Theme::dark());
        assert_eq!(Theme::resolve(None, Some(OsStr::new(""))), Theme::dark());
        assert_eq!(Theme::resolve(None, Some(OsStr::new("1"))), Theme::mono());
        assert_eq!(
            Theme::resolve(Some(ThemeChoice::Light), Some(OsStr::new("1"))),
            Theme::light()
        );
        assert_eq!("mono".parse::<ThemeChoice>(), Ok(ThemeChoice::Mono));
        assert!("neon".parse::<ThemeChoice>().is_err());
    }
}
