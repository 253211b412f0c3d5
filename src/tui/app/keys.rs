//! Where every key press, mouse wheel turn, paste and `/command` goes: the
//! focus and help decide, the panes change. No I/O: what the run loop must do
//! comes back as an [`Action`].

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind,
};
use ratatui::layout::Position;

use super::{Action, App, Focus, Level, LogView};
use crate::protocol;

/// Rows one turn of the mouse wheel scrolls.
const WHEEL_ROWS: isize = 3;
/// Rows Up/Down (or k/j) scroll a focused pane.
const KEY_ROWS: isize = 1;

impl App {
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
            KeyCode::Char('r') if ctrl => return self.reset_figures(std::time::Instant::now()),
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
                if !ctrl && let Some(action) = self.live_key(k.code, std::time::Instant::now()) {
                    return action;
                }
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
            "reset" => self.reset_figures(std::time::Instant::now()),
            "mouse" => self.mouse_command(arg),
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

#[cfg(test)]
mod tests {
    use super::super::{Entry, LogSource, MAX_SCROLL};
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
        let s = crate::tui::render::to_text(&mut app, 120, 40);
        // Drawn clamped to the rows that exist: at the top of each pane.
        assert!(s.contains("n0") && s.contains("#0"), "{s}");
        assert!(
            app.chat().scroll() < 100 && app.log().scroll() < 100,
            "clamped by the render"
        );
    }
}
