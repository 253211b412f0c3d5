//! The client's side of the four timestamps, per connection: the clock filter
//! fed by stamped replies and by clock probes (pings with an id, answered by a
//! `pong`), the probes in flight, and the one-way delay of relayed messages.
//! The arithmetic is [`crate::timing`]'s; this file only decides what to feed
//! it and when to probe. Times come in as arguments.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::timing::{self, ClockFilter, Offset, RelayTiming, Sample, Stamps};

/// Probes sent one a tick right after connecting, so that the offset (and
/// with it the one-way delay of what others send) is known before the user
/// types anything, from the best of a few round trips.
pub(crate) const PROBES_AT_START: usize = 4;
/// Probes in flight at most: a server that never answers them (one from
/// before pongs) must not fill a map.
const MAX_PROBES_IN_FLIGHT: usize = 4;

/// The clock state of one connection.
#[derive(Debug, Default)]
pub(crate) struct ClockState {
    filter: ClockFilter,
    /// Probes in flight: id → (monotonic, wall µs) when written.
    probes: HashMap<u64, (Instant, i64)>,
    /// Id of the next probe (its own number space: pongs are not replies).
    next_probe: u64,
    /// Probes sent on this connection.
    probes_sent: usize,
}

impl ClockState {
    /// A new connection: another server may have another clock.
    pub(crate) fn reset(&mut self) {
        self.filter.clear();
        self.probes.clear();
        self.probes_sent = 0;
    }

    /// Whether a start-up probe is due (one a tick, the first few).
    pub(crate) fn wants_probe(&self) -> bool {
        self.probes_sent < PROBES_AT_START && self.probes.is_empty()
    }

    /// Records a probe about to be written; returns its id, or `None` when
    /// too many are unanswered already.
    pub(crate) fn probe(&mut self, at: Instant, wall_us: i64) -> Option<u64> {
        if self.probes.len() >= MAX_PROBES_IN_FLIGHT {
            return None;
        }
        self.next_probe = self.next_probe.wrapping_add(1);
        self.probes.insert(self.next_probe, (at, wall_us));
        self.probes_sent += 1;
        Some(self.next_probe)
    }

    /// A stamped reply (or pong) came back at `at` / `t4`: works out where
    /// the time went and feeds the filter.
    pub(crate) fn round_trip(
        &mut self,
        rtt: Duration,
        t1: i64,
        (t2, t3): (i64, i64),
        t4: i64,
        at: Instant,
    ) -> Sample {
        let sample = Sample::from_stamps(Stamps {
            t1,
            t2,
            t3,
            t4,
            rtt_us: u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
        });
        self.filter.add(at, sample);
        sample
    }

    /// A pong for probe `id`; `None` if no such probe is in flight.
    pub(crate) fn pong(
        &mut self,
        id: u64,
        server: (i64, i64),
        t4: i64,
        at: Instant,
    ) -> Option<Sample> {
        let (sent, t1) = self.probes.remove(&id)?;
        Some(self.round_trip(at.saturating_duration_since(sent), t1, server, t4, at))
    }

    pub(crate) fn estimate(&self, now: Instant) -> Option<Offset> {
        self.filter.estimate(now)
    }

    /// The trip of a relayed message read at `received_us` (our wall clock),
    /// from the stamps its relay carried; `None` without an estimate of our
    /// own or without any stamps.
    pub(crate) fn relay(
        &self,
        now: Instant,
        received_us: i64,
        stamps: RelayStamps,
    ) -> Option<RelayTiming> {
        let ours = self.estimate(now)?;
        match stamps {
            RelayStamps {
                sent_us: Some(sent),
                offset_us: Some(offset_us),
                bound_us: Some(bound_us),
                ..
            } => Some(RelayTiming::OneWay(timing::relay_delay(
                sent,
                Offset {
                    offset_us,
                    bound_us,
                },
                received_us,
                ours,
            ))),
            RelayStamps {
                read_us: Some(read),
                ..
            } => Some(RelayTiming::SinceServer(timing::since_server_read(
                read,
                received_us,
                ours,
            ))),
            _ => None,
        }
    }
}

/// The stamps a relayed `chat` carries (all optional: older servers and
/// senders send none).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RelayStamps {
    /// The server's read of the original.
    pub(crate) read_us: Option<i64>,
    /// The sender's send time, offset and bound.
    pub(crate) sent_us: Option<i64>,
    pub(crate) offset_us: Option<i64>,
    pub(crate) bound_us: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_then_relays_between_skewed_clocks() {
        let t0 = Instant::now();
        let mut c = ClockState::default();
        assert!(c.wants_probe());
        // Our clock is 3 s behind the server's; 40 µs each way, 10 held.
        let id = c.probe(t0, 1_000_000).expect("room for a probe");
        assert!(!c.wants_probe(), "one at a time");
        let back = t0 + Duration::from_micros(90);
        let s = c
            .pong(id, (4_000_040, 4_000_050), 1_000_090, back)
            .expect("known probe");
        assert_eq!((s.offset_us, s.bound_us, s.server_us), (3_000_000, 40, 10));
        assert!(c.pong(id, (0, 0), 0, back).is_none(), "answered once");
        assert!(c.wants_probe());
        // A sender 2 s ahead of the server sent at server time 5 s; we read
        // it at server time 5.0005 s, 2 s and 3 s of skew notwithstanding.
        let got = c.relay(
            back,
            5_000_500 - 3_000_000,
            RelayStamps {
                read_us: Some(5_000_200),
                sent_us: Some(5_000_000 + 2_000_000),
                offset_us: Some(-2_000_000),
                bound_us: Some(60),
            },
        );
        assert_eq!(
            got,
            Some(RelayTiming::OneWay(timing::OneWay {
                delay_us: 500,
                bound_us: 100
            }))
        );
        // An older sender: only the server's read.
        let got = c.relay(
            back,
            5_000_500 - 3_000_000,
            RelayStamps {
                read_us: Some(5_000_200),
                ..RelayStamps::default()
            },
        );
        assert_eq!(
            got,
            Some(RelayTiming::SinceServer(timing::OneWay {
                delay_us: 300,
                bound_us: 40
            }))
        );
        c.reset();
        assert_eq!(c.estimate(back), None);
        assert_eq!(c.relay(back, 0, RelayStamps::default()), None);
    }

    #[test]
    fn unanswered_probes_are_bounded() {
        let t0 = Instant::now();
        let mut c = ClockState::default();
        let ids: Vec<_> = (0..10).filter_map(|_| c.probe(t0, 0)).collect();
        assert_eq!(ids.len(), MAX_PROBES_IN_FLIGHT);
    }
}
