//! Monitoring: the server's figures as Prometheus metrics, served over a
//! small HTTP/1.1 endpoint (`chatmon serve --metrics ADDR`, `GET /metrics`).
//!
//! The server already counts everything in atomics ([`Counters`]); this
//! module reads them *at scrape time* through a [`prometheus_client`]
//! collector, so a scrape costs the chat path nothing and nothing is counted
//! twice. The only things the hot path does for monitoring are the atomic
//! increments of [`ErrorCounts`] and [`ReplyTimes`], both defined here.
//!
//! The endpoint is one accept thread (`chatmon-metrics`) plus one short-lived
//! thread per scrape, at most [`MAX_INFLIGHT`] at a time: a peer that connects
//! and says nothing holds one of those for at most [`REQUEST_TIMEOUT`], never
//! the endpoint. While all are busy, new connections wait in the listen
//! backlog (refusing them with a `503` would mean closing sockets with the
//! request unread, which resets the connection before the answer is read). Requests are bounded ([`MAX_REQUEST`]); every response closes
//! the connection, which is what a scraper polling every few seconds wants.
//!
//! Output is the Prometheus text format 0.0.4 (what `promtool check metrics`
//! reads), or OpenMetrics 1.0 when the scraper's `Accept` asks for it, as
//! Prometheus itself does.
//!
//! [`Counters`]: crate::server::Counters

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::server::Monitor;
use crate::sys;

/// Longest request head (request line and headers) read; a scraper's is a
/// few hundred bytes.
pub const MAX_REQUEST: usize = 8 * 1024;
/// A request must be complete this long after the connection is accepted.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A response write that makes no progress for this long is abandoned.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more wait to be accepted, so that a flood of idle
/// connections cannot pile up threads.
pub const MAX_INFLIGHT: usize = 8;
/// Stack of a per-request thread: it formats a few kilobytes of text into a
/// heap `String`, so this is plenty.
const REQUEST_STACK: usize = 128 * 1024;

/// `Content-Type` of the Prometheus text format.
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// `Content-Type` of OpenMetrics text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
    /// Anything not classified above.
    Other,
}

impl ErrorKind {
    /// Every kind, in label order.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Refused,
        ErrorKind::Accept,
        ErrorKind::Thread,
        ErrorKind::LineTooLong,
        ErrorKind::InvalidUtf8,
        ErrorKind::Malformed,
        ErrorKind::ProtocolVersion,
        ErrorKind::InvalidName,
        ErrorKind::Auth,
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
            ErrorKind::Other => "other",
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

/// Histogram of the server's time from handling a message to having written
/// its reply: fixed buckets of atomics, so that recording is lock-free and
/// allocation-free (a `prometheus_client` histogram takes a lock per sample).
#[derive(Debug, Default)]
pub struct ReplyTimes {
    /// Per-bucket (not cumulative) counts; the last one is `+Inf`.
    buckets: [AtomicU64; REPLY_BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

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
    /// Records one reply time.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        // 17 comparisons at most, usually 2 or 3: cheaper than a search.
        let i = REPLY_BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(REPLY_BOUNDS_NS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The buckets now. The count is the sum of the buckets read, so the
    /// `+Inf` bucket always equals `_count`, even while replies go on.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        let mut count = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            count += n;
            let bound = REPLY_BOUNDS_NS
                .get(i)
                .map(|&ns| ns as f64 / 1e9)
                .unwrap_or(f64::INFINITY);
            buckets.push((bound, n));
        }
        HistogramSnapshot {
            buckets,
            sum_secs: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
            count,
        }
    }
}

/// Which text format to answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// Picks the format from a request's `Accept` header: OpenMetrics when
    /// the scraper lists it (Prometheus does, first), else Prometheus text.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a)
                if a.to_ascii_lowercase()
                    .contains("application/openmetrics-text") =>
            {
                Format::OpenMetrics
            }
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Reads a running server's figures on each scrape.
struct ServerCollector {
    monitor: Monitor,
    /// Unix time the server started, fixed once so that it does not jitter
    /// from scrape to scrape.
    start_time: f64,
}

impl fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCollector")
            .field("start_time", &self.start_time)
            .finish()
    }
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: u64,
) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, unit, c.metric_type())?)
}

fn gauge<N>(enc: &mut DescriptorEncoder, name: &str, help: &str, v: N) -> fmt::Result
where
    ConstGauge<N>: EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for ServerCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let m = &self.monitor;
        let c = m.counters();
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut enc,
            "chatmon_clients_connected",
            "Connections being served now (plain and chat).",
            m.active_clients() as i64,
        )?;
        gauge(
            &mut enc,
            "chatmon_chat_clients",
            "Chat sessions in the room now.",
            m.chat_clients() as i64,
        )?;
        gauge(
            &mut enc,
            "chatmon_event_subscribers",
            "Chat clients subscribed to the server's event stream now.",
            m.subscribers() as i64,
        )?;
        gauge(
            &mut enc,
            "chatmon_start_time_seconds",
            "Start time of the server since the Unix epoch, in seconds.",
            self.start_time,
        )?;
        let counters: [(&str, &str, Option<&Unit>, u64); 9] = [
            (
                "chatmon_connections_accepted",
                "Connections accepted and served.",
                None,
                ld(&c.accepted),
            ),
            (
                "chatmon_connections_refused",
                "Connections refused because the server was full.",
                None,
                ld(&c.refused),
            ),
            (
                "chatmon_messages_received",
                "Messages received (plain lines and chat messages).",
                None,
                ld(&c.messages_received),
            ),
            (
                "chatmon_messages_replied",
                "Replies written to the sender of a message.",
                None,
                ld(&c.replies_sent),
            ),
            (
                "chatmon_messages_relayed",
                "Lines queued to other chat clients (messages and room notices).",
                None,
                ld(&c.relayed),
            ),
            (
                "chatmon_received",
                "Bytes read from clients.",
                Some(&Unit::Bytes),
                ld(&c.bytes_in),
            ),
            (
                "chatmon_sent",
                "Bytes written to clients.",
                Some(&Unit::Bytes),
                ld(&c.bytes_out),
            ),
            (
                "chatmon_events_dropped",
                "Event-stream lines dropped from slow subscribers' outbound queues (oldest first).",
                None,
                ld(&c.events_dropped),
            ),
            (
                "chatmon_slow_consumer_disconnects",
                "Chat clients disconnected because their outbound queue was full.",
                None,
                ld(&c.slow_disconnects),
            ),
        ];
        for (name, help, unit, v) in counters {
            counter(&mut enc, name, help, unit, v)?;
        }
        {
            let cc = ConstCounter::new(0u64);
            let mut me = enc.encode_descriptor(
                "chatmon_errors",
                "Errors counted by the server, by kind.",
                None,
                cc.metric_type(),
            )?;
            for kind in ErrorKind::ALL {
                let v = ConstCounter::new(c.errors_by_kind.get(kind));
                v.encode(me.encode_family(&[("kind", kind.label())])?)?;
            }
        }
        let h = c.reply_time.snapshot();
        let mut me = enc.encode_descriptor(
            "chatmon_reply_duration",
            "Server time from handling a message to having written its reply.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        me.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            h.sum_secs, h.count, &h.buckets, None,
        )
    }
}

/// A registry holding the server's metrics, for [`render`] and the endpoint.
pub fn registry(monitor: Monitor) -> Registry {
    let uptime = monitor.uptime();
    let start_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.saturating_sub(uptime).as_secs_f64())
        .unwrap_or(0.0);
    let mut r = Registry::default();
    r.register_collector(Box::new(ServerCollector {
        monitor,
        start_time,
    }));
    r
}

/// Encodes a registry in the given format.
pub fn render(registry: &Registry, format: Format) -> String {
    let mut out = String::with_capacity(4096);
    let r = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
    };
    // Writing to a String cannot fail, and our collector only fails when the
    // writer does; an empty page is still a valid (if useless) answer.
    if r.is_err() {
        out.clear();
    }
    out
}

/// The HTTP endpoint. Stops on [`MetricsServer::shutdown`] or drop.
pub struct MetricsServer {
    local_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    inflight: Arc<AtomicUsize>,
    accept: Option<thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves the server's metrics at `GET /metrics`.
    pub fn start(addr: SocketAddr, monitor: Monitor) -> io::Result<MetricsServer> {
        Self::with_registry(addr, registry(monitor))
    }

    /// Binds `addr` and serves `registry` at `GET /metrics`.
    pub fn with_registry(addr: SocketAddr, registry: Registry) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot listen for metrics on {addr}: {e}"),
            )
        })?;
        let local_addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let inflight = Arc::new(AtomicUsize::new(0));
        let (s, n, r) = (stopping.clone(), inflight.clone(), Arc::new(registry));
        let accept = thread::Builder::new()
            .name("chatmon-metrics".into())
            .spawn(move || accept_loop(listener, s, n, r))
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start the metrics thread: {e}"))
            })?;
        Ok(MetricsServer {
            local_addr,
            stopping,
            inflight,
            accept: Some(accept),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and waits (briefly) for scrapes in progress.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        // Requests end by themselves within their timeouts; a second is
        // enough for any real scrape to finish its write.
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.inflight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Frees a request slot however the request thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: TcpListener,
    stopping: Arc<AtomicBool>,
    inflight: Arc<AtomicUsize>,
    registry: Arc<Registry>,
) {
    let mut backoff = Duration::from_millis(5);
    while !stopping.load(Ordering::SeqCst) {
        if inflight.load(Ordering::SeqCst) >= MAX_INFLIGHT {
            // Full: leave new peers in the backlog until a request ends.
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        // Poll with a timeout so that shutdown never waits on a blocked accept.
        match sys::wait_readable(&listener, Some(Duration::from_millis(100))) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => {
                thread::sleep(backoff);
                continue;
            }
        }
        let stream = match listener.accept() {
            Ok((s, _)) => {
                backoff = Duration::from_millis(5);
                s
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // EMFILE, ECONNABORTED...: transient; back off and go on.
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        // Only this thread adds, so the check above still holds.
        inflight.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(inflight.clone());
        let r = registry.clone();
        let spawned = thread::Builder::new()
            .name("chatmon-metrics-req".into())
            .stack_size(REQUEST_STACK)
            .spawn(move || {
                let _slot = slot;
                serve_one(stream, &r);
            });
        // A failed spawn drops the closure, and with it the stream and the
        // slot: the scraper sees a closed connection and retries next time.
        drop(spawned);
    }
}

/// Builds a whole response, so that it goes out in one write.
fn response(
    status: &str,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
    head_only: bool,
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// Why a request head could not be read.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// The peer closed before sending anything: nothing to answer.
    Empty,
    TooLarge,
    TimedOut,
    /// Closed mid-request, or a socket error.
    Broken,
}

/// Reads up to the blank line that ends the request head, at most
/// [`MAX_REQUEST`] bytes, by `deadline`.
fn read_head(stream: &TcpStream, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_REQUEST {
            return Err(HeadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::TimedOut);
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| HeadError::Broken)?;
        match (&*stream).read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(HeadError::Empty),
            Ok(0) => return Err(HeadError::Broken),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::TimedOut);
            }
            Err(_) => return Err(HeadError::Broken),
        }
    }
}

/// Where the head ends (`\r\n\r\n`, or a bare `\n\n` from hand-typed
/// requests), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What to answer to one request head.
fn answer(head: &[u8], registry: &Registry) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let plain = "text/plain; charset=utf-8";
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return response("400 Bad Request", plain, b"bad request\n", &[], false);
    }
    let head_only = method == "HEAD";
    let path = target.split(['?', '#']).next().unwrap_or(target);
    if path != "/metrics" {
        return response(
            "404 Not Found",
            plain,
            b"not found: metrics are at /metrics\n",
            &[],
            head_only,
        );
    }
    if method != "GET" && !head_only {
        return response(
            "405 Method Not Allowed",
            plain,
            b"method not allowed: use GET\n",
            &[("Allow", "GET, HEAD")],
            false,
        );
    }
    let accept = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("accept").then(|| v.trim())
    });
    let format = Format::negotiate(accept);
    let body = render(registry, format);
    response(
        "200 OK",
        format.content_type(),
        body.as_bytes(),
        &[],
        head_only,
    )
}

fn serve_one(stream: TcpStream, registry: &Registry) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let reply = match read_head(&stream, deadline) {
        Ok(head) => answer(&head, registry),
        Err(HeadError::TooLarge) => response(
            "431 Request Header Fields Too Large",
            "text/plain; charset=utf-8",
            b"request head too large\n",
            &[],
            false,
        ),
        Err(HeadError::TimedOut) => response(
            "408 Request Timeout",
            "text/plain; charset=utf-8",
            b"request not complete in time\n",
            &[],
            false,
        ),
        Err(HeadError::Empty | HeadError::Broken) => return,
    };
    if (&stream).write_all(&reply).is_err() {
        return;
    }
    // Lingering close: closing with unread request bytes (a POST body, a
    // pipelined request) would reset the connection and could destroy the
    // response before the client reads it. Half-close, then drain briefly.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match (&stream).read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
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
    fn error_counts_by_kind() {
        let e = ErrorCounts::default();
        e.inc(ErrorKind::Auth);
        e.inc(ErrorKind::Auth);
        e.inc(ErrorKind::Other);
        assert_eq!(e.get(ErrorKind::Auth), 2);
        assert_eq!(e.get(ErrorKind::Other), 1);
        assert_eq!(e.get(ErrorKind::Refused), 0);
        // Labels are distinct and every kind has a slot.
        let mut labels: Vec<_> = ErrorKind::ALL.iter().map(|k| k.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ErrorKind::ALL.len());
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }

    #[test]
    fn negotiates_format() {
        assert_eq!(Format::negotiate(None), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
    }

    #[test]
    fn request_heads_are_found_and_answered() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nxx"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        let r = Registry::default();
        let status = |req: &[u8]| {
            let a = answer(req, &r);
            String::from_utf8_lossy(&a)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 200 OK");
        assert_eq!(
            status(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 200 OK"
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed"
        );
        assert_eq!(status(b"hello\r\n\r\n"), "HTTP/1.1 400 Bad Request");
        let head = answer(b"HEAD /metrics HTTP/1.1\r\n\r\n", &r);
        assert!(String::from_utf8_lossy(&head).ends_with("\r\n\r\n"));
    }
}
