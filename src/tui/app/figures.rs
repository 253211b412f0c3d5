//! The figures panels' state: the reply rate and the figures the server
//! streams. The round trips' statistics are the live panel's (`live.rs`).
//! It knows nothing of keys or drawing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Window for messages per second.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Figures from the server's stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ServerFigures {
    pub(crate) clients: usize,
    pub(crate) names: Vec<String>,
    pub(crate) msgs_per_sec: f64,
    pub(crate) uptime_secs: u64,
    /// Events the server could not deliver to us, summed over the session.
    pub(crate) dropped_events: u64,
}

/// The rate and server panels' data.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    /// When each reply of the last [`RATE_WINDOW`] came, for the rate.
    reply_times: VecDeque<Instant>,
    /// Replies per second over [`RATE_WINDOW`].
    per_sec: f64,
    /// `None` until the server streams its first figures.
    server: Option<ServerFigures>,
}

impl Figures {
    /// Replies per second over [`RATE_WINDOW`].
    pub(crate) fn per_sec(&self) -> f64 {
        self.per_sec
    }

    pub(crate) fn server(&self) -> Option<&ServerFigures> {
        self.server.as_ref()
    }

    pub(crate) fn record_reply(&mut self, now: Instant) {
        self.reply_times.push_back(now);
        self.refresh(now);
    }

    pub(crate) fn add_dropped(&mut self, n: u64) {
        self.server
            .get_or_insert_with(Default::default)
            .dropped_events += n;
    }

    /// New figures from the server; the dropped count is ours and stays.
    pub(crate) fn set_server(&mut self, mut figures: ServerFigures) {
        figures.dropped_events = self.server.as_ref().map_or(0, |f| f.dropped_events);
        self.server = Some(figures);
    }

    /// Recomputes the rate; returns whether it changed.
    pub(crate) fn refresh(&mut self, now: Instant) -> bool {
        let before = self.per_sec;
        while let Some(t) = self.reply_times.front() {
            if now.saturating_duration_since(*t) > RATE_WINDOW {
                self.reply_times.pop_front();
            } else {
                break;
            }
        }
        self.per_sec = self.reply_times.len() as f64 / RATE_WINDOW.as_secs_f64();
        before != self.per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_counts_the_last_ten_seconds() {
        let mut f = Figures::default();
        let t0 = Instant::now();
        for i in 0..5 {
            f.record_reply(t0 + Duration::from_secs(i));
        }
        assert!((f.per_sec() - 0.5).abs() < 1e-9);
        // At 13 s the replies of 0, 1 and 2 s are more than 10 s old.
        assert!(f.refresh(t0 + Duration::from_secs(13)));
        assert!((f.per_sec() - 0.2).abs() < 1e-9);
    }
}
