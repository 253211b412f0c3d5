//! `chatmon report`: latency, throughput, connections and errors out of an
//! event log, chatmon's or the seed's. This file owns the options, the
//! report's shape and the entry points; the work is in the submodules.
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
//!
//! # Layout
//! - `classify`: the one place that reads a message's text (what kind of
//!   record a line is for the report).
//! - `analyse`: the streaming pass: per-second buckets, histograms, pairing.
//! - `output`: the text report and JSON; `plot`: the SVG.
//!
//! [`eventlog::parse_line`]: crate::eventlog::parse_line

mod analyse;
mod classify;
mod output;
mod plot;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::Serialize;

use crate::latency::Latency;

pub use output::{render_text, write_json};
pub use plot::write_plot;

/// Read buffer of the log file: large reads keep the parser, not the
/// syscalls, the bottleneck.
const READ_BUF: usize = 1 << 20;
/// Room for a typical line before the reused line buffer grows.
const LINE_CAPACITY: usize = 4096;

/// [`LogReport::latency_source`]: round trips the clients recorded (`rtt=`).
pub(crate) const SOURCE_RTT: &str = "rtt";
/// [`LogReport::latency_source`]: sends paired with replies by timestamp.
pub(crate) const SOURCE_PAIRED: &str = "paired";
/// [`LogReport::latency_source`]: no latency in the log.
pub(crate) const SOURCE_NONE: &str = "none";
/// How [`Second::time`] is written (and read back by the plot).
pub(crate) const SECOND_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

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
    /// Where the time goes: server, network and one-way relay times, and
    /// each client's clock offset, from chatmon clients' lines.
    pub timing: crate::timing::summary::TimingReport,
}

/// Analyses a log from any reader.
pub fn analyse<R: BufRead>(mut reader: R, opts: &ReportOptions) -> Result<LogReport, io::Error> {
    let mut a = analyse::Analyser::new(opts);
    let mut buf = Vec::with_capacity(LINE_CAPACITY);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        a.line(line_no, n as u64, &buf);
    }
    Ok(a.finish(line_no))
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn run(text: &str) -> LogReport {
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
    fn connections_count_the_servers_own_events_when_it_logged_any() {
        // Client and server share one log: the client's own `Connection`
        // must not count the same connection twice.
        let r = run(
            "Connection: 2026-01-02 03:04:04.000000 - server: 127.0.0.1:5555 connected\n\
             Connection: 2026-01-02 03:04:04.100000 - alice connected to 127.0.0.1:7878\n\
             Connection: 2026-01-02 03:04:05.000000 - server: 127.0.0.1:5556 connected\n\
             Disconnection: 2026-01-02 03:04:06.000000 - server: 127.0.0.1:5555 disconnected\n\
             Disconnection: 2026-01-02 03:04:07.000000 - server: 127.0.0.1:5556 disconnected\n\
             Disconnection: 2026-01-02 03:04:07.000000 - server: 127.0.0.1:5557 disconnected\n",
        );
        assert_eq!(r.peak_connections, 2);
        let open: Vec<i64> = r.seconds.iter().map(|s| s.connections).collect();
        // Never below zero for a disconnection the log did not see connect.
        assert_eq!(open, [1, 2, 1, 0]);
    }

    #[test]
    fn where_the_time_goes_from_client_lines() {
        let r = run(
            "Message Received: 2026-01-02 03:04:07.000100 - ahead <- server 127.0.0.1:7878 #1 rtt=0.940ms server=0.031ms net=0.909ms offset=-2000.012ms±0.045ms: Server received: hi\n\
             Message Received: 2026-01-02 03:04:07.000200 - ahead <- server 127.0.0.1:7878 #2 rtt=0.500ms server=0.020ms net=0.480ms offset=-2000.010ms±0.040ms: Server received: yo\n\
             Message Received: 2026-01-02 03:04:05.000300 - honest <- ahead via 127.0.0.1:7878 delay=0.410ms±0.060ms: hi\n\
             Message Received: 2026-01-02 03:04:05.000400 - honest <- ahead via 127.0.0.1:7878: old sender\n",
        );
        let t = &r.timing;
        assert_eq!(t.server.count, 2);
        assert_eq!(t.server.max_us, 31);
        assert_eq!(t.network.min_us, 480);
        assert_eq!(t.relay.count, 1);
        assert_eq!(t.relay.p50_us, 410);
        assert_eq!(t.offsets.len(), 1);
        assert_eq!(t.offsets[0].client, "ahead");
        assert_eq!(t.offsets[0].median_us, -2_000_012);
        assert_eq!(t.offsets[0].bound_us, 40);
        let text = render_text(&r);
        assert!(text.contains("where the time goes"), "{text}");
        assert!(
            text.contains("ahead") && text.contains("-2000.012 ± 0.040"),
            "{text}"
        );
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["timing"]["relay"]["p50_us"], 410);
        assert_eq!(json["timing"]["offsets"][0]["median_us"], -2_000_012);
    }
}
