//! The four-timestamp arithmetic of NTP (RFC 5905) and TWAMP (RFC 5357), pure:
//! server time, network time and clock offset of one round trip, the clock
//! filter that keeps the best recent offset, and the one-way delay of a relayed
//! message between two clients whose clocks disagree. No clock is read here;
//! every time comes in as an argument, so every figure can be checked by hand.
//!
//! Conventions. Wall-clock times are microseconds since the Unix epoch (`i64`,
//! as each machine's clock says). Durations measured on one machine's
//! monotonic clock are unsigned microseconds. The offset θ is *server minus
//! client*: a client time plus θ is the same moment on the server's clock, so a
//! client whose clock runs 2 s ahead of the server has θ ≈ −2 s.
//!
//! Every value that comes from a peer (the server's stamps, another client's
//! send time and offset) is combined with saturating arithmetic: a hostile or
//! broken peer makes the figures meaningless, never the process panic.

use std::collections::VecDeque;
use std::time::Instant;

/// How many recent round trips the clock filter chooses among: NTP's clock
/// filter register has 8 stages (RFC 5905, section 10).
pub const FILTER_LEN: usize = 8;

/// How fast two clocks may drift apart, in parts per million: NTP's PHI
/// (15 ppm, RFC 5905 section 7.2). An estimate's bound grows by this much per
/// second of its age, so an old sample with a small network time loses to a
/// fresh one once drift could have eaten its advantage.
pub const DRIFT_PPM: u64 = 15;

/// How far the client's wall clock may disagree with its monotonic clock over
/// one round trip before the round trip is taken for a wall-clock step rather
/// than ordinary slewing or the few microseconds between reading both clocks:
/// 1 ms plus 0.1 % of the round trip.
pub const STEP_TOLERANCE_US: u64 = 1_000;

/// The four timestamps of one round trip, plus its monotonic duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamps {
    /// t1: client's wall clock just before it wrote the message.
    pub t1: i64,
    /// t2: server's wall clock when it read the message.
    pub t2: i64,
    /// t3: server's wall clock just before it wrote the reply.
    pub t3: i64,
    /// t4: client's wall clock when it read the reply.
    pub t4: i64,
    /// The round trip t1 → t4 on the client's monotonic clock: the only
    /// duration that no clock step or skew can bend.
    pub rtt_us: u64,
}

/// Why a round trip's offset cannot be trusted. Its server and network
/// times are still reported (clamped), but the clock filter ignores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// t3 < t2: the server's clock went backwards while it held the message.
    ServerClockBackwards,
    /// t3 − t2 > the round trip: the server claims to have held the message
    /// longer than the whole round trip took, so its clock stepped forward or
    /// runs fast. Network time is shown as 0, and the sample's bound (0) would
    /// win every filter, so it must not enter one.
    ServerLongerThanRtt,
    /// t4 − t1 on the wall clock and the monotonic round trip differ by more
    /// than [`STEP_TOLERANCE_US`] (+0.1 %): the client's clock stepped.
    ClientClockStepped,
}

/// What one round trip says about where its time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The monotonic round trip.
    pub rtt_us: u64,
    /// t3 − t2, clamped to `0..=rtt_us`.
    pub server_us: u64,
    /// `rtt_us − server_us`: both directions on the wire plus both kernels.
    pub network_us: u64,
    /// θ = ((t2 − t1) + (t3 − t4)) / 2, rounded towards −∞.
    pub offset_us: i64,
    /// ⌈network / 2⌉: θ is exact only if both directions took equally long;
    /// at the extremes one took all of the network time and the other none.
    pub bound_us: u64,
    /// Set when the stamps contradict the monotonic round trip.
    pub flaw: Option<Flaw>,
}

impl Sample {
    /// Works out one round trip. Network time uses the monotonic round trip
    /// and the server's own difference t3 − t2 (one clock each), so neither
    /// depends on how far apart the two clocks are; only θ mixes them.
    pub fn from_stamps(s: Stamps) -> Sample {
        let held = s.t3.saturating_sub(s.t2);
        let (server_us, mut flaw) = if held < 0 {
            (0, Some(Flaw::ServerClockBackwards))
        } else if held.unsigned_abs() > s.rtt_us {
            (s.rtt_us, Some(Flaw::ServerLongerThanRtt))
        } else {
            (held.unsigned_abs(), None)
        };
        let network_us = s.rtt_us - server_us;
        let wall_rtt = s.t4.saturating_sub(s.t1);
        let tolerance = STEP_TOLERANCE_US.saturating_add(s.rtt_us / 1000);
        let disagreement = i128::from(wall_rtt) - i128::from(s.rtt_us);
        if flaw.is_none() && disagreement.unsigned_abs() > u128::from(tolerance) {
            flaw = Some(Flaw::ClientClockStepped);
        }
        let sum = i128::from(s.t2) - i128::from(s.t1) + i128::from(s.t3) - i128::from(s.t4);
        Sample {
            rtt_us: s.rtt_us,
            server_us,
            network_us,
            offset_us: clamp_i64(sum.div_euclid(2)),
            bound_us: network_us.div_ceil(2),
            flaw,
        }
    }
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// A clock-offset estimate: the true offset lies within `offset_us ±
/// bound_us` as long as no direction of the chosen round trip was faster than
/// zero and the clocks drifted apart by no more than [`DRIFT_PPM`] since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offset {
    /// θ, server minus client, in µs.
    pub offset_us: i64,
    /// Half the chosen round trip's network time plus the drift since.
    pub bound_us: u64,
}

impl Offset {
    /// Converts a time on this client's clock to the server's clock.
    pub fn to_server(self, local_us: i64) -> i64 {
        local_us.saturating_add(self.offset_us)
    }
}

/// NTP's clock filter (RFC 5905 section 10), simplified: it remembers the
/// last [`FILTER_LEN`] trustworthy round trips and estimates the offset from
/// the one with the smallest network time, after adding to each the drift its
/// age allows. Queueing only ever adds delay and asymmetry, so the fastest
/// round trip is the one whose two directions can differ least: one slow
/// message does not move the estimate.
#[derive(Debug, Clone, Default)]
pub struct ClockFilter {
    /// Recent trustworthy samples with the monotonic moment each was
    /// taken (its reply's arrival), oldest first.
    samples: VecDeque<(Instant, Sample)>,
}

impl ClockFilter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a round trip completed at `at` (monotonic). A flawed sample is
    /// refused (returns false): its offset or its bound is not to be believed.
    pub fn add(&mut self, at: Instant, sample: Sample) -> bool {
        if sample.flaw.is_some() {
            return false;
        }
        if self.samples.len() == FILTER_LEN {
            self.samples.pop_front();
        }
        self.samples.push_back((at, sample));
        true
    }

    /// The best estimate as of `now`, or `None` before the first sample. Of
    /// two equally good samples the newer wins.
    pub fn estimate(&self, now: Instant) -> Option<Offset> {
        self.samples
            .iter()
            .map(|(at, s)| Offset {
                offset_us: s.offset_us,
                bound_us: s.bound_us.saturating_add(drift_us(*at, now)),
            })
            .rev()
            .min_by_key(|o| o.bound_us)
    }

    /// Samples held (at most [`FILTER_LEN`]).
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Forgets every sample: for a new server, whose clock is another clock.
    pub fn clear(&mut self) {
        self.samples.clear();
    }
}

/// How far two clocks may have drifted apart between `at` and `now`, in µs
/// (rounded up): [`DRIFT_PPM`] µs per second.
fn drift_us(at: Instant, now: Instant) -> u64 {
    let age_us = u64::try_from(now.saturating_duration_since(at).as_micros()).unwrap_or(u64::MAX);
    age_us.saturating_mul(DRIFT_PPM).div_ceil(1_000_000)
}

/// The one-way delay of a message, with its error bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneWay {
    /// Delay in µs; can come out slightly negative when the true delay is
    /// smaller than the bound.
    pub delay_us: i64,
    /// The true delay lies within `delay_us ± bound_us`.
    pub bound_us: u64,
}

/// What a receiver can say about a relayed message's trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTiming {
    /// From the sender's send to our read: [`relay_delay`].
    OneWay(OneWay),
    /// Only from the server's read to ours ([`since_server_read`]): the
    /// sender sent no stamps (an older client, or none of its own round trips
    /// had come back yet).
    SinceServer(OneWay),
}

/// The one-way delay of a chat message from sender S to receiver R: both ends
/// are converted to the server's clock with their own offset estimates, so
/// the result holds however far apart S's and R's clocks are:
/// `(R's receive time + θ_R) − (S's send time + θ_S)`, bound `bound_S + bound_R`.
pub fn relay_delay(sent_us: i64, sender: Offset, received_us: i64, receiver: Offset) -> OneWay {
    OneWay {
        delay_us: receiver
            .to_server(received_us)
            .saturating_sub(sender.to_server(sent_us)),
        bound_us: sender.bound_us.saturating_add(receiver.bound_us),
    }
}

/// The part of a relayed message's trip after the server read it, for when
/// the sender gave no send time or offset (an older client, or one without a
/// round trip yet): `(R's receive time + θ_R) − server read time`, bound
/// `bound_R`.
pub fn since_server_read(server_read_us: i64, received_us: i64, receiver: Offset) -> OneWay {
    OneWay {
        delay_us: receiver
            .to_server(received_us)
            .saturating_sub(server_read_us),
        bound_us: receiver.bound_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A round trip by a client whose clock reads `skew` µs more than the
    /// server's, leaving at server time `at`: `up` µs to the server, `held` µs
    /// there, `down` µs back.
    fn trip(skew: i64, at: i64, up: u64, held: u64, down: u64) -> Stamps {
        let (up, held, down) = (up as i64, held as i64, down as i64);
        Stamps {
            t1: at + skew,
            t2: at + up,
            t3: at + up + held,
            t4: at + up + held + down + skew,
            rtt_us: (up + held + down) as u64,
        }
    }

    #[test]
    fn symmetric_trip_gives_the_exact_offset() {
        // Client 2 s ahead; 100 µs each way, 30 µs in the server.
        let s = Sample::from_stamps(trip(2_000_000, 1_000_000_000, 100, 30, 100));
        assert_eq!(
            s,
            Sample {
                rtt_us: 230,
                server_us: 30,
                network_us: 200,
                offset_us: -2_000_000,
                bound_us: 100,
                flaw: None,
            }
        );
    }

    #[test]
    fn asymmetric_trip_stays_within_its_bound() {
        // Client 3 s behind; 300 µs up, 20 µs held, 100 µs down.
        // θ = ((t2 − t1) + (t3 − t4)) / 2
        //   = ((300 + 3e6) + (−100 + 3e6)) / 2 = 3_000_100; true θ = 3e6.
        let s = Sample::from_stamps(trip(-3_000_000, 5_000_000, 300, 20, 100));
        assert_eq!(s.server_us, 20);
        assert_eq!(s.network_us, 400);
        assert_eq!(s.offset_us, 3_000_100);
        assert_eq!(s.bound_us, 200);
        assert!((s.offset_us - 3_000_000).unsigned_abs() <= s.bound_us);
        // The worst case: everything one way. The error is exactly the bound.
        let s = Sample::from_stamps(trip(0, 0, 401, 0, 0));
        assert_eq!((s.offset_us, s.bound_us), (200, 201));
    }

    #[test]
    fn hand_computed_stamps() {
        // t1 = 10.000000 s, t2 = 12.000150, t3 = 12.000180, t4 = 10.000290
        // (client clock), monotonic rtt 290 µs.
        let s = Sample::from_stamps(Stamps {
            t1: 10_000_000,
            t2: 12_000_150,
            t3: 12_000_180,
            t4: 10_000_290,
            rtt_us: 290,
        });
        // server = 30, net = 260, θ = (2_000_150 + 1_999_890) / 2 = 2_000_020.
        assert_eq!(
            (s.server_us, s.network_us, s.offset_us, s.bound_us),
            (30, 260, 2_000_020, 130)
        );
        // An odd network time rounds the bound up, an odd sum the offset down.
        let s = Sample::from_stamps(Stamps {
            t1: 0,
            t2: 50,
            t3: 50,
            t4: 101,
            rtt_us: 101,
        });
        assert_eq!((s.network_us, s.bound_us, s.offset_us), (101, 51, -1));
    }

    #[test]
    fn server_time_longer_than_the_round_trip_is_flagged_and_clamped() {
        let s = Sample::from_stamps(Stamps {
            t1: 0,
            t2: 100,
            t3: 900,
            t4: 500,
            rtt_us: 500,
        });
        assert_eq!(s.server_us, 500);
        assert_eq!(s.network_us, 0);
        assert_eq!(s.flaw, Some(Flaw::ServerLongerThanRtt));
        let s = Sample::from_stamps(Stamps {
            t1: 0,
            t2: 100,
            t3: 40,
            t4: 500,
            rtt_us: 500,
        });
        assert_eq!((s.server_us, s.network_us), (0, 500));
        assert_eq!(s.flaw, Some(Flaw::ServerClockBackwards));
        let mut f = ClockFilter::new();
        assert!(!f.add(Instant::now(), s));
        assert!(f.is_empty());
    }

    #[test]
    fn client_clock_step_is_flagged() {
        // The wall clock says 2.5 s passed; the monotonic clock 300 µs.
        let mut st = trip(0, 0, 100, 100, 100);
        st.t4 += 2_500_000;
        assert_eq!(Sample::from_stamps(st).flaw, Some(Flaw::ClientClockStepped));
        // A few hundred µs between reading the two clocks is not a step.
        let mut st = trip(0, 0, 100, 100, 100);
        st.t4 += 400;
        assert_eq!(Sample::from_stamps(st).flaw, None);
    }

    #[test]
    fn hostile_stamps_do_not_panic() {
        for (t2, t3) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (0, i64::MAX)] {
            let s = Sample::from_stamps(Stamps {
                t1: i64::MAX,
                t2,
                t3,
                t4: i64::MIN,
                rtt_us: u64::MAX,
            });
            assert!(s.server_us <= s.rtt_us);
        }
        let o = Offset {
            offset_us: i64::MAX,
            bound_us: u64::MAX,
        };
        let d = relay_delay(i64::MIN, o, i64::MAX, o);
        assert_eq!(d.bound_us, u64::MAX);
    }

    #[test]
    fn filter_keeps_the_smallest_network_time_of_the_last_eight() {
        let t0 = Instant::now();
        let mut f = ClockFilter::new();
        assert_eq!(f.estimate(t0), None);
        // A fast round trip, then a slow asymmetric one: the slow one's
        // offset is 4.9 ms off, but the estimate stays with the fast one.
        f.add(t0, Sample::from_stamps(trip(2_000_000, 0, 50, 10, 50)));
        f.add(t0, Sample::from_stamps(trip(2_000_000, 0, 9_900, 10, 100)));
        assert_eq!(
            f.estimate(t0),
            Some(Offset {
                offset_us: -2_000_000,
                bound_us: 50
            })
        );
        // Seven more slow ones push the fast one out of the window.
        for _ in 0..7 {
            f.add(t0, Sample::from_stamps(trip(2_000_000, 0, 900, 10, 100)));
        }
        assert_eq!(f.len(), FILTER_LEN);
        assert_eq!(
            f.estimate(t0),
            Some(Offset {
                offset_us: -2_000_000 + 400,
                bound_us: 500
            })
        );
        f.clear();
        assert_eq!(f.estimate(t0), None);
    }

    #[test]
    fn bounds_age_at_fifteen_ppm() {
        let t0 = Instant::now();
        let mut f = ClockFilter::new();
        f.add(t0, Sample::from_stamps(trip(0, 0, 50, 0, 50)));
        let later = t0 + Duration::from_secs(10);
        // 10 s × 15 ppm = 150 µs of possible drift on top of the 50 µs.
        assert_eq!(f.estimate(later).map(|o| o.bound_us), Some(200));
        // A fresh sample with a bigger network time (bound 120) now wins.
        f.add(later, Sample::from_stamps(trip(7, 0, 120, 0, 120)));
        assert_eq!(
            f.estimate(later),
            Some(Offset {
                offset_us: -7,
                bound_us: 120
            })
        );
    }

    #[test]
    fn relay_delay_is_right_when_both_clocks_are_off() {
        // Server time 1_000_000_000 µs. S's clock is 2 s ahead, R's 3 s
        // behind. S sends at server time T; it takes 150 µs to the server,
        // 20 µs there and 230 µs to R: 400 µs in all.
        let (skew_s, skew_r) = (2_000_000i64, -3_000_000i64);
        let t = 1_000_000_000i64;
        let sent_on_s = t + skew_s;
        let received_on_r = t + 400 + skew_r;
        // Each client's estimate from its own round trip, asymmetric enough
        // that neither is exact: S's is 20 µs off (bound 60), R's 10 µs
        // (bound 30).
        let s = Sample::from_stamps(trip(skew_s, 0, 80, 5, 40));
        let r = Sample::from_stamps(trip(skew_r, 0, 40, 5, 20));
        assert_eq!((s.offset_us, s.bound_us), (-skew_s + 20, 60));
        assert_eq!((r.offset_us, r.bound_us), (-skew_r + 10, 30));
        let os = Offset {
            offset_us: s.offset_us,
            bound_us: s.bound_us,
        };
        let or = Offset {
            offset_us: r.offset_us,
            bound_us: r.bound_us,
        };
        let d = relay_delay(sent_on_s, os, received_on_r, or);
        // (t + 400 − 3e6 + 3e6 + 10) − (t + 2e6 − 2e6 + 20) = 390.
        assert_eq!(
            d,
            OneWay {
                delay_us: 390,
                bound_us: 90
            }
        );
        assert!((d.delay_us - 400).unsigned_abs() <= d.bound_us);
        // Naively subtracting the raw clocks would say −4.9996 s.
        assert_eq!(received_on_r - sent_on_s, -4_999_600);
        // The part after the server read it (at t + 150): 250 µs −> 260.
        let d = since_server_read(t + 150, received_on_r, or);
        assert_eq!(
            d,
            OneWay {
                delay_us: 260,
                bound_us: 30
            }
        );
    }
}
