//! The figures panels' state: the reply rate, the server and network time
//! of stamped replies, the clock offset, and the figures the server
//! streams. The round trips' statistics are the live panel's (`live.rs`).
//! It knows nothing of keys or drawing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::timing::Offset;

/// Stamped replies kept for the server/network time figures.
pub(crate) const SPLIT_SAMPLES: usize = 10_000;

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

/// Server and network time over the kept samples (µs), nearest rank.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct SplitFigures {
    pub(crate) count: usize,
    pub(crate) server_p50: u64,
    pub(crate) server_p99: u64,
    pub(crate) net_p50: u64,
    pub(crate) net_p99: u64,
}

/// Nearest-rank percentile of sorted µs: `sorted[ceil(p*n) - 1]`.
fn percentile_us(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The rate, timing and server panels' data.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    /// When each reply of the last [`RATE_WINDOW`] came, for the rate.
    reply_times: VecDeque<Instant>,
    /// Replies per second over [`RATE_WINDOW`].
    per_sec: f64,
    /// `None` until the server streams its first figures.
    server: Option<ServerFigures>,
    /// Server and network time (µs) of recent stamped replies, oldest first.
    splits: VecDeque<(u64, u64)>,
    /// Statistics of `splits`.
    split: SplitFigures,
    /// The clock offset to the server, as the connection last estimated it.
    offset: Option<Offset>,
}

impl Figures {
    /// Replies per second over [`RATE_WINDOW`].
    pub(crate) fn per_sec(&self) -> f64 {
        self.per_sec
    }

    pub(crate) fn server(&self) -> Option<&ServerFigures> {
        self.server.as_ref()
    }

    pub(crate) fn split(&self) -> &SplitFigures {
        &self.split
    }

    pub(crate) fn offset(&self) -> Option<Offset> {
        self.offset
    }

    pub(crate) fn set_offset(&mut self, offset: Offset) {
        self.offset = Some(offset);
    }

    /// A stamped reply's server and network time, in µs. Sorted per reply
    /// (not per frame): replies come at typing speed.
    pub(crate) fn record_split(&mut self, server_us: u64, net_us: u64) {
        self.splits.push_back((server_us, net_us));
        while self.splits.len() > SPLIT_SAMPLES {
            self.splits.pop_front();
        }
        let mut s: Vec<u64> = self.splits.iter().map(|v| v.0).collect();
        let mut n: Vec<u64> = self.splits.iter().map(|v| v.1).collect();
        s.sort_unstable();
        n.sort_unstable();
        self.split = SplitFigures {
            count: s.len(),
            server_p50: percentile_us(&s, 0.50),
            server_p99: percentile_us(&s, 0.99),
            net_p50: percentile_us(&n, 0.50),
            net_p99: percentile_us(&n, 0.99),
        };
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
