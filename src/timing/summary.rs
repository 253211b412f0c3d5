//! Where the time went, over many messages: server time, network time and
//! one-way relay delay percentiles, and each client's clock offset (median
//! and bound), for `chatmon report` (and its JSON). Fed one figure at a time;
//! knows nothing of log lines or how the figures were measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::latency::Latency;

/// Offsets kept per client before every other one is dropped (and then only
/// every second one taken, and so on): the median of an evenly thinned
/// series stays the series' median, in bounded memory.
pub const MAX_OFFSETS: usize = 65_536;

/// The figures gathered so far.
#[derive(Debug)]
pub struct TimingSummary {
    server: Histogram<u64>,
    network: Histogram<u64>,
    relay: Histogram<u64>,
    /// Relay estimates below zero (true delay within their bound of zero):
    /// counted as 0 in the histogram, and said so.
    relay_below_zero: u64,
    offsets: BTreeMap<String, Thinned>,
}

impl Default for TimingSummary {
    fn default() -> Self {
        Self::new()
    }
}

fn hist() -> Histogram<u64> {
    // Auto-resizing, 3 significant digits, as the rest of the report. Valid
    // significant figures never fail; the fallback is only for the signature.
    Histogram::new(3).unwrap_or_else(|_| unreachable!())
}

/// A series of (offset, bound) pairs thinned evenly to at most
/// [`MAX_OFFSETS`].
#[derive(Debug, Default)]
struct Thinned {
    kept: Vec<(i64, u64)>,
    /// Every `stride`-th sample is kept.
    stride: u64,
    /// Samples seen in all.
    seen: u64,
}

impl Thinned {
    fn push(&mut self, v: (i64, u64)) {
        if self.stride == 0 {
            self.stride = 1;
        }
        if self.seen.is_multiple_of(self.stride) {
            if self.kept.len() == MAX_OFFSETS {
                let mut i = 0;
                self.kept.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
            if self.seen.is_multiple_of(self.stride) {
                self.kept.push(v);
            }
        }
        self.seen += 1;
    }
}

/// One client's clock offset to the server, over a log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientOffset {
    pub client: String,
    /// Round trips with an estimate.
    pub count: u64,
    /// Median of the estimates, server minus client, µs.
    pub median_us: i64,
    /// Median of their bounds, µs.
    pub bound_us: u64,
    /// The spread of the estimates: a clock that was stepped or drifts shows
    /// here, not in the median.
    pub min_us: i64,
    pub max_us: i64,
}

/// The figures for the report and its JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimingReport {
    /// Server time (its read to its reply) of each stamped round trip.
    pub server: Latency,
    /// Network time (round trip less server time) of the same round trips.
    pub network: Latency,
    /// One-way delay of relayed messages, sender's send to receiver's read.
    pub relay: Latency,
    pub relay_below_zero: u64,
    pub offsets: Vec<ClientOffset>,
}

impl TimingSummary {
    pub fn new() -> Self {
        TimingSummary {
            server: hist(),
            network: hist(),
            relay: hist(),
            relay_below_zero: 0,
            offsets: BTreeMap::new(),
        }
    }

    /// A stamped round trip: its server and network time, in µs.
    pub fn round_trip(&mut self, server_us: u64, network_us: u64) {
        self.server.saturating_record(server_us);
        self.network.saturating_record(network_us);
    }

    /// A client's offset estimate after one of its round trips.
    pub fn offset(&mut self, client: &str, offset_us: i64, bound_us: u64) {
        if let Some(t) = self.offsets.get_mut(client) {
            t.push((offset_us, bound_us));
        } else {
            let mut t = Thinned::default();
            t.push((offset_us, bound_us));
            self.offsets.insert(client.to_string(), t);
        }
    }

    /// A relayed message's one-way delay estimate.
    pub fn relay(&mut self, delay_us: i64) {
        if delay_us < 0 {
            self.relay_below_zero += 1;
        }
        self.relay.saturating_record(delay_us.max(0).unsigned_abs());
    }

    /// Whether anything was recorded.
    pub fn is_empty(&self) -> bool {
        self.server.is_empty() && self.relay.is_empty() && self.offsets.is_empty()
    }

    pub fn finish(&self) -> TimingReport {
        let offsets = self
            .offsets
            .iter()
            .map(|(client, t)| {
                let mut o: Vec<i64> = t.kept.iter().map(|v| v.0).collect();
                let mut b: Vec<u64> = t.kept.iter().map(|v| v.1).collect();
                o.sort_unstable();
                b.sort_unstable();
                ClientOffset {
                    client: client.clone(),
                    count: t.seen,
                    median_us: median(&o).unwrap_or(0),
                    bound_us: median(&b).unwrap_or(0),
                    min_us: o.first().copied().unwrap_or(0),
                    max_us: o.last().copied().unwrap_or(0),
                }
            })
            .collect();
        TimingReport {
            server: Latency::from_hist(&self.server),
            network: Latency::from_hist(&self.network),
            relay: Latency::from_hist(&self.relay),
            relay_below_zero: self.relay_below_zero,
            offsets,
        }
    }
}

/// The lower median (nearest rank at 0.5) of sorted values.
fn median<T: Copy>(sorted: &[T]) -> Option<T> {
    let n = sorted.len();
    (n > 0).then(|| sorted[n.div_ceil(2) - 1])
}

/// Milliseconds with three decimals and a sign for offsets.
fn ms_signed(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "+" };
    let a = us.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

fn ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// The report's "where the time goes" section, for people.
pub fn render_text(r: &TimingReport) -> String {
    let mut s = String::new();
    if r.server.count == 0 && r.relay.count == 0 && r.offsets.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "where the time goes (ms): server = its read to its reply, network = round trip less server \
         (both on one clock each); one way = sender's send to receiver's read, both clocks corrected \
         to the server's (an estimate within its bound)"
    );
    let _ = writeln!(
        s,
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    let mut row = |name: &str, l: &Latency| {
        if l.count == 0 {
            return;
        }
        let _ = writeln!(
            s,
            "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            l.count,
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us)
        );
    };
    row("server time", &r.server);
    row("network time", &r.network);
    row("one-way relay delay", &r.relay);
    if r.relay_below_zero > 0 {
        let _ = writeln!(
            s,
            "({} one-way estimates came out below zero, within their bound, and count as 0)",
            r.relay_below_zero
        );
    }
    if !r.offsets.is_empty() {
        let _ = writeln!(
            s,
            "clock offset to the server (server minus client, ms): median ± median bound, and the range"
        );
        for o in r.offsets.iter().take(50) {
            let name: String = o.client.chars().take(24).collect();
            let _ = writeln!(
                s,
                "{:<24} {:>12} ± {:<8} {:>9} round trips, {} .. {}",
                name,
                ms_signed(o.median_us),
                ms(o.bound_us),
                o.count,
                ms_signed(o.min_us),
                ms_signed(o.max_us)
            );
        }
        if r.offsets.len() > 50 {
            let _ = writeln!(
                s,
                "... and {} more clients (all in --json)",
                r.offsets.len() - 50
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_and_offsets() {
        let mut t = TimingSummary::new();
        assert!(t.is_empty());
        for i in 1..=100u64 {
            t.round_trip(i, 1000 + i);
        }
        for d in [-20i64, 300, 400, 500] {
            t.relay(d);
        }
        for (o, b) in [(-2_000_010, 40), (-2_000_000, 30), (-1_999_990, 90)] {
            t.offset("alice", o, b);
        }
        t.offset("bob", 5, 20);
        let r = t.finish();
        assert_eq!(r.server.count, 100);
        assert_eq!(r.server.p50_us, 50);
        assert_eq!(r.network.p99_us, 1099);
        assert_eq!(r.relay.count, 4);
        assert_eq!(r.relay.min_us, 0);
        assert_eq!(r.relay_below_zero, 1);
        assert_eq!(
            r.offsets[0],
            ClientOffset {
                client: "alice".into(),
                count: 3,
                median_us: -2_000_000,
                bound_us: 40,
                min_us: -2_000_010,
                max_us: -1_999_990,
            }
        );
        assert_eq!(r.offsets[1].median_us, 5);
        let text = render_text(&r);
        assert!(text.contains("server time"), "{text}");
        assert!(text.contains("one-way relay delay"), "{text}");
        assert!(text.contains("-2000.000 ± 0.040"), "{text}");
        assert!(text.contains("+0.005 ± 0.020"), "{text}");
        assert!(
            text.contains("1 one-way estimates came out below zero"),
            "{text}"
        );
    }

    #[test]
    fn nothing_recorded_renders_nothing() {
        assert_eq!(render_text(&TimingSummary::new().finish()), "");
    }

    #[test]
    fn offsets_are_thinned_evenly() {
        let mut t = Thinned::default();
        for i in 0..(MAX_OFFSETS as i64 * 3) {
            t.push((i, 0));
        }
        assert!(t.kept.len() <= MAX_OFFSETS);
        assert_eq!(t.seen, MAX_OFFSETS as u64 * 3);
        let mut v: Vec<i64> = t.kept.iter().map(|x| x.0).collect();
        v.sort_unstable();
        let m = median(&v).unwrap_or(0);
        let want = MAX_OFFSETS as i64 * 3 / 2;
        assert!((m - want).abs() < 8, "median {m}, want about {want}");
        // Evenly: consecutive kept samples are one stride apart.
        assert!(
            t.kept
                .windows(2)
                .all(|w| w[1].0 - w[0].0 == t.stride as i64)
        );
    }
}
