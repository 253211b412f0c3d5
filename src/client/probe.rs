//! Latency probes: ids, send times and timeouts of the probes in flight, and
//! the figures of the current log interval (one `Probe` line every
//! [`LOG_EVERY`]). Time is passed in, so tests drive it; the connection task
//! does the sending and the logging.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::latency::live::{Figures, Series, Window};

/// A probe unanswered this many intervals is lost...
const TIMEOUT_INTERVALS: u32 = 5;
/// ...but never sooner than this: a slow link is not a lossy one.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the figures of the probes go to the log.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);

/// When a probe sent every `every` counts as lost.
pub fn probe_timeout(every: Duration) -> Duration {
    every.saturating_mul(TIMEOUT_INTERVALS).max(MIN_TIMEOUT)
}

/// The probes of one client, across its connections.
#[derive(Debug)]
pub(crate) struct Prober {
    timeout: Duration,
    next_id: u64,
    /// Send time of each probe in flight (a handful: older ones time out),
    /// monotonic and wall (µs since the epoch: t1, for the clock offset).
    pending: HashMap<u64, (Instant, i64)>,
    /// The current log interval's round trips and losses.
    interval: Series,
    /// When the current log interval began.
    since: Instant,
}

impl Prober {
    /// Probes every `every`; `None` when `every` is zero (probes off).
    pub(crate) fn new(every: Duration, now: Instant) -> Option<Prober> {
        (!every.is_zero()).then(|| Prober {
            timeout: probe_timeout(every),
            next_id: 1,
            pending: HashMap::new(),
            interval: Series::new(),
            since: now,
        })
    }

    /// The id of a probe about to be written at `at` (`wall_us` on the
    /// wall clock).
    pub(crate) fn sent(&mut self, at: Instant, wall_us: i64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, (at, wall_us));
        id
    }

    /// The round trip of probe `id`, if it was still in flight (a reply
    /// after its timeout is not counted twice: it already counted as lost).
    /// Also gives the probe's wall-clock send time.
    pub(crate) fn replied(&mut self, id: u64, at: Instant) -> Option<(Duration, i64)> {
        let (sent, wall_us) = self.pending.remove(&id)?;
        let rtt = at.saturating_duration_since(sent);
        self.interval.record(at, rtt);
        Some((rtt, wall_us))
    }

    /// Probes that just passed their timeout, now lost.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<u64> {
        let timeout = self.timeout;
        let mut out: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (sent, _))| now.saturating_duration_since(*sent) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        out.sort_unstable();
        for id in &out {
            self.pending.remove(id);
            self.interval.record_lost(now);
        }
        out
    }

    /// The connection is gone: every probe in flight is lost.
    pub(crate) fn drain(&mut self, now: Instant) -> Vec<u64> {
        let mut out: Vec<u64> = self.pending.drain().map(|(id, _)| id).collect();
        out.sort_unstable();
        for _ in &out {
            self.interval.record_lost(now);
        }
        out
    }

    /// Forgets the probes in flight without counting them lost: the server
    /// refused them, so they measured nothing.
    pub(crate) fn forget(&mut self) {
        self.pending.clear();
    }

    /// The figures of the interval that just ended, once [`LOG_EVERY`] has
    /// passed and something happened in it; the next interval starts.
    pub(crate) fn due_log(&mut self, now: Instant) -> Option<Figures> {
        if now.saturating_duration_since(self.since) < LOG_EVERY {
            return None;
        }
        self.since = now;
        let empty = self.interval.is_empty();
        let f = self.interval.figures(Window::All, now);
        self.interval.reset();
        (!empty).then_some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_is_five_intervals_but_at_least_a_second() {
        assert_eq!(probe_timeout(Duration::from_millis(200)), MIN_TIMEOUT);
        assert_eq!(
            probe_timeout(Duration::from_secs(1)),
            Duration::from_secs(5)
        );
        assert!(Prober::new(Duration::ZERO, Instant::now()).is_none());
    }

    #[test]
    fn replies_timeouts_and_the_log_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = Prober::new(ms(200), t0).expect("on");
        let a = p.sent(t0, 0);
        let b = p.sent(t0 + ms(200), 0);
        assert_ne!(a, b);
        assert_eq!(p.replied(a, t0 + ms(3)), Some((ms(3), 0)));
        assert_eq!(p.replied(a, t0 + ms(4)), None, "once");
        assert!(p.expire(t0 + ms(1000)).is_empty());
        assert_eq!(p.expire(t0 + ms(1200)), vec![b]);
        // Late: already lost, not counted again.
        assert_eq!(p.replied(b, t0 + ms(1300)), None);
        let c = p.sent(t0 + ms(1400), 0);
        assert_eq!(p.drain(t0 + ms(1500)), vec![c]);
        assert_eq!(p.due_log(t0 + ms(9000)), None, "not yet");
        let f = p.due_log(t0 + LOG_EVERY).expect("due");
        assert_eq!((f.count, f.lost, f.p50), (1, 2, ms(3)));
        // A quiet interval writes nothing.
        assert_eq!(p.due_log(t0 + LOG_EVERY * 2), None);
    }
}
