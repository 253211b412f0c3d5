//! The reply pane's state: our messages and where each one is, other people's
//! messages, notices, and how far the pane is scrolled. It knows nothing of
//! keys, sockets or drawing.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use crate::timing::{RelayTiming, Sample};

use super::{MAX_SCROLL, scrolled};

/// Lines of chat history kept; older ones are dropped.
pub(crate) const SCROLLBACK: usize = 5000;
/// How many of the newest entries a tick looks at for a live timer: a
/// message pending for longer than this many entries is rare and its timer
/// still moves on the next event.
const PENDING_SCAN: usize = 200;

/// Where one of our messages is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MsgStatus {
    /// Waiting for a connection.
    Queued,
    /// Written; waiting for the reply.
    Pending {
        since: Instant,
    },
    Replied {
        rtt: Duration,
        reply: String,
        /// Server and network time, when the server stamped its reply.
        split: Option<Sample>,
    },
    TimedOut {
        since: Instant,
    },
    Undelivered {
        reason: String,
    },
}

/// How much a notice matters; the render picks its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warn,
    Error,
}

/// One entry of the reply pane.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Entry {
    Mine {
        id: u64,
        text: String,
        status: MsgStatus,
    },
    Other {
        from: String,
        text: String,
        /// The server's time of the message; `None` when the server sent a
        /// time that does not parse (it is then shown blank).
        time: Option<NaiveDateTime>,
        /// How long it took to reach us, when the stamps allow saying.
        timing: Option<RelayTiming>,
    },
    Notice {
        text: String,
        level: Level,
    },
}

/// The reply pane.
#[derive(Debug, Default)]
pub(crate) struct ChatPane {
    /// Oldest first, at most [`SCROLLBACK`].
    entries: VecDeque<Entry>,
    /// Index in `entries` of each of our messages, by id (offset by `dropped`).
    by_id: HashMap<u64, u64>,
    /// How many entries were dropped from the front (for stable indexes).
    dropped: u64,
    /// Rows scrolled up from the bottom (0: follow the newest).
    scroll: usize,
}

impl ChatPane {
    pub(crate) fn entries(&self) -> &VecDeque<Entry> {
        &self.entries
    }

    pub(crate) fn scroll(&self) -> usize {
        self.scroll
    }

    pub(crate) fn notice(&mut self, level: Level, text: impl Into<String>) {
        self.push(Entry::Notice {
            text: text.into(),
            level,
        });
    }

    pub(crate) fn push(&mut self, e: Entry) {
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

    /// Records a message handed to the connection under `id`, and follows.
    pub(crate) fn sent(&mut self, id: u64, text: String) {
        self.push(Entry::Mine {
            id,
            text,
            status: MsgStatus::Queued,
        });
        self.scroll = 0;
    }

    /// The status of our message `id`, if it is still in the scrollback.
    pub(crate) fn status_of(&mut self, id: u64) -> Option<&mut MsgStatus> {
        let idx = self.by_id.get(&id)?.checked_sub(self.dropped)?;
        match self.entries.get_mut(idx as usize) {
            Some(Entry::Mine { status, .. }) => Some(status),
            _ => None,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.by_id.clear();
        self.scroll = 0;
    }

    pub(crate) fn follow(&mut self) {
        self.scroll = 0;
    }

    /// Scrolls up by `by` rows (down when negative).
    pub(crate) fn scroll_by(&mut self, by: isize) {
        self.scroll = scrolled(self.scroll, by);
    }

    /// Clamps the scroll to the rows that exist; called by the render, the
    /// only one that knows how many rows the entries wrap to.
    pub(crate) fn clamp_scroll(&mut self, max: usize) {
        self.scroll = self.scroll.min(max);
    }

    /// Whether a recent message has a timer that moves (queued or pending).
    pub(crate) fn has_live_timer(&self) -> bool {
        self.entries.iter().rev().take(PENDING_SCAN).any(|e| {
            matches!(
                e,
                Entry::Mine {
                    status: MsgStatus::Pending { .. } | MsgStatus::Queued,
                    ..
                }
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrollback_is_capped_and_ids_survive() {
        let mut chat = ChatPane::default();
        for i in 0..(SCROLLBACK as u64 + 10) {
            chat.sent(i, format!("m{i}"));
        }
        assert_eq!(chat.entries().len(), SCROLLBACK);
        let last = SCROLLBACK as u64 + 9;
        let s = chat.status_of(last).expect("newest message is kept");
        *s = MsgStatus::Pending {
            since: Instant::now(),
        };
        match chat.entries().back() {
            Some(Entry::Mine { status, .. }) => {
                assert!(matches!(status, MsgStatus::Pending { .. }))
            }
            e => panic!("unexpected {e:?}"),
        }
        // An id that scrolled away is ignored, not misapplied.
        assert!(chat.status_of(0).is_none());
    }
}
