//! chatmon: a thread-per-client chat and echo server, a terminal chat client
//! with live round-trip latency, and the tools to analyse their event log.
//!
//! # Layout
//! - [`protocol`]: wire format, line framing and limits (one encoder, one decoder).
//! - [`eventlog`]: the log line format (one writer, one parser) and the
//!   non-blocking log writer shared by server and client.
//! - [`server`]: listener, per-client session threads, the relay hub.
//! - [`metrics`]: the Prometheus endpoint (`serve --metrics`) and the
//!   lock-free error and reply-time counters it exports.
//! - [`client`]: the chat client's connection task: reconnects, RTT tracking.
//! - [`bench`]: the load generator behind `chatmon bench`: tokio clients,
//!   closed or open loop, HDR latency histograms, table/JSON/CSV/SVG output.
//! - [`report`]: `chatmon report`: latency, throughput, connections and
//!   errors streamed out of an event log (chatmon's or the seed's).
//! - [`latency`]: latency figures from HDR histograms, shared by bench and report.
//! - [`tail`]: follows a log file like `tail -F`.
//! - [`tui`]: the terminal UI: state, input handling, rendering.
//! - [`sys`]: small OS helpers (descriptor limits, polling a socket).

pub mod bench;
pub mod client;
pub mod eventlog;
pub mod latency;
pub mod metrics;
pub mod protocol;
pub mod report;
pub mod server;
pub mod sys;
pub mod tail;
pub mod tls;
pub mod tui;
