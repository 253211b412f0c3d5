//! What each client task measures, kept per task so tasks never contend, and
//! merged into one [`Row`] when the row ends. Knows nothing of sockets.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{Mode, Row};
use crate::latency::Latency;
use crate::latency::hist::{self, SIGFIG};

/// Samples a task buffers before folding them into its own histogram: most
/// tasks of a 10,000-client row never need a histogram at all.
const SAMPLE_BATCH: usize = 1024;

/// Latency samples of one task: a small buffer, folded into a histogram of
/// the task's own only when it fills.
#[derive(Default)]
pub(crate) struct Samples {
    /// Microseconds; `u32` holds over an hour and halves the buffer.
    buf: Vec<u32>,
    hist: Option<Histogram<u64>>,
}

impl Samples {
    pub(crate) fn record(&mut self, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        self.buf.push(us);
        if self.buf.len() >= SAMPLE_BATCH {
            self.fold();
        }
    }

    fn fold(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let h = self.hist.get_or_insert_with(|| hist::new_hist(SIGFIG));
        for &v in &self.buf {
            hist::record(h, u64::from(v));
        }
        self.buf.clear();
    }

    fn merge_into(mut self, total: &mut Histogram<u64>) {
        for &v in &self.buf {
            hist::record(total, u64::from(v));
        }
        self.buf.clear();
        if let Some(h) = self.hist.take() {
            // Both auto-resize, so adding cannot run out of range.
            let _ = total.add(&h);
        }
        self.fold();
    }
}

/// What one client task hands back.
#[derive(Default)]
pub(crate) struct ClientResult {
    /// Round trips of measured messages.
    pub(crate) rtt: Samples,
    /// Chat mode: one-way times of other clients' relayed messages.
    pub(crate) relay: Samples,
    /// Chat mode, stamped replies: the server's read to its reply, and the
    /// round trip less that (see [`crate::timing`]).
    pub(crate) server: Samples,
    pub(crate) network: Samples,
    /// Over several servers: the relays between clients of one server.
    pub(crate) relay_same: Samples,
    /// Over several servers: the relays that crossed between servers.
    pub(crate) relay_cross: Samples,
    /// Measured messages answered.
    pub(crate) messages: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// The end of the row's measured time is its latest reply.
    pub(crate) last_reply: Option<Instant>,
}

impl ClientResult {
    /// Counts `n` errors; `what` says what went wrong, and is only made for
    /// the first (a failing row may count millions).
    pub(crate) fn error(&mut self, n: u64, what: impl FnOnce() -> String) {
        self.errors += n;
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }

    /// A task that ended with only an error to say.
    pub(crate) fn failed(what: String) -> ClientResult {
        let mut res = ClientResult::default();
        res.error(1, || what);
        res
    }
}

/// Merges every task's figures into the row of `clients` clients, of which
/// `connected` were served; measured time starts at `measure_from`.
pub(crate) fn assemble_row(
    clients: usize,
    connected: usize,
    mode: Mode,
    by_node: bool,
    measure_from: Instant,
    results: Vec<ClientResult>,
) -> Row {
    let mut rtt = hist::new_hist(SIGFIG);
    let mut relay = hist::new_hist(SIGFIG);
    let mut server = hist::new_hist(SIGFIG);
    let mut network = hist::new_hist(SIGFIG);
    let mut same = hist::new_hist(SIGFIG);
    let mut cross = hist::new_hist(SIGFIG);
    let (mut messages, mut errors) = (0u64, 0u64);
    let mut first_error = None;
    let mut last = measure_from;
    for r in results {
        messages += r.messages;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
        if let Some(t) = r.last_reply {
            last = last.max(t);
        }
        r.rtt.merge_into(&mut rtt);
        r.relay.merge_into(&mut relay);
        r.server.merge_into(&mut server);
        r.network.merge_into(&mut network);
        r.relay_same.merge_into(&mut same);
        r.relay_cross.merge_into(&mut cross);
    }
    // Only where the server stamped its replies (chatmon's, not older ones).
    let stamped = |h: &hdrhistogram::Histogram<u64>| {
        (mode == Mode::Chat && !h.is_empty()).then(|| Latency::from_hist(h))
    };
    let split = mode == Mode::Chat && by_node;
    let elapsed = last.saturating_duration_since(measure_from);
    let secs = elapsed.as_secs_f64();
    Row {
        clients,
        connected,
        messages,
        errors,
        elapsed_secs: secs,
        throughput: if secs > 0.0 {
            messages as f64 / secs
        } else {
            0.0
        },
        latency: Latency::from_hist(&rtt),
        relay: (mode == Mode::Chat).then(|| Latency::from_hist(&relay)),
        server_time: stamped(&server),
        network: stamped(&network),
        relay_same_node: split.then(|| Latency::from_hist(&same)),
        relay_cross_node: split.then(|| Latency::from_hist(&cross)),
        first_error,
        handshakes_per_sec: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_merge_buffer_and_histogram() {
        let mut s = Samples::default();
        for i in 0..(SAMPLE_BATCH as u64 + 10) {
            s.record(Duration::from_micros(i + 1));
        }
        assert!(s.hist.is_some());
        let mut total = hist::new_hist(SIGFIG);
        s.merge_into(&mut total);
        assert_eq!(total.len(), SAMPLE_BATCH as u64 + 10);
        assert_eq!(total.max(), SAMPLE_BATCH as u64 + 10);
    }

    #[test]
    fn a_row_merges_every_task() {
        let t0 = Instant::now();
        let mut a = ClientResult::default();
        a.rtt.record(Duration::from_micros(100));
        a.messages = 1;
        a.last_reply = Some(t0 + Duration::from_secs(2));
        let mut b = ClientResult::failed("first".into());
        b.error(2, || "not kept".into());
        b.rtt.record(Duration::from_micros(300));
        b.relay.record(Duration::from_micros(50));
        b.messages = 1;
        b.last_reply = Some(t0 + Duration::from_secs(1));
        let row = assemble_row(3, 2, Mode::Chat, false, t0, vec![a, b]);
        assert_eq!((row.clients, row.connected), (3, 2));
        assert_eq!((row.messages, row.errors), (2, 3));
        assert_eq!(row.first_error.as_deref(), Some("first"));
        assert_eq!(row.elapsed_secs, 2.0);
        assert_eq!(row.throughput, 1.0);
        assert_eq!((row.latency.count, row.latency.max_us), (2, 300));
        assert_eq!(row.relay.map(|r| r.count), Some(1));
        // Plain rows have no relay figures, and no time without replies.
        let row = assemble_row(1, 1, Mode::Plain, false, t0, vec![ClientResult::default()]);
        assert!(row.relay.is_none());
        assert_eq!(row.throughput, 0.0);
    }
}
