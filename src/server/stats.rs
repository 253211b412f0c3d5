//! The figures the server keeps about itself: counters, errors by kind, reply
//! times, the periodic `Stats` event, and [`Monitor`], the read-only view that
//! monitoring (the metrics endpoint, tests) holds. Counting is a relaxed
//! atomic increment on the hot path; everything else is read when asked for.
//! The figures every message moves ([`Traffic`]) and relay delays ([`ReplyTimes`]) are
//! split in cache-line shards, one per thread slot, and summed when read.
//! This file knows nothing of Prometheus or HTTP: `metrics` reads it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::eventlog::{EventKind, LogMessage, ServerStats, Shed};
use crate::protocol::{self, ServerMsg};

use super::Shared;

/// Server-wide counters, read by `Stats` events and by monitoring.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    /// Messages, bytes and reply times: moved by every message, from every
    /// session thread, so sharded, all of one thread's on the same lines.
    pub traffic: Traffic,
    pub relayed: AtomicU64,
    pub errors: AtomicU64,
    pub events_dropped: AtomicU64,
    pub slow_disconnects: AtomicU64,
    /// `errors` again, split by kind, for the metrics endpoint.
    pub errors_by_kind: ErrorCounts,
}

/// Shards of [`Traffic`] and of [`ReplyTimes`]: more than the
/// threads that run at once on any machine this serves, so that two of them
/// rarely share one.
const SHARDS: usize = 32;

/// The shard this thread counts in: threads take slots in turn as they first
/// count, so the session threads of one server spread over all shards.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Const-initialised, taken on first use: a lazily initialised
        // thread-local costs a state check and a call on every access.
        static SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    SLOT.try_with(|s| {
        let mut slot = s.get();
        if slot == usize::MAX {
            slot = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(slot);
        }
        slot
    })
    .unwrap_or(0)
}

/// A snapshot of the server's state for monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub clients: usize,
    pub names: Vec<String>,
    pub messages_received: u64,
    pub uptime: Duration,
}

/// Read-only access to a running server's figures, for monitoring. Cheap to
/// clone; every read is an atomic load.
#[derive(Clone)]
pub struct Monitor(pub(super) Arc<Shared>);

impl Monitor {
    pub fn counters(&self) -> &Counters {
        &self.0.counters
    }

    /// Connections being served (plain and chat).
    pub fn active_clients(&self) -> usize {
        self.0.active.load(Ordering::SeqCst)
    }

    /// Chat sessions in the room.
    pub fn chat_clients(&self) -> usize {
        self.0.hub.members_len()
    }

    /// Clients subscribed to the event stream.
    pub fn subscribers(&self) -> usize {
        self.0.hub.subscribers()
    }

    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }
}

/// Why the server counted an error: the `kind` label of `chatmon_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A connection refused because the server was full.
    Refused,
    /// `accept` failed (descriptor exhaustion and the like).
    Accept,
    /// No thread could be started for a client.
    Thread,
    /// A line longer than the limit.
    LineTooLong,
    /// A line that is not UTF-8.
    InvalidUtf8,
    /// A chat line that is not a valid message (bad JSON, bad hello).
    Malformed,
    /// A hello with a protocol version this server does not speak.
    ProtocolVersion,
    /// A hello with an unacceptable name.
    InvalidName,
    /// A missing or wrong token.
    Auth,
    /// A TLS handshake that failed: a plain TCP client on the TLS port,
    /// garbage, a timeout, a client that rejected the certificate.
    Tls,
    /// A connection refused because its address had `max_per_ip` already.
    PerAddress,
    /// A connection closed to make room for a newcomer (it owed its first
    /// line, and the server was full).
    Evicted,
    /// A line not finished within the line timeout of its first byte.
    LineTimeout,
    /// A connection that sent nothing within the line timeout.
    HelloTimeout,
    /// Anything not classified above.
    Other,
}

impl ErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::Refused,
        ErrorKind::Accept,
        ErrorKind::Thread,
        ErrorKind::LineTooLong,
        ErrorKind::InvalidUtf8,
        ErrorKind::Malformed,
        ErrorKind::ProtocolVersion,
        ErrorKind::InvalidName,
        ErrorKind::Auth,
        ErrorKind::Tls,
        ErrorKind::PerAddress,
        ErrorKind::Evicted,
        ErrorKind::LineTimeout,
        ErrorKind::HelloTimeout,
        ErrorKind::Other,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Accept => "accept",
            ErrorKind::Thread => "thread",
            ErrorKind::LineTooLong => "line_too_long",
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::Malformed => "malformed",
            ErrorKind::ProtocolVersion => "protocol_version",
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::Auth => "auth",
            ErrorKind::Tls => "tls",
            ErrorKind::PerAddress => "per_address",
            ErrorKind::Evicted => "evicted",
            ErrorKind::LineTimeout => "line_timeout",
            ErrorKind::HelloTimeout => "hello_timeout",
            ErrorKind::Other => "other",
        }
    }

    /// For the kinds that count a connection turned away or closed to
    /// protect the server's slots: the reason, as the `reason` label of
    /// `chatmon_connections_shed_total` and the key of the `Stats` line.
    pub fn shed_reason(self) -> Option<&'static str> {
        match self {
            ErrorKind::Refused => Some("server_full"),
            ErrorKind::PerAddress => Some("per_address"),
            ErrorKind::Evicted => Some("evicted"),
            ErrorKind::LineTimeout => Some("line_timeout"),
            ErrorKind::HelloTimeout => Some("hello_timeout"),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Errors counted by kind: one relaxed atomic increment per error.
#[derive(Debug, Default)]
pub struct ErrorCounts([AtomicU64; ErrorKind::ALL.len()]);

impl ErrorCounts {
    pub fn inc(&self, kind: ErrorKind) {
        self.0[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, kind: ErrorKind) -> u64 {
        self.0[kind.index()].load(Ordering::Relaxed)
    }
}

/// Upper bounds of the reply-time buckets, in nanoseconds. A plain reply on
/// loopback takes the server a few microseconds; the top buckets catch a
/// server that is stalled (a full disk, a stuck socket).
const REPLY_BOUNDS_NS: [u64; 17] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
    2_500_000_000,
];

/// One shard's histogram: per-bucket (not cumulative) counts, the last one
/// `+Inf`, and the sum. The sum comes first so that, in a [`TrafficShard`],
/// it and the buckets of loopback reply times share the counters' line.
#[derive(Debug, Default)]
#[repr(C)]
struct Buckets {
    sum_ns: AtomicU64,
    counts: [AtomicU64; REPLY_BOUNDS_NS.len() + 1],
}

impl Buckets {
    fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // 17 comparisons at most, usually 2 or 3: cheaper than a search.
        let i = REPLY_BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(REPLY_BOUNDS_NS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// How many were observed: the sum of the buckets.
    fn count(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |t, c| t.wrapping_add(c.load(Ordering::Relaxed)))
    }
}

/// The shards' buckets added up. The count is the sum of the buckets read,
/// so the `+Inf` bucket always equals `_count`, even while replies go on.
fn snapshot_of<'a>(shards: impl Iterator<Item = &'a Buckets> + Clone) -> HistogramSnapshot {
    let mut buckets = Vec::with_capacity(REPLY_BOUNDS_NS.len() + 1);
    let mut count = 0u64;
    for i in 0..=REPLY_BOUNDS_NS.len() {
        let n = shards.clone().fold(0u64, |t, s| {
            t.wrapping_add(s.counts[i].load(Ordering::Relaxed))
        });
        count += n;
        let bound = REPLY_BOUNDS_NS
            .get(i)
            .map(|&ns| ns as f64 / 1e9)
            .unwrap_or(f64::INFINITY);
        buckets.push((bound, n));
    }
    HistogramSnapshot {
        buckets,
        sum_secs: shards.fold(0u64, |t, s| {
            t.wrapping_add(s.sum_ns.load(Ordering::Relaxed))
        }) as f64
            / 1e9,
        count,
    }
}

/// A histogram of durations (the cluster's relay delays): fixed buckets of
/// atomics, so that recording is lock-free and allocation-free (a
/// `prometheus_client` histogram takes a lock per sample), in one shard per
/// thread slot so that recording touches only the thread's own cache lines;
/// [`ReplyTimes::snapshot`] adds the shards up.
#[derive(Debug)]
pub struct ReplyTimes(Box<[ReplyShard; SHARDS]>);

impl Default for ReplyTimes {
    fn default() -> Self {
        ReplyTimes(Box::new(std::array::from_fn(|_| ReplyShard::default())))
    }
}

/// One shard of [`ReplyTimes`], on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct ReplyShard(Buckets);

/// A copy of [`ReplyTimes`] taken at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, count in this bucket)`, not cumulative, the
    /// last bound being `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    pub sum_secs: f64,
    pub count: u64,
}

impl ReplyTimes {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        self.0[shard()].0.observe(d);
    }

    /// The buckets now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        snapshot_of(self.0.iter().map(|s| &s.0))
    }
}

/// What every message moves: messages received, bytes in and out, and the
/// server's time from handling a message to having written its reply (plain
/// and chat; its count is the replies sent). One shard per thread slot holds
/// all of them, so that a message touches one or two of its thread's cache
/// lines rather than one per figure (with threads moving between cores, each
/// line can be a cache miss on the per-message path). Reads
/// add the shards up; the sums are exact, only not a snapshot taken at one
/// instant, as separate atomics never were either.
#[derive(Debug)]
pub struct Traffic(Box<[TrafficShard; SHARDS]>);

impl Default for Traffic {
    fn default() -> Self {
        Traffic(Box::new(std::array::from_fn(|_| TrafficShard::default())))
    }
}

/// One shard of [`Traffic`], on cache lines of its own (128 bytes: x86
/// fetches lines in pairs).
#[derive(Debug, Default)]
#[repr(C, align(128))]
struct TrafficShard {
    received: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    replies: Buckets,
}

impl Traffic {
    fn mine(&self) -> &TrafficShard {
        &self.0[shard()]
    }

    /// One message received.
    pub fn received(&self) {
        self.mine().received.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` bytes read from a client.
    pub fn read(&self, n: u64) {
        self.mine().bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` bytes written to a client.
    pub fn wrote(&self, n: u64) {
        self.mine().bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// One reply written, `took` after its message was taken up.
    pub fn replied(&self, took: Duration) {
        self.mine().replies.observe(took);
    }

    pub fn messages_received(&self) -> u64 {
        self.sum(|s| s.received.load(Ordering::Relaxed))
    }

    pub fn replies_sent(&self) -> u64 {
        self.sum(|s| s.replies.count())
    }

    pub fn bytes_in(&self) -> u64 {
        self.sum(|s| s.bytes_in.load(Ordering::Relaxed))
    }

    pub fn bytes_out(&self) -> u64 {
        self.sum(|s| s.bytes_out.load(Ordering::Relaxed))
    }

    /// The reply times now.
    pub fn reply_times(&self) -> HistogramSnapshot {
        snapshot_of(self.0.iter().map(|s| &s.replies))
    }

    fn sum(&self, f: impl Fn(&TrafficShard) -> u64) -> u64 {
        self.0.iter().fold(0u64, |t, s| t.wrapping_add(f(s)))
    }
}

impl Shared {
    pub(super) fn snapshot(&self) -> Snapshot {
        let mut names: Vec<String> = self.hub.member_names();
        names.sort();
        Snapshot {
            clients: self.active.load(Ordering::SeqCst),
            names,
            messages_received: self.counters.traffic.messages_received(),
            uptime: self.started.elapsed(),
        }
    }

    /// The server's figures as a `stats` message for subscribers.
    pub(super) fn stats_msg(&self) -> Arc<str> {
        let snap = self.snapshot();
        let names = self.names_with_nodes(&snap.names).unwrap_or(snap.names);
        protocol::encode(&ServerMsg::Stats {
            clients: snap.clients,
            names,
            msgs_per_sec: f64::from_bits(self.last_rate_bits.load(Ordering::Relaxed)),
            uptime_secs: snap.uptime.as_secs(),
        })
        .into()
    }
}

/// Shortest interval a rate is computed over, so that a stop right after a
/// `Stats` line cannot divide by zero.
const MIN_INTERVAL_SECS: f64 = 1e-9;

/// The `chatmon-stats` thread: a `Stats` line every `every`, and a last one
/// at shutdown if anything happened since the previous.
pub(super) fn stats_loop(sh: Arc<Shared>, every: Duration) {
    let c = &sh.counters;
    // The counters start at zero with the server, and this thread may get
    // its first time slice only after the first messages: start from zero,
    // not from whatever the counters hold by then.
    let (mut last_msgs, mut last_in, mut last_out, mut last_err) = (0, 0, 0, 0);
    let mut last_shed = Shed::default();
    let mut last = sh.started;
    loop {
        // Wakes at once when the server stops, for a last (short) interval.
        let until = last + every;
        let stopping = sh
            .shutdown
            .wait_timeout(until.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        let elapsed = now
            .duration_since(last)
            .max(Duration::from_secs_f64(MIN_INTERVAL_SECS));
        let secs = elapsed.as_secs_f64();
        last = now;
        let msgs = c.traffic.messages_received();
        let bin = c.traffic.bytes_in();
        let bout = c.traffic.bytes_out();
        let err = c.errors.load(Ordering::Relaxed);
        let shed = shed_so_far(&c.errors_by_kind);
        // At shutdown, a last (shorter) interval: without it, the messages
        // since the last Stats line would be missing from the log's totals.
        if stopping && msgs == last_msgs && bin == last_in && err == last_err {
            return;
        }
        let rate = (msgs - last_msgs) as f64 / secs;
        sh.last_rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        sh.log.record(
            EventKind::Stats,
            &LogMessage::Stats(ServerStats {
                clients: sh.active.load(Ordering::SeqCst),
                messages: msgs - last_msgs,
                rate,
                bytes_in: bin - last_in,
                bytes_out: bout - last_out,
                errors: err - last_err,
                interval: elapsed,
                shed: shed_since(shed, last_shed),
            }),
        );
        if stopping {
            return;
        }
        if sh.hub.subscribers() > 0 {
            sh.hub.push_event_to_subscribers(sh.stats_msg(), c);
        }
        (last_msgs, last_in, last_out, last_err) = (msgs, bin, bout, err);
        last_shed = shed;
    }
}

/// Connections shed so far, by reason: each reason is an error kind, so the
/// `Stats` line and `chatmon_errors_total` can never disagree.
pub(crate) fn shed_so_far(e: &ErrorCounts) -> Shed {
    Shed {
        server_full: e.get(ErrorKind::Refused),
        per_address: e.get(ErrorKind::PerAddress),
        evicted: e.get(ErrorKind::Evicted),
        line_timeout: e.get(ErrorKind::LineTimeout),
        hello_timeout: e.get(ErrorKind::HelloTimeout),
    }
}

fn shed_since(now: Shed, then: Shed) -> Shed {
    Shed {
        server_full: now.server_full - then.server_full,
        per_address: now.per_address - then.per_address,
        evicted: now.evicted - then.evicted,
        line_timeout: now.line_timeout - then.line_timeout,
        hello_timeout: now.hello_timeout - then.hello_timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_times_bucket_and_snapshot() {
        let h = ReplyTimes::default();
        h.observe(Duration::from_micros(3));
        h.observe(Duration::from_micros(5));
        h.observe(Duration::from_micros(7));
        h.observe(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets[0], (5e-6, 2));
        assert_eq!(s.buckets[1], (1e-5, 1));
        let last = s.buckets.last().copied().expect("buckets");
        assert_eq!(last, (f64::INFINITY, 1));
        assert!((s.sum_secs - 10.000015).abs() < 1e-9, "{}", s.sum_secs);
    }

    #[test]
    fn sharded_counts_from_many_threads_add_up_exactly() {
        let t = Arc::new(Traffic::default());
        let h = Arc::new(ReplyTimes::default());
        let ts: Vec<_> = (0..(SHARDS + 7))
            .map(|k| {
                let (t, h) = (t.clone(), h.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        t.received();
                        t.read(k as u64 + 1);
                        t.wrote(2 * (k as u64 + 1));
                        t.replied(Duration::from_micros(7));
                        h.observe(Duration::from_micros(7));
                    }
                })
            })
            .collect();
        for th in ts {
            th.join().expect("counting thread");
        }
        let n = (SHARDS + 7) as u64;
        assert_eq!(t.messages_received(), 1000 * n);
        assert_eq!(t.bytes_in(), 1000 * n * (n + 1) / 2);
        assert_eq!(t.bytes_out(), 1000 * n * (n + 1));
        // The replies sent are the histogram's count, by construction.
        assert_eq!(t.replies_sent(), 1000 * n);
        for s in [h.snapshot(), t.reply_times()] {
            assert_eq!(s.count, 1000 * n);
            assert_eq!(s.buckets[1], (1e-5, 1000 * n));
            assert!((s.sum_secs - 7e-6 * (1000 * n) as f64).abs() < 1e-9);
        }
    }

    #[test]
    fn error_counts_by_kind() {
        let e = ErrorCounts::default();
        e.inc(ErrorKind::Auth);
        e.inc(ErrorKind::Auth);
        e.inc(ErrorKind::Other);
        assert_eq!(e.get(ErrorKind::Auth), 2);
        assert_eq!(e.get(ErrorKind::Other), 1);
        assert_eq!(e.get(ErrorKind::Refused), 0);
        e.inc(ErrorKind::LineTimeout);
        e.inc(ErrorKind::Evicted);
        let then = shed_so_far(&e);
        assert_eq!(
            (then.line_timeout, then.evicted, then.server_full),
            (1, 1, 0)
        );
        e.inc(ErrorKind::Refused);
        e.inc(ErrorKind::PerAddress);
        e.inc(ErrorKind::PerAddress);
        e.inc(ErrorKind::HelloTimeout);
        assert_eq!(
            shed_since(shed_so_far(&e), then),
            Shed {
                server_full: 1,
                per_address: 2,
                evicted: 0,
                line_timeout: 0,
                hello_timeout: 1,
            }
        );
        // Labels are distinct and every kind has a slot.
        let mut labels: Vec<_> = ErrorKind::ALL.iter().map(|k| k.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ErrorKind::ALL.len());
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
