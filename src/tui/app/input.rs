//! The input line and its history: what the user is typing, and Up/Down
//! recall of earlier inputs with the draft kept aside. It knows nothing of
//! commands, sockets or drawing.

use std::collections::VecDeque;

use crossterm::event::Event;
use tui_input::backend::crossterm::EventHandler;
use tui_input::{Input, InputRequest};

/// Inputs kept for Up/Down recall.
pub(crate) const HISTORY: usize = 500;

/// The input line.
#[derive(Debug, Default)]
pub(crate) struct InputBox {
    /// The line being edited (grapheme- and width-aware).
    input: Input,
    /// Earlier inputs, oldest first, at most [`HISTORY`].
    history: VecDeque<String>,
    /// Which history entry is shown while recalling; `None` when editing.
    pos: Option<usize>,
    /// What was typed before recall started, given back past the newest.
    draft: String,
}

impl InputBox {
    pub(crate) fn value(&self) -> &str {
        self.input.value()
    }

    /// The edited line, for its cursor and scroll.
    pub(crate) fn line(&self) -> &Input {
        &self.input
    }

    /// Hands a terminal event to the line editor.
    pub(crate) fn edit(&mut self, ev: &Event) {
        self.input.handle_event(ev);
    }

    pub(crate) fn insert(&mut self, c: char) {
        self.input.handle(InputRequest::InsertChar(c));
    }

    /// Walks the history: +1 older, -1 newer.
    pub(crate) fn recall(&mut self, dir: isize) {
        if self.history.is_empty() {
            return;
        }
        let pos = match (self.pos, dir > 0) {
            (None, true) => {
                self.draft = self.input.value().to_string();
                Some(self.history.len() - 1)
            }
            (None, false) => None,
            (Some(p), true) => Some(p.saturating_sub(1)),
            (Some(p), false) if p + 1 < self.history.len() => Some(p + 1),
            (Some(_), false) => None,
        };
        self.pos = pos;
        let text = match pos {
            Some(p) => self.history[p].clone(),
            None => std::mem::take(&mut self.draft),
        };
        self.input = Input::new(text);
    }

    /// Takes the line for sending (trailing blanks cut) and keeps it in the
    /// history; `None` and nothing changes when it is blank.
    pub(crate) fn submit(&mut self) -> Option<String> {
        let text = self.input.value().trim_end().to_string();
        if text.trim().is_empty() {
            return None;
        }
        self.input.reset();
        self.pos = None;
        self.draft.clear();
        if self.history.back() != Some(&text) {
            self.history.push_back(text.clone());
            if self.history.len() > HISTORY {
                self.history.pop_front();
            }
        }
        Some(text)
    }
}
