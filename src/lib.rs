//! chatmon: a thread-per-client chat and echo server, a terminal chat client
//! with live round-trip latency, and the tools to analyse their event log.
//!
//! # Layout
//! Each module owns one concept; `A → B` means A uses B, never the reverse.
//!
//! - [`protocol`]: wire format, line framing, limits, name and text rules (one
//!   encoder, one decoder). Uses nothing else of chatmon.
//! - [`eventlog`]: the log line format (one writer, one parser) and the
//!   non-blocking log writer shared by server and client. Uses nothing else
//!   of chatmon.
//! - `shutdown` (crate-private): the one stop signal every long-lived thread observes, and
//!   the wait until they are gone. Uses nothing else of chatmon.
//! - `accept` (crate-private): the accept loop shared by the chat listener and
//!   the metrics endpoint, with backoff on transient errors. `→ shutdown, sys`.
//! - [`server`]: listener, per-client session threads, the relay hub, and the
//!   figures it keeps (`server/stats.rs`). `→ protocol, eventlog, shutdown,
//!   accept, sys, timing, tls` (the wall clock of its stamps; TLS sessions).
//!   Knows nothing of HTTP or metrics.
//! - [`tls`]: rustls configs, certificate loading and reloading, the
//!   blocking server-side TLS stream a session's reader and writer share,
//!   client verification and its errors in words. Uses nothing else of
//!   chatmon.
//! - [`metrics`]: the Prometheus endpoint (`serve --metrics`): reads the
//!   server's figures through [`server::Monitor`]; its HTTP server is
//!   `metrics/http.rs`. `→ server, shutdown, accept, tls`.
//! - [`client`]: the chat client's connection task: reconnects, RTT tracking,
//!   clock offset, the plain-session fallback and latency probes (`client/probe.rs`).
//!   `→ protocol, eventlog, timing, latency, tls`.
//! - [`cluster`]: one room across several servers through NATS: the bridge
//!   (its own thread and tokio runtime), presence across nodes, the bridged
//!   message format. `→ protocol, server` (the histogram type). The server's
//!   hub reaches it only through `Bridge`.
//! - [`latency`]: latency figures from HDR histograms, shared by bench and
//!   report, and the live windows of the chat client (`latency/live.rs`).
//! - [`bench`](mod@bench): the load generator behind `chatmon bench`: tokio
//!   clients, closed or open loop, HDR latency histograms, table/JSON/CSV/SVG
//!   output. `→ protocol, server, latency, sys, tls`.
//! - [`report`]: `chatmon report`: latency, throughput, connections and
//!   errors streamed out of an event log (chatmon's or the seed's).
//!   `→ eventlog, protocol, latency, timing`.
//! - [`timing`]: where a message's time goes: server time, network time,
//!   clock offset (NTP's four timestamps) and one-way relay delay, and the
//!   matching of a seed-style server's replies. `→ protocol, latency`.
//! - [`tail`]: follows a log file like `tail -F`.
//! - [`tui`]: the terminal UI: state, input handling, rendering.
//!   `→ client, protocol, eventlog, tail, timing, server, tls` (the embedded server).
//! - [`sys`]: small OS helpers (descriptor limits, polling a socket, stderr).
//!
//! `main.rs` only parses arguments and calls into these.

pub(crate) mod accept;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod eventlog;
pub mod latency;
pub mod metrics;
pub mod protocol;
pub mod report;
pub mod server;
pub(crate) mod shutdown;
pub mod sys;
pub mod tail;
pub mod timing;
pub mod tls;
pub mod tui;
