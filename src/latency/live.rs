//! Live round-trip statistics over sliding time windows (10 s, 1 min, 5 min,
//! all): count, lost and loss, min, mean, standard deviation, percentiles,
//! max and jitter, for the chat client's probes and messages.
//!
//! Nothing is re-sorted when the figures are read. Samples go into one bucket
//! per second (its sums, extremes and raw values); each finite window keeps an
//! HDR histogram that samples enter when they arrive and leave (subtracted,
//! a second's bucket at a time) when their second falls out of the window.
//! The figures of a window are the sums of at most 300 buckets and three
//! quantile look-ups. Time is passed in, so tests drive it.
//!
//! Definitions (the README repeats them):
//! - loss: lost / (answered + lost), by the time the answer or the timeout
//!   was seen.
//! - stddev: the population standard deviation of the answered round trips.
//! - pNN: nearest rank, the smallest round trip that NN % of the answered
//!   ones do not exceed (HDR histogram, 3 significant figures).
//! - jitter: the mean of |D|, D being the difference between a round trip and
//!   the one answered before it (which may lie just before the window; lost
//!   probes are skipped). The first round trip of a series has no D.
//! - RFC 3550 jitter: J += (|D| − J) / 16 for every D since the series began
//!   (or was reset); the current J, not a window's.
//!
//! Knows nothing of probes, sockets or drawing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// HDR precision: round trips under 2.048 ms are exact to the microsecond,
/// larger ones within 0.1 %.
const SIGFIG: u8 = 3;
/// RFC 3550's gain for the smoothed jitter (section 6.4.1).
const RFC3550_GAIN: f64 = 16.0;

/// The time windows figures are computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// The last 10 seconds.
    Secs10,
    /// The last minute (the default: long enough to be stable, short
    /// enough to show a change).
    #[default]
    Min1,
    /// The last 5 minutes.
    Min5,
    /// Everything since the start or the last reset.
    All,
}

impl Window {
    /// The finite windows, shortest first, in the order `w` cycles through.
    const FINITE: [Window; 3] = [Window::Secs10, Window::Min1, Window::Min5];

    /// Its length in seconds; `None` for [`Window::All`].
    pub fn secs(self) -> Option<u64> {
        match self {
            Window::Secs10 => Some(10),
            Window::Min1 => Some(60),
            Window::Min5 => Some(300),
            Window::All => None,
        }
    }

    /// How the panel names it.
    pub fn label(self) -> &'static str {
        match self {
            Window::Secs10 => "10s",
            Window::Min1 => "1min",
            Window::Min5 => "5min",
            Window::All => "all",
        }
    }

    /// The next window in the `w` key's cycle.
    pub fn next(self) -> Window {
        match self {
            Window::Secs10 => Window::Min1,
            Window::Min1 => Window::Min5,
            Window::Min5 => Window::All,
            Window::All => Window::Secs10,
        }
    }
}

/// The figures of one series over one window. Durations are zero when there
/// is nothing to compute them from (see `count`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    /// Answered round trips.
    pub count: u64,
    /// Round trips that timed out (or were cut off by a lost connection).
    pub lost: u64,
    pub min: Duration,
    pub mean: Duration,
    /// Population standard deviation.
    pub stddev: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Mean absolute difference of consecutive round trips; `None` without
    /// two of them.
    pub jitter: Option<Duration>,
    /// RFC 3550's smoothed jitter, since the series began.
    pub rfc3550: Option<Duration>,
}

impl Figures {
    /// Lost as a percentage of everything that was answered or lost.
    pub fn loss_pct(&self) -> f64 {
        let total = self.count + self.lost;
        if total == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / total as f64
        }
    }
}

/// Sums a set of samples needs for its figures (a second, a window, all).
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    count: u64,
    lost: u64,
    /// Of the round trips in µs, for the mean and the deviation.
    sum: f64,
    sum_sq: f64,
    /// In µs; meaningful only when `count > 0`.
    min: u64,
    max: u64,
    /// Sum and number of the |D| (µs) of the round trips counted here.
    jit_sum: u64,
    jit_n: u64,
}

impl Sums {
    fn add(&mut self, us: u64, d: Option<u64>) {
        if self.count == 0 || us < self.min {
            self.min = us;
        }
        self.max = self.max.max(us);
        self.count += 1;
        self.sum += us as f64;
        self.sum_sq += (us as f64) * (us as f64);
        if let Some(d) = d {
            self.jit_sum += d;
            self.jit_n += 1;
        }
    }

    fn merge(&mut self, o: &Sums) {
        if o.count > 0 {
            if self.count == 0 || o.min < self.min {
                self.min = o.min;
            }
            self.max = self.max.max(o.max);
        }
        self.count += o.count;
        self.lost += o.lost;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
        self.jit_sum += o.jit_sum;
        self.jit_n += o.jit_n;
    }
}

/// One second of samples.
#[derive(Debug)]
struct Second {
    /// Seconds since the series' origin.
    sec: u64,
    sums: Sums,
    /// The answered round trips in µs, to take them out of the windows'
    /// histograms when this second leaves them.
    samples: Vec<u64>,
}

/// A finite window's histogram and the first second it still holds.
#[derive(Debug)]
struct Slide {
    secs: u64,
    hist: Histogram<u64>,
    /// Seconds before this one have been subtracted from `hist`.
    first: u64,
}

fn new_hist() -> Histogram<u64> {
    // Auto-resizing from 1 µs up, so it cannot fail to be made.
    let Ok(h) = Histogram::new(SIGFIG) else {
        unreachable!("3 significant figures are always valid")
    };
    h
}

/// One series of round trips (probes, or chat messages) and its windows.
#[derive(Debug)]
pub struct Series {
    /// Second 0 of the buckets; set by the first sample.
    origin: Option<Instant>,
    /// The last 5 minutes' seconds that had samples, oldest first.
    seconds: VecDeque<Second>,
    /// One per finite window, as [`Window::FINITE`].
    slides: Vec<Slide>,
    /// Everything since the start or the reset.
    all: Sums,
    all_hist: Histogram<u64>,
    /// The last answered round trip (µs), for the next D.
    prev: Option<u64>,
    /// RFC 3550's J in µs, once there was a D.
    rfc3550: Option<f64>,
    /// Reused to subtract a second from a window's histogram.
    scratch: Histogram<u64>,
    /// The newest second samples went to or time was advanced to.
    now_sec: u64,
}

impl Default for Series {
    fn default() -> Series {
        Series::new()
    }
}

impl Series {
    pub fn new() -> Series {
        Series {
            origin: None,
            seconds: VecDeque::new(),
            slides: Window::FINITE
                .iter()
                .filter_map(|w| w.secs())
                .map(|secs| Slide {
                    secs,
                    hist: new_hist(),
                    first: 0,
                })
                .collect(),
            all: Sums::default(),
            all_hist: new_hist(),
            prev: None,
            rfc3550: None,
            scratch: new_hist(),
            now_sec: 0,
        }
    }

    /// Forgets everything, as if new.
    pub fn reset(&mut self) {
        *self = Series::new();
    }

    /// Whether anything was recorded since the start or the reset.
    pub fn is_empty(&self) -> bool {
        self.all.count == 0 && self.all.lost == 0
    }

    fn sec_of(&mut self, at: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(at);
        // A sample stamped before the newest second joins the newest
        // second, which keeps the buckets in order.
        at.saturating_duration_since(origin)
            .as_secs()
            .max(self.now_sec)
    }

    /// The bucket of second `sec` (the newest, or a new one).
    fn bucket(&mut self, sec: u64) -> &mut Second {
        if self.seconds.back().is_none_or(|s| s.sec != sec) {
            self.seconds.push_back(Second {
                sec,
                sums: Sums::default(),
                samples: Vec::new(),
            });
        }
        let Some(b) = self.seconds.back_mut() else {
            unreachable!("pushed above")
        };
        b
    }

    /// An answered round trip, seen at `at`.
    pub fn record(&mut self, at: Instant, rtt: Duration) {
        let sec = self.sec_of(at);
        self.advance_to(sec);
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        let d = self.prev.map(|p| p.abs_diff(us));
        if let Some(d) = d {
            let j = self.rfc3550.unwrap_or(0.0);
            self.rfc3550 = Some(j + (d as f64 - j) / RFC3550_GAIN);
        }
        self.prev = Some(us);
        let b = self.bucket(sec);
        b.sums.add(us, d);
        b.samples.push(us);
        self.all.add(us, d);
        rec(&mut self.all_hist, us);
        for s in &mut self.slides {
            rec(&mut s.hist, us);
        }
    }

    /// A round trip that got no answer in time, seen at `at`.
    pub fn record_lost(&mut self, at: Instant) {
        let sec = self.sec_of(at);
        self.advance_to(sec);
        self.bucket(sec).sums.lost += 1;
        self.all.lost += 1;
    }

    /// Moves time on: seconds that left a window leave its histogram.
    fn advance_to(&mut self, sec: u64) {
        self.now_sec = self.now_sec.max(sec);
        let now = self.now_sec;
        for slide in &mut self.slides {
            let first = (now + 1).saturating_sub(slide.secs);
            if first <= slide.first {
                continue;
            }
            self.scratch.reset();
            let mut any = false;
            for b in &self.seconds {
                if b.sec >= first {
                    break;
                }
                if b.sec >= slide.first {
                    for &v in &b.samples {
                        rec(&mut self.scratch, v);
                        any = true;
                    }
                }
            }
            if any && slide.hist.subtract(&self.scratch).is_err() {
                // Cannot happen for values it holds; rebuild to be safe.
                slide.hist.reset();
                for b in self.seconds.iter().filter(|b| b.sec >= first) {
                    for &v in &b.samples {
                        rec(&mut slide.hist, v);
                    }
                }
            }
            slide.first = first;
        }
        let keep_from = self.slides.iter().map(|s| s.first).min().unwrap_or(now);
        while self.seconds.front().is_some_and(|b| b.sec < keep_from) {
            self.seconds.pop_front();
        }
    }

    /// Moves time on to `now` without a sample (the windows slide).
    pub fn advance(&mut self, now: Instant) {
        if self.origin.is_some() {
            let sec = self.sec_of(now);
            self.advance_to(sec);
        }
    }

    /// The window's sums and histogram, time moved on to `now`.
    fn window(&mut self, w: Window, now: Instant) -> (Sums, &Histogram<u64>) {
        self.advance(now);
        let Some(i) = Window::FINITE.iter().position(|f| *f == w) else {
            return (self.all, &self.all_hist);
        };
        let first = self.slides[i].first;
        let mut sums = Sums::default();
        for b in self.seconds.iter().filter(|b| b.sec >= first) {
            sums.merge(&b.sums);
        }
        (sums, &self.slides[i].hist)
    }

    /// The figures over window `w` as of `now`.
    pub fn figures(&mut self, w: Window, now: Instant) -> Figures {
        let rfc3550 = self.rfc3550.map(us_f);
        let (s, h) = self.window(w, now);
        let mut f = Figures {
            count: s.count,
            lost: s.lost,
            jitter: (s.jit_n > 0).then(|| us_f(s.jit_sum as f64 / s.jit_n as f64)),
            rfc3550,
            ..Figures::default()
        };
        if s.count == 0 {
            return f;
        }
        let n = s.count as f64;
        let mean = s.sum / n;
        let var = (s.sum_sq / n - mean * mean).max(0.0);
        // The histogram holds values to 0.1 %; the extremes are exact, and
        // no percentile may lie outside them.
        let q = |p: f64| {
            let v = h.lowest_equivalent(h.value_at_quantile(p));
            Duration::from_micros(v.clamp(s.min, s.max))
        };
        f.min = Duration::from_micros(s.min);
        f.max = Duration::from_micros(s.max);
        f.mean = us_f(mean);
        f.stddev = us_f(var.sqrt());
        f.p50 = q(0.50);
        f.p90 = q(0.90);
        f.p99 = q(0.99);
        f
    }

    /// The window's answered round trips in `bins` equal bins from its min
    /// to its max: `(low, high, count)` each, for the histogram view.
    pub fn bins(&mut self, w: Window, now: Instant, bins: usize) -> Vec<(Duration, Duration, u64)> {
        let (s, h) = self.window(w, now);
        if s.count == 0 || bins == 0 {
            return Vec::new();
        }
        let (lo, hi) = (s.min, s.max);
        let width = ((hi - lo) / bins as u64).max(1);
        let n = (((hi - lo) / width) as usize + 1).min(bins);
        let mut out: Vec<(Duration, Duration, u64)> = (0..n as u64)
            .map(|i| {
                let a = lo + i * width;
                let b = if i + 1 == n as u64 { hi } else { a + width - 1 };
                (Duration::from_micros(a), Duration::from_micros(b), 0)
            })
            .collect();
        for v in h.iter_recorded() {
            let value = h.lowest_equivalent(v.value_iterated_to()).clamp(lo, hi);
            let i = (((value - lo) / width) as usize).min(n - 1);
            out[i].2 += v.count_at_value();
        }
        out
    }
}

/// Records `v`, growing the histogram as needed (`saturating_record` would
/// clamp to the current top instead of growing it).
fn rec(h: &mut Histogram<u64>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

fn us_f(us: f64) -> Duration {
    Duration::from_secs_f64(us.max(0.0) / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn at(t0: Instant, secs_f: f64) -> Instant {
        t0 + Duration::from_secs_f64(secs_f)
    }

    #[test]
    fn figures_of_a_hand_computed_series() {
        // 1, 2, 3, 4, 10 ms, one a second, and one lost.
        let t0 = Instant::now();
        let mut s = Series::new();
        for (i, v) in [1, 2, 3, 4, 10].into_iter().enumerate() {
            s.record(at(t0, i as f64), ms(v));
        }
        s.record_lost(at(t0, 5.0));
        let f = s.figures(Window::Secs10, at(t0, 5.5));
        assert_eq!((f.count, f.lost), (5, 1));
        assert!((f.loss_pct() - 100.0 / 6.0).abs() < 1e-9);
        assert_eq!((f.min, f.max), (ms(1), ms(10)));
        assert_eq!(f.mean, ms(4));
        // Deviations -3 -2 -1 0 6: squares sum 50, / 5 = 10.
        assert_eq!(f.stddev.as_micros(), 3162);
        // Nearest rank: ceil(0.5*5)=3rd, ceil(0.9*5)=5th, ceil(0.99*5)=5th.
        assert_eq!((f.p50, f.p90, f.p99), (ms(3), ms(10), ms(10)));
        // |D|: 1, 1, 1, 6 → mean 2.25 ms.
        assert_eq!(f.jitter, Some(Duration::from_micros(2250)));
        // J: 1/16, then +(1-J)/16 twice, then +(6-J)/16.
        let mut j = 0.0f64;
        for d in [1.0, 1.0, 1.0, 6.0] {
            j += (d - j) / 16.0;
        }
        let got = f.rfc3550.expect("J").as_secs_f64() * 1000.0;
        assert!((got - j).abs() < 1e-6, "{got} vs {j}");
        assert_eq!(f, s.figures(Window::All, at(t0, 5.5)));
    }

    #[test]
    fn percentile_is_nearest_rank() {
        // Ported from the TUI's old sorted-sample figures: same cases.
        let t0 = Instant::now();
        let mut s = Series::new();
        for v in 1..=10 {
            s.record(t0, ms(v));
        }
        let f = s.figures(Window::All, t0);
        assert_eq!((f.p50, f.p90, f.p99), (ms(5), ms(9), ms(10)));
        let mut one = Series::new();
        one.record(t0, ms(1));
        assert_eq!(one.figures(Window::All, t0).p50, ms(1));
        assert_eq!(Series::new().figures(Window::All, t0).p50, Duration::ZERO);
    }

    #[test]
    fn rfc3550_jitter_of_two_samples_is_a_sixteenth() {
        let t0 = Instant::now();
        let mut s = Series::new();
        s.record(t0, ms(10));
        assert_eq!(s.figures(Window::All, t0).jitter, None);
        assert_eq!(s.figures(Window::All, t0).rfc3550, None);
        s.record(t0, ms(20));
        let f = s.figures(Window::All, t0);
        assert_eq!(f.jitter, Some(ms(10)));
        assert_eq!(f.rfc3550, Some(Duration::from_micros(625)));
    }

    #[test]
    fn jitter_is_not_computed_on_sorted_values() {
        // 1, 9, 1, 9: sorted it would be 0, 8, 0 (mean 2.67); in time order
        // every step is 8.
        let t0 = Instant::now();
        let mut s = Series::new();
        for v in [1, 9, 1, 9] {
            s.record(t0, ms(v));
        }
        assert_eq!(s.figures(Window::All, t0).jitter, Some(ms(8)));
    }

    #[test]
    fn lost_probes_do_not_break_the_jitter_chain() {
        let t0 = Instant::now();
        let mut s = Series::new();
        s.record(t0, ms(5));
        s.record_lost(t0);
        s.record(t0, ms(7));
        let f = s.figures(Window::All, t0);
        assert_eq!(f.jitter, Some(ms(2)));
        assert_eq!((f.count, f.lost), (2, 1));
    }

    #[test]
    fn windows_slide_and_all_keeps_everything() {
        let t0 = Instant::now();
        let mut s = Series::new();
        // 100 ms at second 0, then 1 ms every second from 1 to 59.
        s.record(t0, ms(100));
        for i in 1..60 {
            s.record(at(t0, i as f64), ms(1));
            if i == 30 {
                s.record_lost(at(t0, 30.0));
            }
        }
        let now = at(t0, 59.5);
        let f10 = s.figures(Window::Secs10, now);
        assert_eq!((f10.count, f10.lost), (10, 0));
        assert_eq!((f10.max, f10.p99), (ms(1), ms(1)));
        let f1 = s.figures(Window::Min1, now);
        assert_eq!((f1.count, f1.lost, f1.max), (60, 1, ms(100)));
        // A minute later nothing is left of the 10 s and 1 min windows.
        let later = at(t0, 125.0);
        let f10 = s.figures(Window::Secs10, later);
        assert_eq!((f10.count, f10.lost), (0, 0));
        assert_eq!(f10.p50, Duration::ZERO);
        assert_eq!(s.figures(Window::Min1, later).count, 0);
        let f5 = s.figures(Window::Min5, later);
        assert_eq!((f5.count, f5.lost, f5.max), (60, 1, ms(100)));
        // New samples after the gap are seen alone by the short window.
        s.record(later, ms(4));
        let f10 = s.figures(Window::Secs10, later);
        assert_eq!(
            (f10.count, f10.min, f10.p50, f10.max),
            (1, ms(4), ms(4), ms(4))
        );
        let all = s.figures(Window::All, later);
        assert_eq!(
            (all.count, all.lost, all.max, all.min),
            (61, 1, ms(100), ms(1))
        );
        // Past five minutes only the "all" window remembers.
        let much_later = at(t0, 1000.0);
        assert_eq!(s.figures(Window::Min5, much_later).count, 0);
        assert_eq!(s.figures(Window::All, much_later).count, 61);
        assert!(s.seconds.is_empty(), "old seconds are dropped");
    }

    #[test]
    fn percentiles_follow_the_window_after_subtraction() {
        let t0 = Instant::now();
        let mut s = Series::new();
        // 10 slow ones first, then 10 fast ones 20 s later (16 ms is exact
        // in the histogram; larger values are within 0.1 %).
        for _ in 0..10 {
            s.record(t0, ms(16));
        }
        for _ in 0..10 {
            s.record(at(t0, 20.0), ms(2));
        }
        let f = s.figures(Window::Secs10, at(t0, 20.0));
        assert_eq!((f.count, f.p50, f.p99), (10, ms(2), ms(2)));
        let f = s.figures(Window::Min1, at(t0, 20.0));
        assert_eq!((f.count, f.p50, f.p90), (20, ms(2), ms(16)));
    }

    #[test]
    fn reset_forgets_everything() {
        let t0 = Instant::now();
        let mut s = Series::new();
        s.record(t0, ms(3));
        s.record_lost(t0);
        assert!(!s.is_empty());
        s.reset();
        assert!(s.is_empty());
        assert_eq!(s.figures(Window::All, t0), Figures::default());
    }

    #[test]
    fn bins_split_min_to_max() {
        let t0 = Instant::now();
        let mut s = Series::new();
        for v in [1, 1, 2, 5, 10] {
            s.record(t0, ms(v));
        }
        let b = s.bins(Window::All, t0, 3);
        assert_eq!(b.len(), 3);
        assert_eq!(b.iter().map(|x| x.2).sum::<u64>(), 5);
        assert_eq!(b[0].0, ms(1));
        assert_eq!(b[2].1, ms(10));
        // 1,1,2 in the first third (1..4 ms), 5 in the second, 10 in the last.
        assert_eq!(b.iter().map(|x| x.2).collect::<Vec<_>>(), vec![3, 1, 1]);
        assert!(Series::new().bins(Window::All, t0, 3).is_empty());
    }

    #[test]
    fn windows_cycle() {
        let mut w = Window::default();
        assert_eq!(w, Window::Min1);
        let mut seen = vec![];
        for _ in 0..4 {
            seen.push(w.label());
            w = w.next();
        }
        assert_eq!(seen, vec!["1min", "5min", "all", "10s"]);
        assert_eq!(w, Window::Min1);
    }
}
