//! The live latency panel's state: the probes' and the messages' round trips
//! (figures by window, points over wall time for the chart), reconnects,
//! the lag for the status bar, and what the user chose to see (window, zoom,
//! freeze, histogram). It knows nothing of keys, drawing or files: the
//! export comes out as text for the run loop to write.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use serde::Serialize;

use crate::client::probe_timeout;
use crate::latency::live::{Figures, Series, Window};

/// Longest time the chart shows (the widest zoom), and how long points are kept.
pub(crate) const MAX_SPAN: Duration = Duration::from_secs(3600);
/// The zoom levels of the chart's time axis, `+` narrows, `-` widens.
pub(crate) const SPANS: [Duration; 7] = [
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(300),
    Duration::from_secs(600),
    Duration::from_secs(1800),
    MAX_SPAN,
];
/// The zoom a session starts with (1 minute, as the default window).
const DEFAULT_SPAN: usize = 1;
/// Most points kept, whatever their age: a busy room cannot grow memory
/// without bound.
pub(crate) const MAX_POINTS: usize = 200_000;
/// Bins of the histogram view.
pub(crate) const HIST_BINS: usize = 12;
/// The lag is "high" above this multiple of the window's probe p50.
const HIGH_LAG_FACTOR: u32 = 2;
/// Message ids remembered as timed out, so that a late reply is not counted
/// as answered after it counted as lost.
const MAX_TIMED_OUT_IDS: usize = 10_000;

/// What a round trip measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A latency probe.
    Probe,
    /// A chat message (its reply).
    Message,
}

/// One round trip or timeout, for the chart and the export.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    /// When the answer (or the timeout) was seen, on the monotonic clock.
    pub(crate) at: Instant,
    /// The same moment on the wall clock, for the axis and the export.
    pub(crate) wall: NaiveDateTime,
    pub(crate) kind: Kind,
    pub(crate) id: u64,
    /// `None`: no answer in time.
    pub(crate) rtt: Option<Duration>,
}

/// The lag the status bar shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lag {
    /// Probes are off, or none was answered or lost yet.
    Unknown,
    /// The latest probe's round trip, within twice the window's p50.
    Normal(Duration),
    /// The latest probe's round trip, above twice the window's p50.
    High(Duration),
    /// The latest probe got no answer in time (how long that is).
    TimedOut(Duration),
}

/// The figures as they were when the user froze the display.
#[derive(Debug, Clone)]
pub(crate) struct Frozen {
    pub(crate) at: Instant,
    pub(crate) wall: NaiveDateTime,
    pub(crate) probes: Figures,
    pub(crate) messages: Figures,
    pub(crate) bins: Vec<(Duration, Duration, u64)>,
}

/// The live panel's state.
#[derive(Debug)]
pub(crate) struct Live {
    /// Probe period, `None` when probes are off.
    probe_every: Option<Duration>,
    probes: Series,
    messages: Series,
    /// The figures of the chosen window, recomputed on samples and ticks
    /// (never per frame).
    probe_figures: Figures,
    message_figures: Figures,
    /// The histogram view's bins (of the probes, or of the messages when
    /// there are no probes), kept fresh only while it is shown.
    bins: Vec<(Duration, Duration, u64)>,
    /// The last [`MAX_SPAN`] of round trips, oldest first.
    points: VecDeque<Point>,
    /// When the connection came back after being lost, oldest first.
    reconnects: VecDeque<Instant>,
    /// The latest probe's outcome.
    last_probe: Option<Option<Duration>>,
    /// Messages that counted as lost at their timeout.
    timed_out: HashSet<u64>,
    window: Window,
    /// Index into [`SPANS`].
    span: usize,
    show_hist: bool,
    frozen: Option<Frozen>,
    /// Samples arrived since the last refresh: a burst of replies costs one
    /// refresh (at the next frame or tick), not one each.
    dirty: bool,
}

impl Live {
    pub(crate) fn new(probe_every: Duration) -> Live {
        Live {
            probe_every: (!probe_every.is_zero()).then_some(probe_every),
            probes: Series::new(),
            messages: Series::new(),
            probe_figures: Figures::default(),
            message_figures: Figures::default(),
            bins: Vec::new(),
            points: VecDeque::new(),
            reconnects: VecDeque::new(),
            last_probe: None,
            timed_out: HashSet::new(),
            window: Window::default(),
            span: DEFAULT_SPAN,
            show_hist: false,
            frozen: None,
            dirty: false,
        }
    }

    pub(crate) fn probes_on(&self) -> bool {
        self.probe_every.is_some()
    }

    pub(crate) fn window(&self) -> Window {
        self.window
    }

    pub(crate) fn span(&self) -> Duration {
        SPANS[self.span]
    }

    pub(crate) fn show_hist(&self) -> bool {
        self.show_hist
    }

    pub(crate) fn frozen(&self) -> Option<&Frozen> {
        self.frozen.as_ref()
    }

    /// The figures to show: frozen ones while frozen.
    pub(crate) fn figures(&self, kind: Kind) -> &Figures {
        match (&self.frozen, kind) {
            (Some(f), Kind::Probe) => &f.probes,
            (Some(f), Kind::Message) => &f.messages,
            (None, Kind::Probe) => &self.probe_figures,
            (None, Kind::Message) => &self.message_figures,
        }
    }

    /// The histogram view's bins, and which series they are of.
    pub(crate) fn bins(&self) -> (&[(Duration, Duration, u64)], Kind) {
        let bins = self.frozen.as_ref().map_or(&self.bins, |f| &f.bins);
        (bins, self.hist_kind())
    }

    fn hist_kind(&self) -> Kind {
        if self.probe_figures.count > 0 || self.message_figures.count == 0 {
            Kind::Probe
        } else {
            Kind::Message
        }
    }

    /// The points of the chart's span ending at `end` (now, or the freeze).
    pub(crate) fn points_until(&self, end: Instant) -> impl Iterator<Item = &Point> {
        let span = self.span();
        self.points
            .iter()
            .filter(move |p| p.at <= end && end.saturating_duration_since(p.at) <= span)
    }

    pub(crate) fn reconnects(&self) -> impl Iterator<Item = &Instant> {
        self.reconnects.iter()
    }

    /// The lag for the status bar, as of `now` (live even while frozen:
    /// the status bar is not part of the frozen panel).
    pub(crate) fn lag(&self) -> Lag {
        let Some(every) = self.probe_every else {
            return Lag::Unknown;
        };
        match self.last_probe {
            None => Lag::Unknown,
            Some(None) => Lag::TimedOut(probe_timeout(every)),
            Some(Some(rtt)) => {
                let p50 = self.probe_figures.p50;
                if self.probe_figures.count > 1 && rtt > p50 * HIGH_LAG_FACTOR {
                    Lag::High(rtt)
                } else {
                    Lag::Normal(rtt)
                }
            }
        }
    }

    fn push(&mut self, kind: Kind, id: u64, rtt: Option<Duration>, now: Instant) {
        self.points.push_back(Point {
            at: now,
            wall: wall_at(now),
            kind,
            id,
            rtt,
        });
        while self.points.len() > MAX_POINTS {
            self.points.pop_front();
        }
    }

    pub(crate) fn probe(&mut self, id: u64, rtt: Duration, now: Instant) {
        self.probes.record(now, rtt);
        self.last_probe = Some(Some(rtt));
        self.push(Kind::Probe, id, Some(rtt), now);
        self.dirty = true;
    }

    pub(crate) fn probe_lost(&mut self, id: u64, now: Instant) {
        self.probes.record_lost(now);
        self.last_probe = Some(None);
        self.push(Kind::Probe, id, None, now);
        self.dirty = true;
    }

    pub(crate) fn reply(&mut self, id: u64, rtt: Duration, now: Instant) {
        // A late reply is drawn, but it already counted as lost.
        if !self.timed_out.remove(&id) {
            self.messages.record(now, rtt);
        }
        self.push(Kind::Message, id, Some(rtt), now);
        self.dirty = true;
    }

    pub(crate) fn message_lost(&mut self, id: u64, now: Instant) {
        if self.timed_out.len() >= MAX_TIMED_OUT_IDS {
            self.timed_out.clear();
        }
        self.timed_out.insert(id);
        self.messages.record_lost(now);
        self.push(Kind::Message, id, None, now);
        self.dirty = true;
    }

    /// The connection came back after being lost.
    pub(crate) fn reconnected(&mut self, now: Instant) {
        self.reconnects.push_back(now);
    }

    /// Refreshes the figures if samples arrived since the last refresh.
    pub(crate) fn sync(&mut self, now: Instant) {
        if self.dirty {
            self.refresh(now);
        }
    }

    /// Recomputes the figures of the window and drops points older than
    /// the widest zoom.
    pub(crate) fn refresh(&mut self, now: Instant) {
        self.dirty = false;
        self.probe_figures = self.probes.figures(self.window, now);
        self.message_figures = self.messages.figures(self.window, now);
        if self.show_hist {
            self.bins = match self.hist_kind() {
                Kind::Probe => self.probes.bins(self.window, now, HIST_BINS),
                Kind::Message => self.messages.bins(self.window, now, HIST_BINS),
            };
        }
        let old = |t: &Instant| now.saturating_duration_since(*t) > MAX_SPAN;
        while self.points.front().is_some_and(|p| old(&p.at)) {
            self.points.pop_front();
        }
        while self.reconnects.front().is_some_and(old) {
            self.reconnects.pop_front();
        }
    }

    /// `Space`: freezes the display, or lets it move again.
    pub(crate) fn toggle_freeze(&mut self, now: Instant) {
        if self.frozen.take().is_none() {
            self.refresh(now);
            self.frozen = Some(Frozen {
                at: now,
                wall: wall_at(now),
                probes: self.probe_figures,
                messages: self.message_figures,
                bins: self.bins.clone(),
            });
        }
    }

    /// `w`: the next window.
    pub(crate) fn next_window(&mut self, now: Instant) {
        self.window = self.window.next();
        self.refresh(now);
        self.refreeze(now);
    }

    /// `h`: the histogram instead of the chart, or back.
    pub(crate) fn toggle_hist(&mut self, now: Instant) {
        self.show_hist = !self.show_hist;
        self.refresh(now);
        self.refreeze(now);
    }

    /// A new window or view while frozen: the series cannot give a past
    /// moment's window, so the display shows it as of now, frozen from here.
    fn refreeze(&mut self, now: Instant) {
        if self.frozen.is_some() {
            self.frozen = None;
            self.toggle_freeze(now);
        }
    }

    /// `+`: a shorter time axis (down to 30 s).
    pub(crate) fn zoom_in(&mut self) {
        self.span = self.span.saturating_sub(1);
    }

    /// `-`: a longer time axis (up to 1 h).
    pub(crate) fn zoom_out(&mut self) {
        self.span = (self.span + 1).min(SPANS.len() - 1);
    }

    /// `/reset`, Ctrl-R: forgets every figure and point; the choices stay.
    pub(crate) fn reset(&mut self, now: Instant) {
        self.probes.reset();
        self.messages.reset();
        self.points.clear();
        self.reconnects.clear();
        self.last_probe = None;
        self.timed_out.clear();
        self.frozen = None;
        self.refresh(now);
    }

    /// `e`: the window's points as JSON Lines (time, kind, id, rtt or
    /// timeout), and how many. "all" gives every point kept (the last hour).
    pub(crate) fn export(&self, now: Instant) -> (String, usize) {
        #[derive(Serialize)]
        struct Row {
            time: String,
            kind: Kind,
            id: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            rtt_ms: Option<f64>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            timeout: bool,
        }
        let end = self.frozen.as_ref().map_or(now, |f| f.at);
        let within = |p: &&Point| {
            p.at <= end
                && self
                    .window
                    .secs()
                    .is_none_or(|s| end.saturating_duration_since(p.at).as_secs() < s)
        };
        let mut out = String::new();
        let mut n = 0;
        for p in self.points.iter().filter(within) {
            let row = Row {
                time: p.wall.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
                kind: p.kind,
                id: p.id,
                rtt_ms: p.rtt.map(|d| d.as_secs_f64() * 1000.0),
                timeout: p.rtt.is_none(),
            };
            // Plain strings and numbers: serializing cannot fail.
            if let Ok(line) = serde_json::to_string(&row) {
                out.push_str(&line);
                out.push('\n');
                n += 1;
            }
        }
        (out, n)
    }
}

/// The local wall-clock time of a monotonic instant (now, or a moment ago),
/// as the log's own clock pairs the two.
pub(crate) fn wall_at(at: Instant) -> NaiveDateTime {
    use crate::eventlog::clock;
    clock::local_unix_nanos(clock::unix_nanos_at(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn lag_states() {
        let t0 = Instant::now();
        let mut l = Live::new(ms(200));
        assert_eq!(l.lag(), Lag::Unknown);
        l.probe(1, ms(1), t0);
        l.probe(2, ms(1), t0);
        assert_eq!(l.lag(), Lag::Normal(ms(1)));
        l.probe(3, ms(5), t0);
        l.sync(t0);
        assert_eq!(l.lag(), Lag::High(ms(5)));
        l.probe_lost(4, t0);
        l.sync(t0);
        assert_eq!(l.lag(), Lag::TimedOut(Duration::from_secs(1)));
        assert_eq!(l.figures(Kind::Probe).lost, 1);
        l.probe(5, ms(1), t0);
        assert_eq!(l.lag(), Lag::Normal(ms(1)));
        assert_eq!(Live::new(Duration::ZERO).lag(), Lag::Unknown);
    }

    #[test]
    fn a_late_message_reply_is_drawn_but_counted_once_as_lost() {
        let t0 = Instant::now();
        let mut l = Live::new(Duration::ZERO);
        l.message_lost(7, t0);
        l.reply(7, Duration::from_secs(6), t0);
        l.reply(8, ms(2), t0);
        l.sync(t0);
        let f = l.figures(Kind::Message);
        assert_eq!((f.count, f.lost, f.max), (1, 1, ms(2)));
        assert_eq!(l.points_until(t0).count(), 3);
    }

    #[test]
    fn a_burst_of_samples_costs_one_refresh() {
        let t0 = Instant::now();
        let mut l = Live::new(ms(200));
        for i in 0..100 {
            l.reply(i, ms(1), t0);
        }
        assert_eq!(l.figures(Kind::Message).count, 0, "not yet refreshed");
        l.sync(t0);
        assert_eq!(l.figures(Kind::Message).count, 100);
    }

    #[test]
    fn freeze_keeps_figures_while_collection_goes_on() {
        let t0 = Instant::now();
        let mut l = Live::new(ms(200));
        l.probe(1, ms(1), t0);
        l.toggle_freeze(t0);
        l.probe(2, ms(9), t0 + ms(100));
        assert_eq!(l.figures(Kind::Probe).count, 1);
        assert_eq!(l.points_until(l.frozen().expect("frozen").at).count(), 1);
        l.toggle_freeze(t0 + ms(200));
        l.sync(t0 + ms(200));
        assert!(l.frozen().is_none());
        assert_eq!(l.figures(Kind::Probe).count, 2);
    }

    #[test]
    fn zoom_is_bounded_and_points_age_out() {
        let t0 = Instant::now();
        let mut l = Live::new(ms(200));
        for _ in 0..10 {
            l.zoom_in();
        }
        assert_eq!(l.span(), Duration::from_secs(30));
        for _ in 0..10 {
            l.zoom_out();
        }
        assert_eq!(l.span(), Duration::from_secs(3600));
        l.probe(1, ms(1), t0);
        l.refresh(t0 + MAX_SPAN + ms(1));
        assert_eq!(l.points.len(), 0);
    }

    #[test]
    fn export_writes_the_windows_points_as_json_lines() {
        let t0 = Instant::now();
        let mut l = Live::new(ms(200));
        l.probe(1, Duration::from_micros(420), t0);
        l.probe_lost(2, t0 + ms(10));
        l.reply(3, ms(2), t0 + ms(20));
        let (text, n) = l.export(t0 + ms(30));
        assert_eq!(n, 3);
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(rows[0]["kind"], "probe");
        assert_eq!(rows[0]["id"], 1);
        assert_eq!(rows[0]["rtt_ms"], 0.42);
        assert!(rows[0].get("timeout").is_none());
        assert_eq!(rows[1]["timeout"], true);
        assert!(rows[1].get("rtt_ms").is_none());
        assert_eq!(rows[2]["kind"], "message");
        assert!(rows[2]["time"].as_str().expect("time").contains('T'));
        // The 10 s window leaves out what is older.
        l.window = Window::Secs10;
        assert_eq!(l.export(t0 + Duration::from_secs(15)).1, 0);
    }

    #[test]
    fn reset_clears_figures_and_points() {
        let t0 = Instant::now();
        let mut l = Live::new(ms(200));
        l.probe(1, ms(1), t0);
        l.reply(2, ms(1), t0);
        l.reconnected(t0);
        l.reset(t0);
        assert_eq!(l.figures(Kind::Probe).count, 0);
        assert_eq!(l.figures(Kind::Message).count, 0);
        assert_eq!(l.points_until(t0).count(), 0);
        assert_eq!(l.reconnects().count(), 0);
        assert_eq!(l.lag(), Lag::Unknown);
    }
}
