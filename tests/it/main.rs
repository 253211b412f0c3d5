//! The integration suite: one test binary (as ripgrep's `tests/tests.rs`),
//! one module per area of behaviour, and the shared harness in `util`.
//! One binary links once instead of once per file; `cargo test` runs it with
//! everything else.
//!
//! Tests run as threads of this one process. A test that must be alone in
//! its process (it counts the process's threads and descriptors) reruns
//! itself in a fresh copy of the binary: see `util::process::alone`.

// Test and bench code: a failed unwrap is a failed run, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

/// `chatmon bench` against chatmon and against small servers written here.
mod bench;
/// Chat mode: replies by id, relay, presence, names.
mod chat;
/// `serve --cluster`: nodes joined through a private nats-server.
mod cluster;
/// The cluster bridge against a private nats-server.
mod cluster_bridge;
/// `benches/compare.sh` on a tiny load: both servers, the order, the summary.
mod compare;
/// Faults against the real binary and the log writer: unopenable and full
/// disks, descriptor exhaustion, SIGTERM under load.
mod faults;
/// Slow and greedy peers (issue 11): line and hello deadlines, the
/// per-address limit, eviction when full.
mod hardening;
/// The live latency panel: probes, lag, timeouts, recovery.
mod live;
/// Several writers, threads or processes, sharing one log file.
mod log_sharing;
/// The Prometheus endpoint.
mod metrics;
/// Round-trip and never-panic properties (proptest).
mod properties;
/// Bad input, vanished peers, slow consumers, a failing log disk, and a
/// client that outlives a server restart.
mod reliability;
/// `chatmon report` on real logs.
mod report;
/// Threads and descriptors return to their baseline after storms.
mod resources;
/// `serve --sched-slice`: the client threads' scheduler slice, read back
/// from the kernel.
mod scheduling;
/// Loopback by default, tokens, names nobody can abuse.
mod security;
/// The plain (seed-compatible) protocol and the server's life cycle.
mod server;
/// The event stream and periodic stats, and the TUI state they feed.
mod stream;
/// Where the time goes: two real clients with skewed clocks (faketime), and
/// the TUI against seed-style plain servers.
mod timing;
/// TLS on the chat port, the metrics endpoint and the clients: real
/// clients (openssl, Python), errors in words, reloads, bad handshakes.
mod tls;
/// Keys and certificates made by `openssl`, and interop at the stream level.
mod tls_openssl;
/// The real binary's TUI in a pseudo-terminal, end to end.
mod tui_e2e;
/// The TUI's promises under faults: hostile text, SIGTERM, a panic.
mod tui_faults;
