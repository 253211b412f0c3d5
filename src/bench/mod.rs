//! `chatmon bench`: a load generator that measures round-trip latency and
//! throughput against any seed-style server, one row per client count. This
//! file owns the settings, the results and [`run`], the sweep; the parts of a
//! row live in the submodules below.
//!
//! Every connection is a tokio task (not a thread), so one process can hold
//! 10,000 of them. Each task keeps its own latency samples and the row merges
//! them at the end, so tasks never contend on a shared histogram.
//!
//! Two load models:
//! - *closed loop* (default): a client sends its next message when the reply
//!   to the previous one has arrived. Throughput is whatever the server gives.
//! - *open loop* (`rate`): messages are scheduled at a constant total rate,
//!   message `j` (counting over all clients) at `j / rate` seconds. Latency is
//!   taken from the *intended* send time, so a server that stalls makes every
//!   message scheduled during the stall late, as in wrk2 (no coordinated
//!   omission).
//!
//! All latencies here are round trips (send to reply), except relay latency in
//! chat mode, which is one way: from one client's send to another client's
//! receipt of the relayed line, measured on one shared monotonic clock.
//!
//! # Layout
//! - `local`: the chatmon server a bench starts in-process without `--server`.
//! - `connect`: opening a row's connections (plain probe, chat hello).
//! - `driver`: one row: the clients' send schedule and reply matching.
//! - `reply`: what answers a plain payload (both server styles).
//! - `samples`: per-task latency samples and merging them into a [`Row`].
//! - `output`, `plot`, `progress`: table, JSON, CSV, SVG, progress bar.

mod connect;
mod driver;
mod local;
mod output;
mod plot;
mod progress;
mod reply;
mod samples;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::latency::Latency;
use crate::protocol;
use crate::sys;
use crate::tls::client::TlsClient;

pub use driver::intended_offset;
pub use output::{render_table, to_csv, write_csv, write_json};
pub use plot::write_plot;
pub use reply::plain_reply_matches;

/// Descriptors kept free for the runtime, the log and the terminal.
const FD_RESERVE: u64 = 64;
/// Descriptors one client costs: its socket, and the server's end of it when
/// the server runs in this process.
const FDS_PER_CLIENT_REMOTE: u64 = 1;
const FDS_PER_CLIENT_LOCAL: u64 = 2;
/// The largest payload: half the server's line limit, leaving room for the
/// reply's prefix (and, in chat mode, the JSON around it).
const MAX_SIZE: usize = protocol::DEFAULT_MAX_LINE / 2;
/// The longest answer a client takes from a server: twice the line limit,
/// room for the seed's server, which repeats its prefix in every chunk it
/// echoes.
pub(crate) const MAX_ANSWER: usize = protocol::DEFAULT_MAX_LINE * 2;
/// Bytes of an unexpected line quoted in an error message.
const QUOTE_MAX: usize = 80;

/// What the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `T\n`, answered by `Server received: T`: any seed-style server.
    Plain,
    /// chatmon's JSON chat protocol; also measures relay latency.
    Chat,
}

impl Mode {
    /// The name the table and the plot title use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Chat => "chat",
        }
    }
}

/// When each client stops sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// This many measured messages per client (after the warm-up).
    Messages(u64),
    /// Send for this long after the warm-up.
    Duration(Duration),
}

/// Settings of one sweep.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// `host:port` to load; `None` starts a chatmon server in this process.
    pub server: Option<String>,
    /// Further servers, the other nodes of a cluster (`--server` again):
    /// clients are spread over `server` and these round-robin, and chat
    /// relays are timed apart for same-node and cross-node pairs.
    pub also: Vec<String>,
    /// One row per entry.
    pub clients: Vec<usize>,
    /// Open loop at this many messages per second in total; `None`: closed loop.
    pub rate: Option<f64>,
    pub stop: Stop,
    /// Time at the start of each row whose messages are not measured.
    pub warmup: Duration,
    /// Payload bytes per message (without the newline).
    pub size: usize,
    pub mode: Mode,
    /// A reply missing for this long counts as an error and ends the client.
    pub timeout: Duration,
    /// Where the in-process server logs; `None`: a temporary file, deleted.
    pub server_log: Option<PathBuf>,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Speak TLS to `server` (`--tls`).
    pub tls: Option<TlsClient>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            server: None,
            also: Vec::new(),
            clients: vec![1, 10, 100, 1000],
            rate: None,
            stop: Stop::Duration(Duration::from_secs(5)),
            warmup: Duration::from_secs(1),
            size: 32,
            mode: Mode::Plain,
            timeout: Duration::from_secs(10),
            server_log: None,
            progress: false,
            tls: None,
        }
    }
}

/// Why a bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Not a `#[source]`: the message already holds it, and error chains
    /// would print it twice.
    #[error("invalid settings: {0}")]
    Config(ConfigError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "the system's descriptor limit stopped the bench: {connected} of {wanted} connections \
         open, and this process may hold only {limit} descriptors (RLIMIT_NOFILE, already raised \
         to the hard limit){hint}"
    )]
    DescriptorLimit {
        connected: usize,
        wanted: usize,
        limit: u64,
        hint: &'static str,
    },
    #[error("no client could connect to {server}: {first_error}")]
    NoConnection { server: String, first_error: String },
    #[error("cannot draw the plot: {0}")]
    Plot(String),
}

/// A setting [`run`] refuses, named by its command-line flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("client counts must be at least 1")]
    Clients,
    #[error("--rate must be a positive number of messages per second, not {0}")]
    Rate(f64),
    #[error("--messages must be at least 1")]
    Messages,
    #[error("--duration must be longer than 0")]
    Duration,
    #[error(
        "--size must be at most {max} bytes (the server's line limit, with room for the reply)"
    )]
    Size { max: usize },
    #[error("--timeout must be longer than 0")]
    Timeout,
    #[error(
        "--tls needs --server: the in-process server has no certificate (start `chatmon serve --tls-cert FILE --tls-key FILE` and pass its address)"
    )]
    TlsWithoutServer,
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BenchError {
    let context = context.into();
    move |source| BenchError::Io { context, source }
}

/// The end of [`BenchError::DescriptorLimit`]'s message: what to do when the
/// in-process server shares the limit.
pub(crate) fn descriptor_hint(local: bool) -> &'static str {
    if local {
        "; the in-process server needs a descriptor per client too: run it apart \
         (`chatmon serve`) and pass --server"
    } else {
        ""
    }
}

/// The start of an unexpected line, for an error message.
pub(crate) fn quote(line: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&line[..line.len().min(QUOTE_MAX)])
}

/// One row of results: one client count.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub clients: usize,
    /// Clients that connected and were served: a probe answered (plain
    /// mode) or a welcome received (chat mode).
    pub connected: usize,
    /// Measured messages answered (warm-up excluded).
    pub messages: u64,
    /// Failed connections, unanswered messages and unexpected lines.
    pub errors: u64,
    /// From the end of the warm-up to the last measured reply.
    pub elapsed_secs: f64,
    /// Measured messages per second.
    pub throughput: f64,
    /// Round trip, send (intended send, in open loop) to reply.
    pub latency: Latency,
    /// Chat mode: one way, one client's send to another's receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<Latency>,
    /// Chat mode: the server's own time per message (its read to its reply,
    /// on its clock), when the server stamps its replies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_time: Option<Latency>,
    /// Chat mode: the round trip less the server's time (both directions on
    /// the wire; in an open loop also the wait for the schedule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Latency>,
    /// Chat mode over several servers: relays between two clients of the
    /// same server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_same_node: Option<Latency>,
    /// Chat mode over several servers: relays that crossed to another
    /// server (through the cluster's link).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_cross_node: Option<Latency>,
    /// The first error seen, to say what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// With `--tls`: connections set up per second before the row, each a
    /// TCP connect, a full TLS handshake and one round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshakes_per_sec: Option<f64>,
}

/// A sweep's settings and rows, as written by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The address loaded, with `(in-process)` when the bench started it.
    pub server: String,
    pub mode: Mode,
    /// `closed` or `open`.
    #[serde(rename = "loop")]
    pub load: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_client: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    pub warmup_secs: f64,
    pub size: usize,
    pub rows: Vec<Row>,
}

/// Runs a sweep: one row per entry of `config.clients`.
pub fn run(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    validate(config).map_err(BenchError::Config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("chatmon-bench")
        .build()
        .map_err(io_err("cannot start the async runtime"))?;
    let limit = sys::raise_nofile_limit().map_err(io_err("cannot read the descriptor limit"))?;
    let max_clients = config.clients.iter().copied().max().unwrap_or(1);
    let (target, local) = match &config.server {
        Some(addr) if !config.also.is_empty() => {
            (format!("{addr}, {}", config.also.join(", ")), None)
        }
        Some(addr) => (addr.clone(), None),
        None => {
            let local = local::LocalServer::start(config, max_clients)?;
            (local.addr().to_string(), Some(local))
        }
    };
    let fds_per_client = if local.is_some() {
        FDS_PER_CLIENT_LOCAL
    } else {
        FDS_PER_CLIENT_REMOTE
    };
    let needed = max_clients as u64 * fds_per_client + FD_RESERVE;
    if needed > limit {
        return Err(BenchError::DescriptorLimit {
            connected: 0,
            wanted: max_clients,
            limit,
            hint: descriptor_hint(local.is_some()),
        });
    }
    let mut rows = Vec::with_capacity(config.clients.len());
    for &n in &config.clients {
        let targets: Vec<String> = match &local {
            Some(l) => vec![l.addr().to_string()],
            None => config.server.iter().chain(&config.also).cloned().collect(),
        };
        let row = runtime.block_on(driver::run_row(config, &targets, n, limit, local.is_some()))?;
        rows.push(row);
    }
    let server = match &local {
        Some(l) => format!("{} (in-process)", l.addr()),
        None => target,
    };
    if let Some(l) = local {
        l.stop();
    }
    Ok(BenchReport {
        server,
        mode: config.mode,
        load: if config.rate.is_some() {
            "open"
        } else {
            "closed"
        },
        rate: config.rate,
        messages_per_client: match config.stop {
            Stop::Messages(m) => Some(m),
            Stop::Duration(_) => None,
        },
        duration_secs: match config.stop {
            Stop::Duration(d) => Some(d.as_secs_f64()),
            Stop::Messages(_) => None,
        },
        warmup_secs: config.warmup.as_secs_f64(),
        size: config.size,
        rows,
    })
}

fn validate(c: &BenchConfig) -> Result<(), ConfigError> {
    if c.clients.is_empty() || c.clients.contains(&0) {
        return Err(ConfigError::Clients);
    }
    if let Some(r) = c.rate
        && !(r.is_finite() && r > 0.0)
    {
        return Err(ConfigError::Rate(r));
    }
    match c.stop {
        Stop::Messages(0) => Err(ConfigError::Messages),
        Stop::Duration(d) if d.is_zero() => Err(ConfigError::Duration),
        _ if c.size > MAX_SIZE => Err(ConfigError::Size { max: MAX_SIZE }),
        _ if c.timeout.is_zero() => Err(ConfigError::Timeout),
        _ if c.tls.is_some() && c.server.is_none() => Err(ConfigError::TlsWithoutServer),
        _ => Ok(()),
    }
}

/// Why a `--clients` list is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientsError {
    /// An entry that is not a whole number of at least 1 (the entry).
    #[error("{0:?} is not a client count (a whole number of at least 1)")]
    NotACount(String),
    #[error("give at least one client count, e.g. 1,10,100")]
    Empty,
}

/// Parses `1,10,100` into client counts.
pub fn parse_clients(s: &str) -> Result<Vec<usize>, ClientsError> {
    let v = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<usize>() {
            Ok(0) | Err(_) => Err(ClientsError::NotACount(p.to_string())),
            Ok(n) => Ok(n),
        })
        .collect::<Result<Vec<usize>, ClientsError>>()?;
    if v.is_empty() {
        return Err(ClientsError::Empty);
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_lists_parse() {
        assert_eq!(parse_clients("1,10, 100"), Ok(vec![1, 10, 100]));
        assert!(parse_clients("1,0").is_err());
        assert!(parse_clients("x").is_err());
        assert!(parse_clients("").is_err());
    }

    #[test]
    fn client_list_errors_say_what_is_wrong() {
        // clap shows these to users after `--clients: `.
        assert_eq!(
            parse_clients("1,0").map_err(|e| e.to_string()),
            Err("\"0\" is not a client count (a whole number of at least 1)".to_string())
        );
        assert_eq!(
            parse_clients(" , ").map_err(|e| e.to_string()),
            Err("give at least one client count, e.g. 1,10,100".to_string())
        );
    }

    #[test]
    fn settings_are_checked_before_anything_starts() {
        // A server that is never contacted: validation comes first.
        let base = BenchConfig {
            server: Some("127.0.0.1:1".into()),
            ..BenchConfig::default()
        };
        let cases = [
            (
                BenchConfig {
                    clients: vec![3, 0],
                    ..base.clone()
                },
                "client counts must be at least 1".to_string(),
            ),
            (
                BenchConfig {
                    rate: Some(f64::NAN),
                    ..base.clone()
                },
                "--rate must be a positive number of messages per second, not NaN".into(),
            ),
            (
                BenchConfig {
                    stop: Stop::Messages(0),
                    ..base.clone()
                },
                "--messages must be at least 1".into(),
            ),
            (
                BenchConfig {
                    stop: Stop::Duration(Duration::ZERO),
                    ..base.clone()
                },
                "--duration must be longer than 0".into(),
            ),
            (
                BenchConfig {
                    size: MAX_SIZE + 1,
                    ..base.clone()
                },
                format!(
                    "--size must be at most {MAX_SIZE} bytes (the server's line limit, with \
                     room for the reply)"
                ),
            ),
            (
                BenchConfig {
                    timeout: Duration::ZERO,
                    ..base.clone()
                },
                "--timeout must be longer than 0".into(),
            ),
            (
                BenchConfig {
                    server: None,
                    tls: Some(
                        TlsClient::new(
                            "localhost:1",
                            &crate::tls::client::TlsClientOptions {
                                insecure: true,
                                ..Default::default()
                            },
                        )
                        .expect("insecure client"),
                    ),
                    ..base.clone()
                },
                "--tls needs --server: the in-process server has no certificate (start \
                 `chatmon serve --tls-cert FILE --tls-key FILE` and pass its address)"
                    .into(),
            ),
        ];
        for (config, want) in cases {
            let err = run(&config).expect_err("refused");
            assert_eq!(err.to_string(), format!("invalid settings: {want}"));
            // main prints the whole chain: the message must not repeat.
            assert!(std::error::Error::source(&err).is_none());
        }
    }
}
