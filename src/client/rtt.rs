//! Round trips in flight, matched by id, with time passed in (no clock of
//! its own, so tests drive it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Round trips in flight, matched by id (not by order: relays interleave).
#[derive(Debug, Default)]
pub(crate) struct RttTracker {
    pending: HashMap<u64, Pending>,
}

#[derive(Debug)]
struct Pending {
    sent: Instant,
    /// The wall clock at the same moment (µs since the Unix epoch): t1 of
    /// the four timestamps.
    sent_wall_us: i64,
    timed_out: bool,
}

impl RttTracker {
    pub fn sent(&mut self, id: u64, at: Instant, wall_us: i64) {
        self.pending.insert(
            id,
            Pending {
                sent: at,
                sent_wall_us: wall_us,
                timed_out: false,
            },
        );
    }

    /// The round trip of `id` and its wall-clock send time, if it was in
    /// flight.
    pub fn replied(&mut self, id: u64, at: Instant) -> Option<(Duration, i64)> {
        self.pending
            .remove(&id)
            .map(|p| (at.saturating_duration_since(p.sent), p.sent_wall_us))
    }

    /// Ids that just passed `timeout` (each reported once).
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<u64> {
        let mut out = Vec::new();
        for (id, p) in self.pending.iter_mut() {
            if !p.timed_out && now.saturating_duration_since(p.sent) >= timeout {
                p.timed_out = true;
                out.push(*id);
            }
        }
        out.sort_unstable();
        out
    }

    /// Forgets everything in flight (connection lost) and returns the ids.
    pub fn drain(&mut self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.pending.drain().map(|(id, _)| id).collect();
        ids.sort_unstable();
        ids
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_matches_by_id_not_order() {
        let mut t = RttTracker::default();
        let t0 = Instant::now();
        t.sent(1, t0, 100);
        t.sent(2, t0 + Duration::from_millis(1), 1100);
        assert_eq!(
            t.replied(2, t0 + Duration::from_millis(3)),
            Some((Duration::from_millis(2), 1100))
        );
        assert_eq!(
            t.replied(1, t0 + Duration::from_millis(5)),
            Some((Duration::from_millis(5), 100))
        );
        assert_eq!(t.replied(1, t0), None);
    }

    #[test]
    fn expiry_reports_once() {
        let mut t = RttTracker::default();
        let t0 = Instant::now();
        t.sent(1, t0, 0);
        assert!(t.expire(t0, Duration::from_secs(1)).is_empty());
        assert_eq!(
            t.expire(t0 + Duration::from_secs(2), Duration::from_secs(1)),
            vec![1]
        );
        assert!(
            t.expire(t0 + Duration::from_secs(3), Duration::from_secs(1))
                .is_empty()
        );
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.drain(), vec![1]);
    }
}
