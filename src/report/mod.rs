//! `chatmon report`: latency, throughput, connections and errors out of an
//! event log, chatmon's or the seed's.
//!
//! The file is streamed line by line through one reused buffer, so memory
//! depends on how many clients and seconds the log spans, not on its size.
//! Every line goes through [`eventlog::parse_line`], the one parser; lines it
//! refuses are counted (exactly) and the first few are kept with their line
//! numbers. Nothing in a log is fatal.
//!
//! Where the figures come from:
//! - latency: the `rtt=` that chatmon clients write into their `Message
//!   Received` lines (per client: the word before ` <- `). Logs without RTTs
//!   (the seed's) pair each `Message Sent` with the next reply a client
//!   received, in order, so their resolution is only what the timestamps
//!   carry: one second for the seed's format.
//! - throughput per second: the messages the server received (chatmon server
//!   `Message Received` lines), or, in a log without server lines, the
//!   messages clients sent. `Stats` lines, when present, add the server's own
//!   rate per interval.
//! - connections over time: `Connection` minus `Disconnection` events, the
//!   server's own when it logged any (client and server share one log by
//!   default, and would count every connection twice).

use crate::latency::Latency;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use chrono::NaiveDateTime;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::eventlog;

/// Read buffer of the log file: large reads keep the parser, not the
/// syscalls, the bottleneck.
const READ_BUF: usize = 1 << 20;

/// Limits that keep memory bounded whatever the log holds.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Malformed lines whose numbers are kept (the count stays exact).
    pub max_bad_lines: usize,
    /// Clients with figures of their own; later ones are pooled as `(others)`.
    pub max_clients: usize,
    /// Sends waiting for their reply, per client, while pairing seed logs.
    pub max_unpaired: usize,
    /// `Stats` lines kept for the throughput series.
    pub max_stats: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            max_bad_lines: 100,
            max_clients: 1000,
            max_unpaired: 100_000,
            max_stats: 1_000_000,
        }
    }
}

/// Why a log could not be read (its content never is a reason).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot draw the plot: {0}")]
    Plot(String),
}

/// One client's latency.
#[derive(Debug, Clone, Serialize)]
pub struct ClientLatency {
    pub client: String,
    pub latency: Latency,
}

/// A line the parser refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadLine {
    /// 1-based.
    pub line: u64,
    pub error: String,
    /// The start of the line, lossily decoded.
    pub text: String,
}

/// One second of the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Second {
    /// `YYYY-MM-DD HH:MM:SS`, the log's (local) time.
    pub time: String,
    /// Messages in this second (see [`LogReport::throughput_basis`]).
    pub messages: u64,
    pub errors: u64,
    /// Connections open at the end of this second.
    pub connections: i64,
    pub rtt_count: u64,
    pub rtt_mean_us: f64,
    pub rtt_max_us: u64,
}

/// One `Stats` line of a chatmon server.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatsPoint {
    pub time: String,
    pub clients: u64,
    pub messages: u64,
    pub rate: f64,
    pub errors: u64,
    pub interval_secs: f64,
}

/// Everything `chatmon report` says about a log.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    pub bytes: u64,
    pub lines: u64,
    pub events: u64,
    /// Exact count of lines the parser refused.
    pub malformed: u64,
    /// The first of them (at most [`ReportOptions::max_bad_lines`]).
    pub malformed_lines: Vec<BadLine>,
    pub first_time: Option<String>,
    pub last_time: Option<String>,
    /// Events per kind.
    pub kinds: BTreeMap<String, u64>,
    /// `rtt` (recorded by clients), `paired` (from timestamps) or `none`.
    pub latency_source: &'static str,
    /// Smallest difference the latency figures can show.
    pub latency_resolution: &'static str,
    pub latency: Latency,
    pub per_client: Vec<ClientLatency>,
    /// Sends never answered (pairing only).
    pub unpaired_sends: u64,
    /// What `Second::messages` counts.
    pub throughput_basis: &'static str,
    pub messages: u64,
    pub peak_messages_per_second: u64,
    pub mean_messages_per_second: f64,
    pub errors: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
    pub peak_connections: i64,
    pub seconds: Vec<Second>,
    pub stats: Vec<StatsPoint>,
}

/// Per-second counters while reading.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    server_rx: u64,
    client_tx: u64,
    errors: u64,
    /// Connection events seen this second, by origin, and the open count
    /// after the last one and at its highest.
    server_conn_events: u64,
    server_open: i64,
    server_peak: i64,
    other_conn_events: u64,
    other_open: i64,
    other_peak: i64,
    rtt_n: u64,
    rtt_sum_us: u64,
    rtt_max_us: u64,
}

impl Bucket {
    fn merge(&mut self, o: &Bucket) {
        self.server_rx += o.server_rx;
        self.client_tx += o.client_tx;
        self.errors += o.errors;
        // Seconds only merge when the log goes back in time (several writers);
        // the later reading of the open count wins.
        if o.server_conn_events > 0 {
            self.server_open = o.server_open;
        }
        if o.other_conn_events > 0 {
            self.other_open = o.other_open;
        }
        self.server_conn_events += o.server_conn_events;
        self.other_conn_events += o.other_conn_events;
        self.server_peak = self.server_peak.max(o.server_peak);
        self.other_peak = self.other_peak.max(o.other_peak);
        self.rtt_n += o.rtt_n;
        self.rtt_sum_us += o.rtt_sum_us;
        self.rtt_max_us = self.rtt_max_us.max(o.rtt_max_us);
    }
}

/// Sends of one client waiting for their replies (seed logs).
#[derive(Default)]
struct Pairing {
    /// Only replies (`Server received: ...`) close a send.
    strict: VecDeque<NaiveDateTime>,
    /// Any received message closes a send (logs whose replies say otherwise).
    loose: VecDeque<NaiveDateTime>,
}

/// Latency of one client, from RTTs and from pairing.
struct ClientHists {
    rtt: Histogram<u32>,
    strict: Histogram<u32>,
    loose: Histogram<u32>,
}

impl ClientHists {
    fn new() -> ClientHists {
        // Two significant digits per client (13 KB each at a one-second
        // maximum) keep a thousand clients well inside the memory budget; the
        // overall figures use three.
        ClientHists {
            rtt: hist(2),
            strict: hist(2),
            loose: hist(2),
        }
    }
}

fn hist<T: hdrhistogram::Counter>(sigfig: u8) -> Histogram<T> {
    // Valid significant figures never fail; the fallback is only for the
    // signature.
    Histogram::new(sigfig).unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// The reading state.
struct Analyser<'o> {
    opts: &'o ReportOptions,
    r: LogReport,
    first: Option<NaiveDateTime>,
    last: Option<NaiveDateTime>,
    cur_sec: Option<i64>,
    cur: Bucket,
    buckets: BTreeMap<i64, Bucket>,
    rtt: Histogram<u64>,
    strict: Histogram<u64>,
    loose: Histogram<u64>,
    /// Whether every paired time carried a fraction of a second.
    strict_precise: bool,
    loose_precise: bool,
    clients: HashMap<String, ClientHists>,
    pairing: HashMap<String, Pairing>,
    kinds: HashMap<String, u64>,
    /// Connections open now, by origin.
    open_server: i64,
    open_other: i64,
}

const OTHERS: &str = "(others)";

impl<'o> Analyser<'o> {
    fn new(opts: &'o ReportOptions) -> Self {
        Analyser {
            opts,
            r: LogReport {
                bytes: 0,
                lines: 0,
                events: 0,
                malformed: 0,
                malformed_lines: Vec::new(),
                first_time: None,
                last_time: None,
                kinds: BTreeMap::new(),
                latency_source: "none",
                latency_resolution: "-",
                latency: Latency::from_hist(&hist::<u64>(3)),
                per_client: Vec::new(),
                unpaired_sends: 0,
                throughput_basis: "",
                messages: 0,
                peak_messages_per_second: 0,
                mean_messages_per_second: 0.0,
                errors: 0,
                error_samples: Vec::new(),
                peak_connections: 0,
                seconds: Vec::new(),
                stats: Vec::new(),
            },
            first: None,
            last: None,
            cur_sec: None,
            cur: Bucket::default(),
            buckets: BTreeMap::new(),
            rtt: hist(3),
            strict: hist(3),
            loose: hist(3),
            strict_precise: true,
            loose_precise: true,
            clients: HashMap::new(),
            pairing: HashMap::new(),
            kinds: HashMap::new(),
            open_server: 0,
            open_other: 0,
        }
    }

    fn bad(&mut self, line_no: u64, error: String, raw: &[u8]) {
        self.r.malformed += 1;
        if self.r.malformed_lines.len() < self.opts.max_bad_lines {
            let raw = &raw[..raw.len().min(120)];
            self.r.malformed_lines.push(BadLine {
                line: line_no,
                error,
                text: String::from_utf8_lossy(raw)
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            });
        }
    }

    fn line(&mut self, line_no: u64, raw: &[u8]) {
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t,
            Err(e) => {
                self.bad(
                    line_no,
                    format!("not UTF-8 (byte {} is not)", e.valid_up_to()),
                    raw,
                );
                return;
            }
        };
        let ev = match eventlog::parse_line(text) {
            Ok(ev) => ev,
            Err(e) => {
                self.bad(line_no, e.to_string(), raw);
                return;
            }
        };
        self.r.events += 1;
        match self.kinds.get_mut(ev.kind) {
            Some(n) => *n += 1,
            None => {
                self.kinds.insert(ev.kind.to_string(), 1);
            }
        }
        let t = ev.time;
        if self.first.is_none_or(|f| t < f) {
            self.first = Some(t);
        }
        if self.last.is_none_or(|l| t > l) {
            self.last = Some(t);
        }
        let sec = t.and_utc().timestamp();
        if self.cur_sec != Some(sec) {
            if let Some(s) = self.cur_sec {
                self.buckets.entry(s).or_default().merge(&self.cur);
            }
            self.cur = Bucket::default();
            self.cur_sec = Some(sec);
        }
        let msg: &str = &ev.message;
        let from_server = msg.starts_with("server ") || msg.starts_with("server:");
        match ev.kind {
            "Message Received" => {
                if from_server {
                    self.cur.server_rx += 1;
                } else {
                    self.received(msg, t, ev.precise);
                }
            }
            "Message Sent" if !from_server => {
                self.cur.client_tx += 1;
                self.sent(msg, t);
            }
            "Connection" => self.connection(from_server, 1),
            "Disconnection" => self.connection(from_server, -1),
            "Error" => {
                self.cur.errors += 1;
                self.r.errors += 1;
                if self.r.error_samples.len() < 10 {
                    self.r
                        .error_samples
                        .push(format!("{}: {msg}", eventlog::format_time(t)));
                }
            }
            "Stats" => {
                if self.r.stats.len() < self.opts.max_stats
                    && let Some(p) = parse_stats(msg, t)
                {
                    self.r.stats.push(p);
                }
            }
            _ => {}
        }
    }

    fn connection(&mut self, from_server: bool, delta: i64) {
        // A log that starts mid-way has disconnections of clients it never
        // saw connect: the count stays at zero rather than going below.
        let b = &mut self.cur;
        if from_server {
            self.open_server = (self.open_server + delta).max(0);
            b.server_conn_events += 1;
            b.server_open = self.open_server;
            b.server_peak = b.server_peak.max(self.open_server);
        } else {
            self.open_other = (self.open_other + delta).max(0);
            b.other_conn_events += 1;
            b.other_open = self.open_other;
            b.other_peak = b.other_peak.max(self.open_other);
        }
    }

    /// A client received something: an RTT to record, or a reply to pair.
    fn received(&mut self, msg: &str, t: NaiveDateTime, precise: bool) {
        if let Some(rtt) = eventlog::rtt_from_message(msg) {
            let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
            record(&mut self.rtt, us);
            self.cur.rtt_n += 1;
            self.cur.rtt_sum_us = self.cur.rtt_sum_us.saturating_add(us);
            self.cur.rtt_max_us = self.cur.rtt_max_us.max(us);
            let name = client_before(msg, " <- ");
            record(&mut self.client(name).rtt, us);
            return;
        }
        if !self.rtt.is_empty() {
            // RTTs are exact; pairing timestamps would only add noise.
            return;
        }
        let name = client_before(msg, " <- ");
        let is_reply = msg.contains(crate::protocol::REPLY_PREFIX);
        let Some(p) = self.pairing.get_mut(name) else {
            return;
        };
        let strict = if is_reply { p.strict.pop_front() } else { None };
        let loose = p.loose.pop_front();
        if let Some(s) = strict
            && let Some(us) = micros_between(s, t)
        {
            record(&mut self.strict, us);
            self.cur.rtt_n += 1;
            self.cur.rtt_sum_us = self.cur.rtt_sum_us.saturating_add(us);
            self.cur.rtt_max_us = self.cur.rtt_max_us.max(us);
            self.strict_precise &= precise;
            record(&mut self.client(name).strict, us);
        }
        if let Some(s) = loose
            && let Some(us) = micros_between(s, t)
        {
            record(&mut self.loose, us);
            self.loose_precise &= precise;
            record(&mut self.client(name).loose, us);
        }
    }

    fn sent(&mut self, msg: &str, t: NaiveDateTime) {
        if !self.rtt.is_empty() {
            return;
        }
        let name = client_before(msg, " -> ");
        let cap = self.opts.max_unpaired;
        let p = match self.pairing.get_mut(name) {
            Some(p) => p,
            None => self.pairing.entry(name.to_string()).or_default(),
        };
        for q in [&mut p.strict, &mut p.loose] {
            if q.len() >= cap {
                q.pop_front();
            }
            q.push_back(t);
        }
    }

    fn client(&mut self, name: &str) -> &mut ClientHists {
        let key = if self.clients.contains_key(name) {
            name
        } else if self.clients.len() < self.opts.max_clients {
            self.clients.insert(name.to_string(), ClientHists::new());
            name
        } else {
            if !self.clients.contains_key(OTHERS) {
                self.clients.insert(OTHERS.to_string(), ClientHists::new());
            }
            OTHERS
        };
        // Present: inserted just above if it was not.
        match self.clients.get_mut(key) {
            Some(c) => c,
            None => unreachable!("client entry inserted above"),
        }
    }

    fn finish(mut self) -> LogReport {
        if let Some(s) = self.cur_sec {
            self.buckets.entry(s).or_default().merge(&self.cur);
        }
        let mut r = self.r;
        r.first_time = self.first.map(eventlog::format_time);
        r.last_time = self.last.map(eventlog::format_time);
        r.kinds = self.kinds.into_iter().collect();

        // Latency: recorded RTTs beat pairs of replies beat pairs of anything.
        type Pick = fn(&ClientHists) -> &Histogram<u32>;
        let (source, resolution, overall, pick, unpaired): (_, _, _, Pick, u64) =
            if !self.rtt.is_empty() {
                ("rtt", "1 µs", &self.rtt, |c| &c.rtt, 0)
            } else if !self.strict.is_empty() {
                let res = if self.strict_precise { "1 µs" } else { "1 s" };
                let left = self.pairing.values().map(|p| p.strict.len() as u64).sum();
                ("paired", res, &self.strict, |c| &c.strict, left)
            } else if !self.loose.is_empty() {
                let res = if self.loose_precise { "1 µs" } else { "1 s" };
                let left = self.pairing.values().map(|p| p.loose.len() as u64).sum();
                ("paired", res, &self.loose, |c| &c.loose, left)
            } else {
                ("none", "-", &self.rtt, |c| &c.rtt, 0)
            };
        r.latency_source = source;
        r.latency_resolution = resolution;
        r.latency = Latency::from_hist(overall);
        r.unpaired_sends = unpaired;
        let mut per: Vec<ClientLatency> = self
            .clients
            .iter()
            .filter(|(_, c)| !pick(c).is_empty())
            .map(|(n, c)| ClientLatency {
                client: if n.is_empty() {
                    "(unnamed)".into()
                } else {
                    n.clone()
                },
                latency: Latency::from_hist(pick(c)),
            })
            .collect();
        per.sort_by(|a, b| a.client.cmp(&b.client));
        r.per_client = per;

        let server_rx: u64 = self.buckets.values().map(|b| b.server_rx).sum();
        let use_server = server_rx > 0;
        r.throughput_basis = if use_server {
            "messages the server received (server `Message Received` lines)"
        } else {
            "messages clients sent (`Message Sent` lines)"
        };
        let server_conns = self.buckets.values().any(|b| b.server_conn_events > 0);
        let mut open: i64 = 0;
        let mut seconds = Vec::with_capacity(self.buckets.len());
        for (sec, b) in &self.buckets {
            let messages = if use_server { b.server_rx } else { b.client_tx };
            let (events, end, peak) = if server_conns {
                (b.server_conn_events, b.server_open, b.server_peak)
            } else {
                (b.other_conn_events, b.other_open, b.other_peak)
            };
            if events > 0 {
                open = end;
                r.peak_connections = r.peak_connections.max(peak);
            }
            r.messages += messages;
            r.peak_messages_per_second = r.peak_messages_per_second.max(messages);
            let time = chrono::DateTime::from_timestamp(*sec, 0)
                .map(|d| d.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            seconds.push(Second {
                time,
                messages,
                errors: b.errors,
                connections: open,
                rtt_count: b.rtt_n,
                rtt_mean_us: if b.rtt_n > 0 {
                    b.rtt_sum_us as f64 / b.rtt_n as f64
                } else {
                    0.0
                },
                rtt_max_us: b.rtt_max_us,
            });
        }
        let span = match (self.first, self.last) {
            (Some(a), Some(b)) => (b - a).as_seconds_f64().max(1.0),
            _ => 1.0,
        };
        r.mean_messages_per_second = r.messages as f64 / span;
        r.seconds = seconds;
        r
    }
}

/// The client name in a chatmon client line: the word before `sep`. Seed
/// lines have none, and all fall under the empty name.
fn client_before<'a>(msg: &'a str, sep: &str) -> &'a str {
    match msg.find(sep) {
        Some(i) => msg[..i].rsplit(' ').next().unwrap_or(""),
        None => "",
    }
}

fn micros_between(a: NaiveDateTime, b: NaiveDateTime) -> Option<u64> {
    let us = (b - a).num_microseconds()?;
    u64::try_from(us).ok()
}

/// Reads `server: clients=N messages=M rate=R/s ... errors=E interval=Ss`.
fn parse_stats(msg: &str, t: NaiveDateTime) -> Option<StatsPoint> {
    let mut p = StatsPoint {
        time: eventlog::format_time(t),
        ..StatsPoint::default()
    };
    let mut any = false;
    for word in msg.split_whitespace() {
        let Some((k, v)) = word.split_once('=') else {
            continue;
        };
        any = true;
        match k {
            "clients" => p.clients = v.parse().ok()?,
            "messages" => p.messages = v.parse().ok()?,
            "rate" => p.rate = v.trim_end_matches("/s").parse().ok()?,
            "errors" => p.errors = v.parse().ok()?,
            "interval" => p.interval_secs = v.trim_end_matches('s').parse().ok()?,
            _ => {}
        }
    }
    any.then_some(p)
}

/// Analyses a log from any reader.
pub fn analyse<R: BufRead>(mut reader: R, opts: &ReportOptions) -> Result<LogReport, io::Error> {
    let mut a = Analyser::new(opts);
    let mut buf = Vec::with_capacity(4096);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        a.r.bytes += n as u64;
        a.line(line_no, &buf);
    }
    a.r.lines = line_no;
    Ok(a.finish())
}

/// Analyses the log file at `path`.
pub fn analyse_file(path: &Path, opts: &ReportOptions) -> Result<LogReport, ReportError> {
    let err = |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    };
    let f = File::open(path).map_err(err)?;
    analyse(BufReader::with_capacity(READ_BUF, f), opts).map_err(err)
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// The report for people.
pub fn render_text(r: &LogReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} lines ({} bytes), {} events, {} malformed",
        r.lines, r.bytes, r.events, r.malformed
    );
    if let (Some(a), Some(b)) = (&r.first_time, &r.last_time) {
        let _ = writeln!(s, "from {a} to {b}");
    }
    let kinds: Vec<String> = r.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    if !kinds.is_empty() {
        let _ = writeln!(s, "events: {}", kinds.join(", "));
    }
    s.push('\n');
    match r.latency_source {
        "none" => {
            let _ = writeln!(
                s,
                "latency: none in this log (no `rtt=` and no Message Sent/Received pairs)"
            );
        }
        src => {
            let how = if src == "rtt" {
                "round trips recorded by the clients".to_string()
            } else {
                format!(
                    "paired Message Sent / Message Received timestamps in order; resolution {} (what the timestamps carry){}",
                    r.latency_resolution,
                    if r.unpaired_sends > 0 {
                        format!(", {} sends without a reply", r.unpaired_sends)
                    } else {
                        String::new()
                    }
                )
            };
            let _ = writeln!(s, "latency (ms): {how}");
            let _ = writeln!(
                s,
                "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "client", "count", "p50", "p90", "p99", "p99.9", "max"
            );
            let mut row = |name: &str, l: &Latency| {
                let _ = writeln!(
                    s,
                    "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    truncate(name, 24),
                    l.count,
                    ms(l.p50_us),
                    ms(l.p90_us),
                    ms(l.p99_us),
                    ms(l.p999_us),
                    ms(l.max_us)
                );
            };
            row("all", &r.latency);
            if r.per_client.len() > 1 {
                for c in r.per_client.iter().take(50) {
                    row(&c.client, &c.latency);
                }
                if r.per_client.len() > 50 {
                    let _ = writeln!(
                        s,
                        "... and {} more clients (see --json)",
                        r.per_client.len() - 50
                    );
                }
            }
        }
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "throughput: {} messages, mean {:.1}/s, peak {}/s over {} seconds with events ({})",
        r.messages,
        r.mean_messages_per_second,
        r.peak_messages_per_second,
        r.seconds.len(),
        r.throughput_basis
    );
    if !r.stats.is_empty() {
        let peak = r.stats.iter().map(|p| p.rate).fold(0.0, f64::max);
        let peak_clients = r.stats.iter().map(|p| p.clients).max().unwrap_or(0);
        let _ = writeln!(
            s,
            "server stats: {} intervals, peak rate {peak:.1}/s, peak {peak_clients} clients",
            r.stats.len()
        );
    }
    let _ = writeln!(s, "connections: peak {} open", r.peak_connections);
    let _ = writeln!(s, "errors: {}", r.errors);
    for e in &r.error_samples {
        let _ = writeln!(s, "  {e}");
    }
    if r.malformed > 0 {
        let _ = writeln!(
            s,
            "\nmalformed lines: {} (first {} shown)",
            r.malformed,
            r.malformed_lines.len().min(20)
        );
        for b in r.malformed_lines.iter().take(20) {
            let _ = writeln!(
                s,
                "  line {}: {}: {}",
                b.line,
                b.error,
                truncate(&b.text, 80)
            );
        }
    }
    s
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Writes the report as JSON.
pub fn write_json(r: &LogReport, path: &Path) -> Result<(), ReportError> {
    let err = |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = serde_json::to_string_pretty(r).map_err(|e| err(io::Error::other(e)))?;
    std::fs::write(path, text + "\n").map_err(err)
}

/// Points `(seconds since the first, value)` averaged into at most `max`
/// bins, so that a week-long log still draws a readable (and small) SVG.
fn binned(
    seconds: &[Second],
    start: i64,
    max: usize,
    value: impl Fn(&Second) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let parse = |s: &Second| {
        NaiveDateTime::parse_from_str(&s.time, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|t| t.and_utc().timestamp() - start)
    };
    let pts: Vec<(i64, f64)> = seconds
        .iter()
        .filter_map(|s| Some((parse(s)?, value(s)?)))
        .collect();
    let span = pts.last().map(|p| p.0 + 1).unwrap_or(1).max(1);
    let width = ((span as usize).div_ceil(max.max(1))).max(1) as i64;
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut cur: Option<(i64, f64, u32)> = None;
    for (t, v) in pts {
        let bin = t / width;
        match cur.as_mut() {
            Some((b, sum, n)) if *b == bin => {
                *sum += v;
                *n += 1;
            }
            _ => {
                if let Some((b, sum, n)) = cur {
                    out.push(((b * width) as f64, sum / f64::from(n)));
                }
                cur = Some((bin, v, 1));
            }
        }
    }
    if let Some((b, sum, n)) = cur {
        out.push(((b * width) as f64, sum / f64::from(n)));
    }
    out
}

/// Draws latency over time and throughput over time as SVG.
pub fn write_plot(r: &LogReport, path: &Path) -> Result<(), ReportError> {
    use plotters::prelude::*;
    let perr = |e: &dyn std::fmt::Display| ReportError::Plot(e.to_string());
    let Some(first) = r
        .seconds
        .first()
        .and_then(|s| NaiveDateTime::parse_from_str(&s.time, "%Y-%m-%d %H:%M:%S").ok())
    else {
        return Err(ReportError::Plot("the log has no events".into()));
    };
    let start = first.and_utc().timestamp();
    let rtt_mean = binned(&r.seconds, start, 1500, |s| {
        (s.rtt_count > 0).then_some(s.rtt_mean_us / 1000.0)
    });
    let rtt_max = binned(&r.seconds, start, 1500, |s| {
        (s.rtt_count > 0).then_some(s.rtt_max_us as f64 / 1000.0)
    });
    let msgs = binned(&r.seconds, start, 1500, |s| Some(s.messages as f64));
    let stats: Vec<(f64, f64)> = r
        .stats
        .iter()
        .filter_map(|p| {
            let t = NaiveDateTime::parse_from_str(&p.time, "%Y-%m-%d %H:%M:%S%.f").ok()?;
            Some(((t.and_utc().timestamp() - start) as f64, p.rate))
        })
        .collect();
    let xmax = msgs.iter().chain(&stats).map(|p| p.0).fold(1.0, f64::max) + 1.0;
    let root = SVGBackend::new(path, (900, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(&e))?;
    let (top, bottom) = root.split_vertically(380);
    let x_desc = format!("seconds since {}", first.format("%Y-%m-%d %H:%M:%S"));

    let ymax = rtt_max.iter().map(|p| p.1).fold(0.001, f64::max) * 1.15;
    let mut lat = ChartBuilder::on(&top)
        .caption(
            match r.latency_source {
                "rtt" => "chatmon report: round trip over time (recorded by clients)",
                "paired" => "chatmon report: round trip over time (timestamps paired)",
                _ => "chatmon report: no round trips in this log (server lines only?)",
            },
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(|e| perr(&e))?;
    lat.configure_mesh()
        .x_desc(x_desc.as_str())
        .y_desc("round trip (ms)")
        .draw()
        .map_err(|e| perr(&e))?;
    let blue = RGBColor(31, 119, 180);
    let red = RGBColor(214, 39, 40);
    let green = RGBColor(44, 160, 44);
    if !rtt_mean.is_empty() {
        lat.draw_series(LineSeries::new(rtt_mean, blue.stroke_width(2)))
            .map_err(|e| perr(&e))?
            .label("mean per second")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
        lat.draw_series(LineSeries::new(rtt_max, red))
            .map_err(|e| perr(&e))?
            .label("max per second")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
        lat.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| perr(&e))?;
    }

    let tmax = msgs.iter().chain(&stats).map(|p| p.1).fold(1.0, f64::max) * 1.15;
    let mut thr = ChartBuilder::on(&bottom)
        .caption("throughput over time", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..xmax, 0.0..tmax)
        .map_err(|e| perr(&e))?;
    thr.configure_mesh()
        .x_desc(x_desc.as_str())
        .y_desc("messages per second")
        .draw()
        .map_err(|e| perr(&e))?;
    thr.draw_series(LineSeries::new(msgs, blue.stroke_width(2)))
        .map_err(|e| perr(&e))?
        .label("counted from the log")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
    if !stats.is_empty() {
        thr.draw_series(LineSeries::new(stats, green.stroke_width(2)))
            .map_err(|e| perr(&e))?
            .label("server Stats rate")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green));
    }
    thr.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| perr(&e))?;
    root.present().map_err(|e| perr(&e))?;
    Ok(())
}

/// Records a sample, growing the histogram as needed: `saturating_record`
/// would clamp to the current (auto-resizing) range instead of growing it.
fn record<T: hdrhistogram::Counter>(h: &mut Histogram<T>, v: u64) {
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> LogReport {
        analyse(text.as_bytes(), &ReportOptions::default()).expect("in-memory read")
    }

    #[test]
    fn seed_log_pairs_sends_with_replies_at_one_second() {
        let r = run("Connection: 2024-10-13 14:35:24 - Client connected\n\
             Message Sent: 2024-10-13 14:35:45 - Hello, Server!\n\
             Message Received: 2024-10-13 14:35:45 - Hello, Server!\n\
             Message Received: 2024-10-13 14:35:46 - Server received: Hello, Server!\n");
        assert_eq!(r.malformed, 0);
        assert_eq!(r.latency_source, "paired");
        assert_eq!(r.latency_resolution, "1 s");
        // The server's own `Message Received` (no prefix) is not the reply.
        assert_eq!(r.latency.count, 1);
        // HDR figures are exact to 3 significant digits.
        assert!((1_000_000..=1_001_000).contains(&r.latency.max_us));
        assert_eq!(r.messages, 1);
        assert_eq!(r.peak_connections, 1);
    }

    #[test]
    fn seed_log_without_reply_prefix_pairs_anything() {
        let r = run("Message Sent: 2024-10-13 14:35:45 - Hello, Server!\n\
             Message Received: 2024-10-13 14:35:46 - Hello, Client!\n");
        assert_eq!(r.latency_source, "paired");
        assert_eq!(r.latency.count, 1);
    }

    #[test]
    fn chatmon_rtts_per_client() {
        let r = run(
            "Message Received: 2026-01-02 03:04:05.000100 - alice <- server 127.0.0.1:7878 #1 rtt=0.250ms: Server received: hi\n\
             Message Received: 2026-01-02 03:04:05.000200 - bob <- server 127.0.0.1:7878 #1 rtt=1.000ms: Server received: yo\n\
             Message Received: 2026-01-02 03:04:05.000300 - server <- bob@127.0.0.1:5555 #2: yo\n\
             Message Received: 2026-01-02 03:04:05.000400 - alice <- bob via 127.0.0.1:7878: yo\n",
        );
        assert_eq!(r.latency_source, "rtt");
        assert_eq!(r.latency.count, 2);
        let names: Vec<&str> = r.per_client.iter().map(|c| c.client.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(r.per_client[0].latency.max_us, 250);
        // Throughput counts what the server received.
        assert_eq!(r.messages, 1);
    }

    #[test]
    fn malformed_lines_are_counted_with_numbers_and_capped() {
        let mut text = String::from("Connection: 2024-10-13 14:35:24 - ok\n");
        for _ in 0..5 {
            text.push_str("garbage\n");
        }
        text.push_str("Connection: 2024-10-13 14:35:24 - ok\n");
        let opts = ReportOptions {
            max_bad_lines: 3,
            ..ReportOptions::default()
        };
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(b"Error: 2024-10-13 14:35:25 - \xff\n");
        let r = analyse(&bytes[..], &opts).expect("read");
        assert_eq!(r.malformed, 6);
        let lines: Vec<u64> = r.malformed_lines.iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert_eq!(r.events, 2);
        assert_eq!(r.lines, 8);
    }

    #[test]
    fn stats_lines_are_read() {
        let r = run(
            "Stats: 2026-01-02 03:04:05.000000 - server: clients=3 messages=120 rate=12.0/s bytes_in=1 bytes_out=2 errors=1 interval=10.0s\n",
        );
        assert_eq!(r.stats.len(), 1);
        let p = &r.stats[0];
        assert_eq!((p.clients, p.messages, p.errors), (3, 120, 1));
        assert!((p.rate - 12.0).abs() < 1e-9);
        assert!((p.interval_secs - 10.0).abs() < 1e-9);
    }

    #[test]
    fn client_names_come_before_the_arrow() {
        assert_eq!(client_before("alice <- server x", " <- "), "alice");
        assert_eq!(client_before("no arrow", " <- "), "");
        assert_eq!(client_before("alice -> server x #1: hi", " -> "), "alice");
    }
}
