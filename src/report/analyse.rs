//! The streaming pass over a log: one line at a time into per-second buckets,
//! latency histograms and (for seed logs) send/reply pairing, then the
//! [`LogReport`] out of them. Reads events only through
//! [`classify`](mod@super::classify); knows nothing of output.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::NaiveDateTime;
use hdrhistogram::Histogram;

use super::classify::{self, Received, Record};
use super::{
    BadLine, ClientLatency, LogReport, ReportOptions, SECOND_FORMAT, SOURCE_NONE, SOURCE_PAIRED,
    SOURCE_RTT, Second, StatsPoint,
};
use crate::eventlog;
use crate::latency::Latency;
use crate::latency::hist::{SIGFIG, micros, new_hist, record};
use crate::timing::summary::TimingSummary;

/// Significant figures of each client's histograms: two (13 KB each at a
/// one-second maximum) keep a thousand clients well inside the memory
/// budget; the overall figures use [`SIGFIG`].
const PER_CLIENT_SIGFIG: u8 = 2;
/// Bytes of a malformed line kept to show it.
const BAD_LINE_KEEP: usize = 120;
/// Error messages kept as samples (the count stays exact).
const ERROR_SAMPLES: usize = 10;
/// The pooled name of clients beyond [`ReportOptions::max_clients`].
const OTHERS: &str = "(others)";
/// The name shown for seed logs' client, which has none.
const UNNAMED: &str = "(unnamed)";
/// Resolutions of the latency figures.
const RESOLUTION_US: &str = "1 µs";
const RESOLUTION_S: &str = "1 s";
const RESOLUTION_NONE: &str = "-";

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

    fn add_rtt(&mut self, us: u64) {
        self.rtt_n += 1;
        self.rtt_sum_us = self.rtt_sum_us.saturating_add(us);
        self.rtt_max_us = self.rtt_max_us.max(us);
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
        ClientHists {
            rtt: new_hist(PER_CLIENT_SIGFIG),
            strict: new_hist(PER_CLIENT_SIGFIG),
            loose: new_hist(PER_CLIENT_SIGFIG),
        }
    }
}

/// The reading state.
pub(crate) struct Analyser<'o> {
    opts: &'o ReportOptions,
    /// The figures that are final as soon as read (counts, samples, stats).
    r: LogReport,
    first: Option<NaiveDateTime>,
    last: Option<NaiveDateTime>,
    /// The second being counted into `cur`; merged into `buckets` when the
    /// log moves on, so most lines touch no map.
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
    /// Server, network and one-way times and each client's offset.
    timing: TimingSummary,
    /// Connections open now, by origin.
    open_server: i64,
    open_other: i64,
}

impl<'o> Analyser<'o> {
    pub(crate) fn new(opts: &'o ReportOptions) -> Self {
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
                latency_source: SOURCE_NONE,
                latency_resolution: RESOLUTION_NONE,
                latency: Latency::from_hist(&new_hist::<u64>(SIGFIG)),
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
                timing: TimingSummary::new().finish(),
            },
            first: None,
            last: None,
            cur_sec: None,
            cur: Bucket::default(),
            buckets: BTreeMap::new(),
            rtt: new_hist(SIGFIG),
            strict: new_hist(SIGFIG),
            loose: new_hist(SIGFIG),
            strict_precise: true,
            loose_precise: true,
            clients: HashMap::new(),
            pairing: HashMap::new(),
            kinds: HashMap::new(),
            timing: TimingSummary::new(),
            open_server: 0,
            open_other: 0,
        }
    }

    fn bad(&mut self, line_no: u64, error: String, raw: &[u8]) {
        self.r.malformed += 1;
        if self.r.malformed_lines.len() < self.opts.max_bad_lines {
            let raw = &raw[..raw.len().min(BAD_LINE_KEEP)];
            self.r.malformed_lines.push(BadLine {
                line: line_no,
                error,
                text: String::from_utf8_lossy(raw)
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            });
        }
    }

    /// Takes line `line_no` (1-based), `bytes` long with its newline.
    pub(crate) fn line(&mut self, line_no: u64, bytes: u64, raw: &[u8]) {
        self.r.bytes += bytes;
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
        match classify::classify(ev.kind, &ev.message) {
            Record::ServerReceived => self.cur.server_rx += 1,
            Record::ClientReceived(r) => self.received(r, t, ev.precise),
            Record::ClientSent { client } => {
                self.cur.client_tx += 1;
                self.sent(client, t);
            }
            Record::Connection { from_server, delta } => self.connection(from_server, delta),
            Record::Error { message } => {
                self.cur.errors += 1;
                self.r.errors += 1;
                if self.r.error_samples.len() < ERROR_SAMPLES {
                    self.r
                        .error_samples
                        .push(format!("{}: {message}", eventlog::format_time(t)));
                }
            }
            Record::Stats(fields) => {
                if self.r.stats.len() < self.opts.max_stats
                    && let Some(f) = fields
                {
                    self.r.stats.push(StatsPoint {
                        time: eventlog::format_time(t),
                        clients: f.clients,
                        messages: f.messages,
                        rate: f.rate,
                        errors: f.errors,
                        interval_secs: f.interval_secs,
                    });
                }
            }
            Record::Other => {}
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
    fn received(&mut self, line: Received<'_>, t: NaiveDateTime, precise: bool) {
        self.timed(&line);
        if let Some(rtt) = line.rtt() {
            let us = micros(rtt);
            record(&mut self.rtt, us);
            self.cur.add_rtt(us);
            record(&mut self.client(line.client()).rtt, us);
            return;
        }
        if !self.rtt.is_empty() {
            // RTTs are exact; pairing timestamps would only add noise.
            return;
        }
        let name = line.client();
        let is_reply = line.is_reply();
        let Some(p) = self.pairing.get_mut(name) else {
            return;
        };
        let strict = if is_reply { p.strict.pop_front() } else { None };
        let loose = p.loose.pop_front();
        if let Some(s) = strict
            && let Some(us) = micros_between(s, t)
        {
            record(&mut self.strict, us);
            self.cur.add_rtt(us);
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

    fn sent(&mut self, name: &str, t: NaiveDateTime) {
        if !self.rtt.is_empty() {
            return;
        }
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

    /// The report of a log of `lines` lines.
    /// Where the time went, from a chatmon client's reply or relay line.
    fn timed(&mut self, line: &Received<'_>) {
        let t = line.timing();
        if let Some((server, net)) = t.split {
            self.timing.round_trip(micros(server), micros(net));
        }
        if let Some(o) = t.offset {
            self.timing.offset(
                line.client(),
                o.delay.num_microseconds().unwrap_or(i64::MAX),
                micros(o.bound),
            );
        }
        if let Some(d) = t.delay {
            self.timing
                .relay(d.delay.num_microseconds().unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn finish(mut self, lines: u64) -> LogReport {
        if let Some(s) = self.cur_sec {
            self.buckets.entry(s).or_default().merge(&self.cur);
        }
        let mut r = self.r;
        r.lines = lines;
        r.timing = self.timing.finish();
        r.first_time = self.first.map(eventlog::format_time);
        r.last_time = self.last.map(eventlog::format_time);
        r.kinds = self.kinds.into_iter().collect();

        // Latency: recorded RTTs beat pairs of replies beat pairs of anything.
        type Pick = fn(&ClientHists) -> &Histogram<u32>;
        let resolution_of = |precise: bool| if precise { RESOLUTION_US } else { RESOLUTION_S };
        let (source, resolution, overall, pick, unpaired): (_, _, _, Pick, u64) =
            if !self.rtt.is_empty() {
                (SOURCE_RTT, RESOLUTION_US, &self.rtt, |c| &c.rtt, 0)
            } else if !self.strict.is_empty() {
                let left = self.pairing.values().map(|p| p.strict.len() as u64).sum();
                let res = resolution_of(self.strict_precise);
                (SOURCE_PAIRED, res, &self.strict, |c| &c.strict, left)
            } else if !self.loose.is_empty() {
                let left = self.pairing.values().map(|p| p.loose.len() as u64).sum();
                let res = resolution_of(self.loose_precise);
                (SOURCE_PAIRED, res, &self.loose, |c| &c.loose, left)
            } else {
                (SOURCE_NONE, RESOLUTION_NONE, &self.rtt, |c| &c.rtt, 0)
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
                    UNNAMED.into()
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
                .map(|d| d.naive_utc().format(SECOND_FORMAT).to_string())
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

fn micros_between(a: NaiveDateTime, b: NaiveDateTime) -> Option<u64> {
    let us = (b - a).num_microseconds()?;
    u64::try_from(us).ok()
}
