//! The figures panels' state: round-trip samples and their statistics, the
//! reply rate, and the figures the server streams. It knows nothing of keys
//! or drawing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::timing::Offset;

/// Round-trip samples kept for the figures.
pub(crate) const RTT_SAMPLES: usize = 10_000;
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

/// Round-trip statistics over the kept samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RttFigures {
    pub(crate) count: usize,
    pub(crate) min: Duration,
    pub(crate) p50: Duration,
    pub(crate) p90: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
    /// Replies per second over [`RATE_WINDOW`].
    pub(crate) per_sec: f64,
}

/// Nearest-rank percentile of sorted samples: `sorted[ceil(p*n) - 1]`.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
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

/// The latency, sparkline and server panels' data.
#[derive(Debug, Default)]
pub(crate) struct Figures {
    /// Recent round trips, oldest first, with the message id.
    rtts: VecDeque<(u64, Duration)>,
    /// When each reply of the last [`RATE_WINDOW`] came, for the rate.
    reply_times: VecDeque<Instant>,
    /// Statistics of `rtts`, computed on change rather than per frame.
    rtt: RttFigures,
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
    pub(crate) fn rtt(&self) -> &RttFigures {
        &self.rtt
    }

    /// Round trips, oldest first.
    pub(crate) fn rtts(&self) -> impl DoubleEndedIterator<Item = Duration> + ExactSizeIterator {
        self.rtts.iter().map(|(_, d)| *d)
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

    /// A stamped reply's server and network time, in µs.
    pub(crate) fn record_split(&mut self, server_us: u64, net_us: u64) {
        self.splits.push_back((server_us, net_us));
        while self.splits.len() > RTT_SAMPLES {
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

    pub(crate) fn server(&self) -> Option<&ServerFigures> {
        self.server.as_ref()
    }

    pub(crate) fn record_reply(&mut self, id: u64, rtt: Duration, now: Instant) {
        self.rtts.push_back((id, rtt));
        while self.rtts.len() > RTT_SAMPLES {
            self.rtts.pop_front();
        }
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

    /// Recomputes the statistics; returns whether the rate changed.
    pub(crate) fn refresh(&mut self, now: Instant) -> bool {
        let before = self.rtt.per_sec;
        while let Some(t) = self.reply_times.front() {
            if now.saturating_duration_since(*t) > RATE_WINDOW {
                self.reply_times.pop_front();
            } else {
                break;
            }
        }
        let mut sorted: Vec<Duration> = self.rtts().collect();
        sorted.sort_unstable();
        self.rtt = RttFigures {
            count: sorted.len(),
            min: sorted.first().copied().unwrap_or_default(),
            p50: percentile(&sorted, 0.50),
            p90: percentile(&sorted, 0.90),
            p99: percentile(&sorted, 0.99),
            max: sorted.last().copied().unwrap_or_default(),
            per_sec: self.reply_times.len() as f64 / RATE_WINDOW.as_secs_f64(),
        };
        before != self.rtt.per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(5));
        assert_eq!(percentile(&v, 0.9), Duration::from_millis(9));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(10));
        assert_eq!(percentile(&v[..1], 0.5), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
