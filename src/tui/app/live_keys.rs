//! The live latency panel's keys and commands: `Space` freeze, `h`
//! histogram, `w` window, `+`/`-` zoom, `e` export (while a pane other than
//! the input has the focus), Ctrl-R and `/reset` clear the figures, `/mouse`
//! lets the terminal have the mouse. What needs I/O comes back as an
//! [`Action`].

use std::time::Instant;

use crossterm::event::KeyCode;

use super::{Action, App, Level};

impl App {
    /// A key for the live panel, if it is one: `Some` with what the run
    /// loop must do (often nothing).
    pub(super) fn live_key(&mut self, code: KeyCode, now: Instant) -> Option<Option<Action>> {
        match code {
            KeyCode::Char(' ') => self.live.toggle_freeze(now),
            KeyCode::Char('h') => self.live.toggle_hist(now),
            KeyCode::Char('w') => self.live.next_window(now),
            KeyCode::Char('+' | '=') => self.live.zoom_in(),
            KeyCode::Char('-' | '_') => self.live.zoom_out(),
            KeyCode::Char('e') => {
                let (text, count) = self.live.export(now);
                return Some(Some(Action::Export { text, count }));
            }
            _ => return None,
        }
        Some(None)
    }

    /// Ctrl-R, `/reset`: clears the figures and the chart.
    pub(super) fn reset_figures(&mut self, now: Instant) -> Option<Action> {
        self.live.reset(now);
        self.live_note = Some((false, "figures reset".into()));
        Some(Action::ResetFigures)
    }

    /// `/mouse [on|off]`: toggles (or sets) mouse capture.
    pub(super) fn mouse_command(&mut self, arg: &str) -> Option<Action> {
        let on = match arg {
            "" => !self.mouse,
            "on" => true,
            "off" => false,
            _ => {
                self.notice(Level::Error, "usage: /mouse [on|off]");
                return None;
            }
        };
        self.mouse = on;
        self.notice(
            Level::Info,
            if on {
                "mouse captured: the wheel scrolls the pane under it (/mouse to select text)"
            } else {
                "mouse released: select and copy text with it (/mouse to scroll with the wheel again)"
            },
        );
        Some(Action::Mouse(on))
    }

    /// The run loop wrote (or could not write) the export.
    pub fn exported(&mut self, result: Result<(String, usize), String>) {
        self.live_note = Some(match result {
            Ok((path, n)) => (false, format!("exported {n} samples to {path}")),
            Err(e) => (true, format!("export failed: {e}")),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crossterm::event::{Event, KeyEvent, KeyModifiers};

    use super::super::{Focus, Kind};
    use super::*;
    use crate::client::ClientEvent;

    fn key(app: &mut App, code: KeyCode, mods: KeyModifiers) -> Option<Action> {
        app.on_event(&Event::Key(KeyEvent::new(code, mods)))
    }

    #[test]
    fn live_keys_work_outside_the_input_and_type_inside_it() {
        let mut app = App::new("s", "me", "log.txt");
        let none = KeyModifiers::NONE;
        key(&mut app, KeyCode::Char('h'), none);
        assert!(!app.live().show_hist());
        assert_eq!(app.input().value(), "h");
        app.focus = Focus::Live;
        key(&mut app, KeyCode::Char('h'), none);
        assert!(app.live().show_hist());
        key(&mut app, KeyCode::Char(' '), none);
        assert!(app.live().frozen().is_some());
        key(&mut app, KeyCode::Char('-'), none);
        assert_eq!(app.live().span(), Duration::from_secs(120));
        key(&mut app, KeyCode::Char('+'), none);
        key(&mut app, KeyCode::Char('+'), none);
        assert_eq!(app.live().span(), Duration::from_secs(30));
        key(&mut app, KeyCode::Char('w'), none);
        assert_eq!(app.live().window().label(), "5min");
        assert!(matches!(
            key(&mut app, KeyCode::Char('e'), none),
            Some(Action::Export { count: 0, .. })
        ));
        assert_eq!(app.focus, Focus::Live, "live keys keep the focus");
    }

    #[test]
    fn ctrl_r_and_reset_clear_the_figures() {
        let mut app = App::new("s", "me", "log.txt");
        let now = Instant::now();
        app.on_client(
            ClientEvent::Probe {
                id: 1,
                rtt: Duration::from_millis(1),
            },
            now,
        );
        app.sync_live(now);
        assert_eq!(app.live().figures(Kind::Probe).count, 1);
        assert_eq!(
            key(&mut app, KeyCode::Char('r'), KeyModifiers::CONTROL),
            Some(Action::ResetFigures)
        );
        assert_eq!(app.live().figures(Kind::Probe).count, 0);
        app.on_client(ClientEvent::ProbeLost { id: 2 }, now);
        app.sync_live(now);
        assert_eq!(app.live().figures(Kind::Probe).lost, 1);
        for c in "/reset".chars() {
            key(&mut app, KeyCode::Char(c), KeyModifiers::NONE);
        }
        assert_eq!(
            key(&mut app, KeyCode::Enter, KeyModifiers::NONE),
            Some(Action::ResetFigures)
        );
        assert_eq!(app.live().figures(Kind::Probe).lost, 0);
    }

    #[test]
    fn mouse_command_toggles_and_sets() {
        let mut app = App::new("s", "me", "log.txt");
        assert!(app.mouse());
        assert_eq!(app.mouse_command(""), Some(Action::Mouse(false)));
        assert_eq!(app.mouse_command("on"), Some(Action::Mouse(true)));
        assert_eq!(app.mouse_command("sideways"), None);
        assert!(app.mouse());
    }
}
