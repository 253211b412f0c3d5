//! `chatmon bench`: a load generator that measures round-trip latency and
//! throughput against any seed-style server, one row per client count.
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

use crate::latency::Latency;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Semaphore, watch};

use crate::eventlog::EventLog;
use crate::protocol::{self, ClientMsg, Frame, LineFramer, PROTOCOL_VERSION, ServerMsg};
use crate::server::{Server, ServerConfig};
use crate::sys;

/// Replies in flight on one connection in open loop before the client holds
/// back: without a cap a stalled server would make the client write until the
/// socket buffers fill and then neither side could make progress. Held-back
/// messages keep their intended send time, so the cap hides nothing.
const MAX_PIPELINE: usize = 1024;
/// Connects in flight at once: a burst of 10,000 SYNs overflows the listen
/// backlog and turns into one-second retransmits that would look like latency.
const CONNECT_CONCURRENCY: usize = 128;
/// Samples a task buffers before folding them into its own histogram: most
/// tasks of a 10,000-client row never need a histogram at all.
const SAMPLE_BATCH: usize = 1024;
/// Read buffer per connection; small because there may be 10,000 of them.
const READ_BUF: usize = 4096;
/// How long a chat client keeps reading after the last client finished, for
/// relays still on their way; reset by every read.
const RELAY_DRAIN: Duration = Duration::from_millis(50);
/// Descriptors kept free for the runtime, the log and the terminal.
const FD_RESERVE: u64 = 64;

/// What the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `T\n`, answered by `Server received: T`: any seed-style server.
    Plain,
    /// chatmon's JSON chat protocol; also measures relay latency.
    Chat,
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
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            server: None,
            clients: vec![1, 10, 100, 1000],
            rate: None,
            stop: Stop::Duration(Duration::from_secs(5)),
            warmup: Duration::from_secs(1),
            size: 32,
            mode: Mode::Plain,
            timeout: Duration::from_secs(10),
            server_log: None,
            progress: false,
        }
    }
}

/// Why a bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid settings: {0}")]
    Config(String),
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

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BenchError {
    let context = context.into();
    move |source| BenchError::Io { context, source }
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
    /// The first error seen, to say what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
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

/// Intended send time of a client's `k`-th message in open loop, from the
/// start of the row: message `k * clients + client` of one evenly spaced
/// stream at `rate` messages per second in total.
pub fn intended_offset(client: usize, clients: usize, rate: f64, k: u64) -> Duration {
    let j = k as f64 * clients as f64 + client as f64;
    Duration::from_secs_f64(j / rate)
}

/// Runs a sweep: one row per entry of `config.clients`.
pub fn run(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    validate(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("chatmon-bench")
        .build()
        .map_err(io_err("cannot start the async runtime"))?;
    let limit = sys::raise_nofile_limit().map_err(io_err("cannot read the descriptor limit"))?;
    let max_clients = config.clients.iter().copied().max().unwrap_or(1);
    let (target, local) = match &config.server {
        Some(addr) => (addr.clone(), None),
        None => {
            let local = LocalServer::start(config, max_clients)?;
            (local.addr.to_string(), Some(local))
        }
    };
    let fds_per_client: u64 = if local.is_some() { 2 } else { 1 };
    let needed = max_clients as u64 * fds_per_client + FD_RESERVE;
    if needed > limit {
        return Err(BenchError::DescriptorLimit {
            connected: 0,
            wanted: max_clients,
            limit,
            hint: if local.is_some() {
                "; the in-process server needs a descriptor per client too: run it apart \
                 (`chatmon serve`) and pass --server"
            } else {
                ""
            },
        });
    }
    let mut rows = Vec::with_capacity(config.clients.len());
    for &n in &config.clients {
        let row = runtime.block_on(run_row(config, &target, n, limit, local.is_some()))?;
        rows.push(row);
    }
    let server = match &local {
        Some(l) => format!("{} (in-process)", l.addr),
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

fn validate(c: &BenchConfig) -> Result<(), BenchError> {
    if c.clients.is_empty() || c.clients.contains(&0) {
        return Err(BenchError::Config(
            "client counts must be at least 1".into(),
        ));
    }
    if let Some(r) = c.rate
        && !(r.is_finite() && r > 0.0)
    {
        return Err(BenchError::Config(format!(
            "--rate must be a positive number of messages per second, not {r}"
        )));
    }
    match c.stop {
        Stop::Messages(0) => Err(BenchError::Config("--messages must be at least 1".into())),
        Stop::Duration(d) if d.is_zero() => Err(BenchError::Config(
            "--duration must be longer than 0".into(),
        )),
        _ if c.size > protocol::DEFAULT_MAX_LINE / 2 => Err(BenchError::Config(format!(
            "--size must be at most {} bytes (the server's line limit, with room for the reply)",
            protocol::DEFAULT_MAX_LINE / 2
        ))),
        _ if c.timeout.is_zero() => {
            Err(BenchError::Config("--timeout must be longer than 0".into()))
        }
        _ => Ok(()),
    }
}

/// The server `chatmon bench` starts when given no `--server`: a real chatmon
/// server with its full logging, on an ephemeral loopback port.
struct LocalServer {
    server: Server,
    addr: SocketAddr,
    log: EventLog,
    /// Deleted at the end: the user asked for no log.
    temp_log: Option<PathBuf>,
}

impl LocalServer {
    fn start(config: &BenchConfig, max_clients: usize) -> Result<LocalServer, BenchError> {
        let (path, temp) = match &config.server_log {
            Some(p) => (p.clone(), false),
            None => (
                std::env::temp_dir().join(format!("chatmon-bench-{}.log", std::process::id())),
                true,
            ),
        };
        let log = EventLog::open(&path).map_err(io_err("cannot open the server's log"))?;
        let cfg = ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_clients: max_clients + 16,
            stats_interval: Some(Duration::from_secs(1)),
            ..ServerConfig::default()
        };
        let server = Server::start(cfg, log.clone()).map_err(io_err("cannot start the server"))?;
        let addr = server.local_addr();
        Ok(LocalServer {
            server,
            addr,
            log,
            temp_log: temp.then_some(path),
        })
    }

    fn stop(self) {
        self.server.shutdown(Duration::from_secs(1));
        self.log.flush();
        if let Some(p) = self.temp_log {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What every client task of a row shares.
struct RowShared {
    mode: Mode,
    rate: Option<f64>,
    clients: usize,
    stop: Stop,
    size: usize,
    timeout: Duration,
    /// Clock base of the chat payload stamps (one process, one clock).
    epoch: Instant,
    /// The row's time zero: every schedule starts here.
    start: Instant,
    /// End of the warm-up: messages intended before it are not measured.
    measure_from: Instant,
    /// Plain payload, the same for every message.
    payload: Vec<u8>,
    /// Measured replies so far, for the progress bar.
    completed: AtomicU64,
    /// Clients still sending; the last one to finish flips `done`.
    sending: AtomicUsize,
    done: watch::Sender<bool>,
}

impl RowShared {
    fn sender_finished(&self) {
        if self.sending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.done.send(true);
        }
    }

    fn ns_since_epoch(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Latency samples of one task: a small buffer, folded into a histogram of
/// the task's own only when it fills.
#[derive(Default)]
struct Samples {
    buf: Vec<u32>,
    hist: Option<Histogram<u64>>,
}

impl Samples {
    fn record(&mut self, d: Duration) {
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
        let h = self.hist.get_or_insert_with(new_hist);
        for &v in &self.buf {
            record(h, u64::from(v));
        }
        self.buf.clear();
    }

    fn merge_into(mut self, total: &mut Histogram<u64>) {
        for &v in &self.buf {
            record(total, u64::from(v));
        }
        self.buf.clear();
        if let Some(h) = self.hist.take() {
            // Both auto-resize, so adding cannot run out of range.
            let _ = total.add(&h);
        }
        self.fold();
    }
}

fn new_hist() -> Histogram<u64> {
    // 3 significant figures cannot fail to construct; the fallback exists only
    // because the constructor's signature says it might.
    Histogram::new(3).unwrap_or_else(|_| Histogram::new(2).unwrap_or_else(|_| unreachable!()))
}

/// What one client task hands back.
#[derive(Default)]
struct ClientResult {
    rtt: Samples,
    relay: Samples,
    messages: u64,
    errors: u64,
    first_error: Option<String>,
    last_reply: Option<Instant>,
}

impl ClientResult {
    fn error(&mut self, n: u64, what: impl FnOnce() -> String) {
        self.errors += n;
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }
}

async fn run_row(
    config: &BenchConfig,
    target: &str,
    clients: usize,
    limit: u64,
    local: bool,
) -> Result<Row, BenchError> {
    let mut results: Vec<ClientResult> = Vec::new();
    let conns = connect_all(config, target, clients, limit, local, &mut results).await?;
    let connected = conns.len();
    let (done_tx, _) = watch::channel(false);
    // A short delay so that every task is spawned before the schedule starts.
    let start = Instant::now() + Duration::from_millis(20);
    let shared = Arc::new(RowShared {
        mode: config.mode,
        rate: config.rate,
        clients: connected,
        stop: config.stop,
        size: config.size,
        timeout: config.timeout,
        epoch: start,
        start,
        measure_from: start + config.warmup,
        payload: plain_payload(config.size),
        completed: AtomicU64::new(0),
        sending: AtomicUsize::new(connected),
        done: done_tx,
    });
    if connected == 0 {
        let _ = shared.done.send(true);
    }
    let progress = config.progress.then(|| progress_bar(config, clients));
    let ticker = progress.clone().map(|pb| {
        let sh = shared.clone();
        let stop = config.stop;
        tokio::spawn(async move {
            let mut done = sh.done.subscribe();
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = every.tick() => {}
                    _ = done.wait_for(|d| *d) => break,
                }
                let n = sh.completed.load(Ordering::Relaxed);
                match stop {
                    Stop::Messages(_) => pb.set_position(n),
                    Stop::Duration(_) => {
                        let ms = Instant::now()
                            .saturating_duration_since(sh.start)
                            .as_millis();
                        pb.set_position(u64::try_from(ms).unwrap_or(u64::MAX));
                    }
                }
                pb.set_message(format!("{clients} clients, {n} replies"));
            }
        })
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (i, stream) in conns.into_iter().enumerate() {
        tasks.spawn(drive(stream, i, shared.clone()));
    }
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(res) => results.push(res),
            Err(e) => {
                let mut res = ClientResult::default();
                res.error(1, || format!("a client task failed: {e}"));
                results.push(res);
            }
        }
    }
    if let Some(t) = ticker {
        let _ = t.await;
    }
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    Ok(assemble_row(clients, connected, &shared, results))
}

fn assemble_row(
    clients: usize,
    connected: usize,
    shared: &RowShared,
    results: Vec<ClientResult>,
) -> Row {
    let mut rtt = new_hist();
    let mut relay = new_hist();
    let (mut messages, mut errors) = (0u64, 0u64);
    let mut first_error = None;
    let mut last = shared.measure_from;
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
    }
    let elapsed = last.saturating_duration_since(shared.measure_from);
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
        relay: (shared.mode == Mode::Chat).then(|| Latency::from_hist(&relay)),
        first_error,
    }
}

fn progress_bar(config: &BenchConfig, clients: usize) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let (len, template) = match config.stop {
        Stop::Messages(m) => (
            m.saturating_mul(clients as u64),
            "{bar:30} {pos}/{len} replies  {msg}",
        ),
        Stop::Duration(d) => (
            u64::try_from((d + config.warmup).as_millis()).unwrap_or(u64::MAX),
            "{bar:30} {elapsed} / {len}ms  {msg}",
        ),
    };
    // The stderr target draws nothing when stderr is not a terminal.
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}

/// Opens every connection of a row (and says hello in chat mode), a bounded
/// number at a time. Connections that fail are recorded as errors in
/// `results`; running out of descriptors ends the row with a clear error.
async fn connect_all(
    config: &BenchConfig,
    target: &str,
    clients: usize,
    limit: u64,
    local: bool,
    results: &mut Vec<ClientResult>,
) -> Result<Vec<TcpStream>, BenchError> {
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..clients {
        let permits = permits.clone();
        let target = target.to_string();
        let mode = config.mode;
        let timeout = config.timeout;
        let size = config.size;
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            connect_one(&target, i, mode, size, timeout).await
        });
    }
    let mut conns = Vec::with_capacity(clients);
    let mut fd_exhausted = false;
    let mut first_error: Option<String> = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(s)) => conns.push(s),
            Ok(Err(ConnectError::Io(e))) => {
                if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    fd_exhausted = true;
                }
                let msg = format!("cannot connect to {target}: {e}");
                first_error.get_or_insert_with(|| msg.clone());
                let mut res = ClientResult::default();
                res.error(1, || msg);
                results.push(res);
            }
            Ok(Err(ConnectError::Refused(why))) => {
                first_error.get_or_insert_with(|| why.clone());
                let mut res = ClientResult::default();
                res.error(1, || why);
                results.push(res);
            }
            Err(e) => {
                let mut res = ClientResult::default();
                res.error(1, || format!("a connect task failed: {e}"));
                results.push(res);
            }
        }
    }
    if fd_exhausted {
        return Err(BenchError::DescriptorLimit {
            connected: conns.len(),
            wanted: clients,
            limit,
            hint: if local {
                "; the in-process server needs a descriptor per client too: run it apart \
                 (`chatmon serve`) and pass --server"
            } else {
                ""
            },
        });
    }
    if conns.is_empty() {
        return Err(BenchError::NoConnection {
            server: target.to_string(),
            first_error: first_error.unwrap_or_else(|| "unknown error".into()),
        });
    }
    Ok(conns)
}

enum ConnectError {
    Io(io::Error),
    /// Connected, but the server would not have us (full, or not chatmon).
    Refused(String),
}

async fn connect_one(
    target: &str,
    i: usize,
    mode: Mode,
    size: usize,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ConnectError::Io(e)),
        Err(_) => {
            return Err(ConnectError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {timeout:?}"),
            )));
        }
    };
    // Latency is what we measure: no Nagle delay on small messages.
    let _ = stream.set_nodelay(true);
    if mode == Mode::Plain {
        return match tokio::time::timeout(timeout, plain_probe(stream, size)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Refused(format!(
                "no answer from {target} within {timeout:?}"
            ))),
        };
    }
    match tokio::time::timeout(timeout, chat_hello(stream, i)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Refused(format!(
            "no welcome from {target} within {timeout:?}"
        ))),
    }
}

/// One unmeasured round trip before the row starts. A connect completes in
/// the kernel before the server accepts it, so without this the first clients
/// could finish before the last ones are served, and "10,000 clients at once"
/// would not be true at the server. It also finds a server that does not
/// answer `Server received: T` before any figure is taken.
async fn plain_probe(mut stream: TcpStream, size: usize) -> Result<TcpStream, ConnectError> {
    let mut line = plain_payload(size);
    line.push(b'\n');
    stream.write_all(&line).await.map_err(ConnectError::Io)?;
    // Nothing else is in flight, so every byte up to the newline is the reply.
    let mut got = Vec::with_capacity(line.len() + protocol::REPLY_PREFIX.len());
    let mut buf = [0u8; 512];
    while !got.contains(&b'\n') {
        let n = stream.read(&mut buf).await.map_err(ConnectError::Io)?;
        if n == 0 {
            return Err(ConnectError::Refused(
                "the server closed the connection before answering".into(),
            ));
        }
        if got.len() > protocol::DEFAULT_MAX_LINE * 2 {
            return Err(ConnectError::Refused(
                "the server's answer is too long".into(),
            ));
        }
        got.extend_from_slice(&buf[..n]);
    }
    let end = got.iter().position(|&b| b == b'\n').unwrap_or(got.len());
    let reply = got[..end].strip_suffix(b"\r").unwrap_or(&got[..end]);
    let mut seen = false;
    if end + 1 != got.len() || !plain_reply_matches(reply, &line[..line.len() - 1], &mut seen) {
        return Err(ConnectError::Refused(format!(
            "the server does not answer `Server received: T` (it said: {})",
            String::from_utf8_lossy(&got[..got.len().min(80)])
        )));
    }
    Ok(stream)
}

async fn chat_hello(mut stream: TcpStream, i: usize) -> Result<TcpStream, ConnectError> {
    let hello = protocol::encode(&ClientMsg::Hello {
        v: PROTOCOL_VERSION,
        name: format!("bench{i}"),
        token: None,
        subscribe: false,
    });
    stream
        .write_all(hello.as_bytes())
        .await
        .map_err(ConnectError::Io)?;
    // Read byte by byte up to the welcome's newline, so that no byte of a
    // later line is taken from the socket before the client's own framer runs.
    let mut line = Vec::with_capacity(256);
    let mut b = [0u8; 1];
    loop {
        let n = stream.read(&mut b).await.map_err(ConnectError::Io)?;
        if n == 0 {
            return Err(ConnectError::Refused(
                "the server closed the connection before its welcome".into(),
            ));
        }
        if b[0] != b'\n' {
            if line.len() > protocol::DEFAULT_MAX_LINE * 2 {
                return Err(ConnectError::Refused(
                    "the server's welcome is too long".into(),
                ));
            }
            line.push(b[0]);
            continue;
        }
        match protocol::decode::<ServerMsg>(&line) {
            Ok(ServerMsg::Welcome { .. }) => return Ok(stream),
            Ok(ServerMsg::Error { message }) => {
                return Err(ConnectError::Refused(format!(
                    "the server refused the hello: {message}"
                )));
            }
            Ok(_) => line.clear(),
            Err(_) => {
                return Err(ConnectError::Refused(format!(
                    "the server does not speak the chat protocol (it said: {})",
                    String::from_utf8_lossy(&line[..line.len().min(80)])
                )));
            }
        }
    }
}

/// A plain-mode payload of `size` bytes: printable, no newline, and nothing
/// that could pass for the reply prefix.
fn plain_payload(size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..size).map(|i| ALPHABET[i % ALPHABET.len()]).collect()
}

/// A message on its way.
struct InFlight {
    /// Message number on this connection (the chat id).
    k: u64,
    intended: Instant,
    measured: bool,
}

/// One client's sending state.
struct Sender {
    client: usize,
    k: u64,
    measured_sent: u64,
    finished: bool,
    pending: VecDeque<InFlight>,
    out: Vec<u8>,
}

impl Sender {
    /// Writes every message that is due now: one after the last reply in
    /// closed loop; every scheduled one up to now in open loop.
    async fn send_due(
        &mut self,
        sh: &RowShared,
        wr: &mut OwnedWriteHalf,
        now: Instant,
    ) -> io::Result<()> {
        while !self.finished {
            let intended = match sh.rate {
                None => {
                    if !self.pending.is_empty() {
                        break;
                    }
                    now.max(sh.start)
                }
                Some(rate) => {
                    let t = sh.start + intended_offset(self.client, sh.clients, rate, self.k);
                    if t > now || self.pending.len() >= MAX_PIPELINE {
                        break;
                    }
                    t
                }
            };
            let measured = intended >= sh.measure_from;
            match sh.stop {
                Stop::Duration(d) if intended >= sh.measure_from + d => {
                    self.finished = true;
                    break;
                }
                Stop::Messages(m) if self.measured_sent >= m => {
                    self.finished = true;
                    break;
                }
                _ => {}
            }
            if measured {
                self.measured_sent += 1;
            }
            match sh.mode {
                Mode::Plain => {
                    self.out.extend_from_slice(&sh.payload);
                    self.out.push(b'\n');
                }
                Mode::Chat => {
                    let stamp = sh.ns_since_epoch(intended);
                    let mut text = format!("{stamp} ");
                    while text.len() < sh.size {
                        text.push('x');
                    }
                    let line = protocol::encode(&ClientMsg::Msg { id: self.k, text });
                    self.out.extend_from_slice(line.as_bytes());
                }
            }
            self.pending.push_back(InFlight {
                k: self.k,
                intended,
                measured,
            });
            self.k += 1;
        }
        if self.out.is_empty() {
            return Ok(());
        }
        let r = wr.write_all(&self.out).await;
        self.out.clear();
        r
    }

    /// When the task must wake up next without input: the next scheduled send
    /// (open loop) or the oldest reply's deadline.
    fn next_wake(&self, sh: &RowShared) -> Option<Instant> {
        let send = match sh.rate {
            Some(rate) if !self.finished && self.pending.len() < MAX_PIPELINE => {
                Some(sh.start + intended_offset(self.client, sh.clients, rate, self.k))
            }
            _ => None,
        };
        let deadline = self.pending.front().map(|p| p.intended + sh.timeout);
        match (send, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Runs one client from the start of the row to its end.
async fn drive(stream: TcpStream, client: usize, sh: Arc<RowShared>) -> ClientResult {
    let mut res = ClientResult::default();
    let (mut rd, mut wr) = stream.into_split();
    let mut tx = Sender {
        client,
        k: 0,
        measured_sent: 0,
        finished: false,
        pending: VecDeque::new(),
        out: Vec::with_capacity(sh.size + 64),
    };
    let mut rx = Receiver {
        framer: LineFramer::new(protocol::DEFAULT_MAX_LINE * 2 + 1024),
        frames: Vec::new(),
        seen_prefix: false,
    };
    let mut done = sh.done.subscribe();
    let mut buf = vec![0u8; READ_BUF];
    let mut reported = false;
    // Set once everyone is done: relays may still be on their way.
    let mut drain_until: Option<Instant> = None;
    tokio::time::sleep_until(sh.start.into()).await;
    loop {
        if let Err(e) = tx.send_due(&sh, &mut wr, Instant::now()).await {
            res.error(tx.pending.len().max(1) as u64, || {
                format!("write failed: {e}")
            });
            break;
        }
        if tx.finished && tx.pending.is_empty() && !reported {
            reported = true;
            sh.sender_finished();
            // Plain clients have nothing more to hear; chat clients stay to
            // receive the others' relays until everyone is done.
            if sh.mode == Mode::Plain {
                break;
            }
        }
        let wake = drain_until.or_else(|| tx.next_wake(&sh));
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => {
                    if !tx.pending.is_empty() || !tx.finished {
                        res.error(tx.pending.len().max(1) as u64, || {
                            "the server closed the connection".to_string()
                        });
                    }
                    break;
                }
                Ok(n) => {
                    let now = Instant::now();
                    rx.on_bytes(&buf[..n], &sh, &mut tx, &mut res, now);
                    if drain_until.is_some() {
                        drain_until = Some(now + RELAY_DRAIN);
                    }
                }
                Err(e) => {
                    res.error(tx.pending.len().max(1) as u64, || format!("read failed: {e}"));
                    break;
                }
            },
            _ = sleep_until_opt(wake) => {
                let now = Instant::now();
                if drain_until.is_some_and(|d| now >= d) {
                    break;
                }
                if let Some(p) = tx.pending.front()
                    && now >= p.intended + sh.timeout
                {
                    let n = tx.pending.len() as u64;
                    let t = sh.timeout;
                    res.error(n, || format!("no reply within {t:?}"));
                    break;
                }
            }
            _ = done.wait_for(|d| *d), if reported && drain_until.is_none() => {
                drain_until = Some(Instant::now() + RELAY_DRAIN);
            }
        }
    }
    if !reported {
        sh.sender_finished();
    }
    // The write half's drop shuts down our side; the server sees EOF.
    drop(wr);
    res
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// One client's receiving state.
struct Receiver {
    framer: LineFramer,
    frames: Vec<Frame>,
    /// Whether this server prefixes its replies (see [`plain_reply_matches`]).
    seen_prefix: bool,
}

impl Receiver {
    fn on_bytes(
        &mut self,
        bytes: &[u8],
        sh: &RowShared,
        tx: &mut Sender,
        res: &mut ClientResult,
        now: Instant,
    ) {
        self.framer.push(bytes, &mut self.frames);
        let mut frames = std::mem::take(&mut self.frames);
        for f in frames.drain(..) {
            match f {
                Frame::TooLong { len } => {
                    res.error(1, || format!("the server sent a {len}-byte line"));
                    tx.pending.pop_front();
                }
                Frame::Line(line) => match sh.mode {
                    Mode::Plain => self.plain_line(&line, sh, tx, res, now),
                    Mode::Chat => chat_line(&line, sh, tx, res, now),
                },
            }
        }
        self.frames = frames;
    }

    fn plain_line(
        &mut self,
        line: &[u8],
        sh: &RowShared,
        tx: &mut Sender,
        res: &mut ClientResult,
        now: Instant,
    ) {
        let Some(p) = tx.pending.pop_front() else {
            res.error(1, || {
                format!(
                    "unexpected line from the server: {}",
                    String::from_utf8_lossy(&line[..line.len().min(80)])
                )
            });
            return;
        };
        if plain_reply_matches(line, &sh.payload, &mut self.seen_prefix) {
            record_reply(&p, sh, res, now);
        } else {
            res.error(1, || {
                format!(
                    "unexpected reply: {}",
                    String::from_utf8_lossy(&line[..line.len().min(80)])
                )
            });
        }
    }
}

/// Whether `line` answers `payload`. chatmon answers `Server received: T\n`;
/// the seed's Python server answers every `recv(1024)` chunk with the prefix
/// and the chunk as it came, so a long payload comes back with the prefix
/// repeated inside it, and two payloads read at once come back as one prefix
/// and two lines. Both hold exactly the payload's bytes once the prefixes are
/// taken out. A line without any prefix counts only once the server has shown
/// that it prefixes (so a plain echo server is not mistaken for one).
pub fn plain_reply_matches(line: &[u8], payload: &[u8], seen_prefix: &mut bool) -> bool {
    let prefix = protocol::REPLY_PREFIX.as_bytes();
    // Fast path: one prefix, then the payload.
    if let Some(rest) = line.strip_prefix(prefix)
        && rest == payload
    {
        *seen_prefix = true;
        return true;
    }
    let mut stripped = Vec::with_capacity(line.len());
    let mut had_prefix = false;
    let mut i = 0;
    while i < line.len() {
        if line[i..].starts_with(prefix) {
            had_prefix = true;
            i += prefix.len();
        } else {
            stripped.push(line[i]);
            i += 1;
        }
    }
    if stripped != payload {
        return false;
    }
    if had_prefix {
        *seen_prefix = true;
    }
    had_prefix || *seen_prefix
}

fn record_reply(p: &InFlight, sh: &RowShared, res: &mut ClientResult, now: Instant) {
    if !p.measured {
        return;
    }
    res.rtt.record(now.saturating_duration_since(p.intended));
    res.messages += 1;
    res.last_reply = Some(now);
    sh.completed.fetch_add(1, Ordering::Relaxed);
}

fn chat_line(line: &[u8], sh: &RowShared, tx: &mut Sender, res: &mut ClientResult, now: Instant) {
    match protocol::decode::<ServerMsg>(line) {
        Ok(ServerMsg::Reply { id, .. }) => {
            // Replies come in order; a search keeps a lost one from shifting
            // every later match.
            match tx.pending.iter().position(|p| p.k == id) {
                Some(i) => {
                    let stale = i as u64;
                    if stale > 0 {
                        tx.pending.drain(..i);
                        res.error(stale, || format!("replies before #{id} never came"));
                    }
                    if let Some(p) = tx.pending.pop_front() {
                        record_reply(&p, sh, res, now);
                    }
                }
                None => res.error(1, || format!("a reply to #{id}, which was not sent")),
            }
        }
        Ok(ServerMsg::Chat { text, .. }) => {
            let stamp = text.split(' ').next().and_then(|s| s.parse::<u64>().ok());
            if let Some(sent) = stamp
                && sent >= sh.ns_since_epoch(sh.measure_from)
            {
                let now_ns = sh.ns_since_epoch(now);
                res.relay
                    .record(Duration::from_nanos(now_ns.saturating_sub(sent)));
            }
        }
        Ok(ServerMsg::Error { message }) => {
            tx.pending.pop_front();
            res.error(1, || format!("the server says: {message}"));
        }
        Ok(ServerMsg::Shutdown { message }) => {
            res.error(1, || format!("the server is stopping: {message}"));
        }
        Ok(_) => {}
        Err(e) => res.error(1, || format!("a line that is not chat protocol: {e}")),
    }
}

/// The rows as a table for people.
pub fn render_table(report: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "server {}, {} mode, {} loop{}, {} byte payload, warm-up {:.1}s",
        report.server,
        match report.mode {
            Mode::Plain => "plain",
            Mode::Chat => "chat",
        },
        report.load,
        report
            .rate
            .map(|r| format!(" at {r} msg/s"))
            .unwrap_or_default(),
        report.size,
        report.warmup_secs,
    );
    let _ = writeln!(s, "round-trip latency in milliseconds");
    let chat = report.rows.iter().any(|r| r.relay.is_some());
    let _ = write!(
        s,
        "{:>7} {:>10} {:>7} {:>11} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "clients", "messages", "errors", "msg/s", "p50", "p90", "p99", "p99.9", "max"
    );
    if chat {
        let _ = write!(s, " {:>10} {:>9} {:>9}", "relays", "relay p50", "relay p99");
    }
    s.push('\n');
    for r in &report.rows {
        let l = &r.latency;
        let _ = write!(
            s,
            "{:>7} {:>10} {:>7} {:>11.1} {:>8} {:>8} {:>8} {:>8} {:>8}",
            r.clients,
            r.messages,
            r.errors,
            r.throughput,
            ms(l.p50_us),
            ms(l.p90_us),
            ms(l.p99_us),
            ms(l.p999_us),
            ms(l.max_us)
        );
        if let Some(rl) = &r.relay {
            let _ = write!(
                s,
                " {:>10} {:>9} {:>9}",
                rl.count,
                ms(rl.p50_us),
                ms(rl.p99_us)
            );
        }
        s.push('\n');
    }
    for r in &report.rows {
        if let Some(e) = &r.first_error {
            let _ = writeln!(
                s,
                "{} clients: {} errors, the first: {e}",
                r.clients, r.errors
            );
        }
    }
    s
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// Writes the report as JSON.
pub fn write_json(report: &BenchReport, path: &Path) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(report).map_err(|e| BenchError::Io {
        context: "cannot encode the report".into(),
        source: io::Error::other(e),
    })?;
    std::fs::write(path, text + "\n").map_err(io_err(format!("cannot write {}", path.display())))
}

/// The rows as CSV, one line per client count, latencies in microseconds.
pub fn to_csv(report: &BenchReport) -> String {
    let mut s = String::from(
        "clients,connected,messages,errors,elapsed_s,throughput_msg_s,p50_us,p90_us,p99_us,p999_us,max_us,mean_us,relays,relay_p50_us,relay_p99_us,relay_max_us\n",
    );
    for r in &report.rows {
        let l = &r.latency;
        let _ = write!(
            s,
            "{},{},{},{},{:.6},{:.1},{},{},{},{},{},{:.1}",
            r.clients,
            r.connected,
            r.messages,
            r.errors,
            r.elapsed_secs,
            r.throughput,
            l.p50_us,
            l.p90_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            l.mean_us
        );
        match &r.relay {
            Some(rl) => {
                let _ = writeln!(s, ",{},{},{},{}", rl.count, rl.p50_us, rl.p99_us, rl.max_us);
            }
            None => s.push_str(",,,,\n"),
        }
    }
    s
}

/// Writes the CSV (see [`to_csv`]).
pub fn write_csv(report: &BenchReport, path: &Path) -> Result<(), BenchError> {
    std::fs::write(path, to_csv(report)).map_err(io_err(format!("cannot write {}", path.display())))
}

/// Draws latency percentiles and throughput against client count as SVG.
pub fn write_plot(report: &BenchReport, path: &Path) -> Result<(), BenchError> {
    use plotters::prelude::*;
    let perr = |e: &dyn std::fmt::Display| BenchError::Plot(e.to_string());
    let rows: Vec<&Row> = report.rows.iter().filter(|r| r.messages > 0).collect();
    if rows.is_empty() {
        return Err(BenchError::Plot("no row has measured messages".into()));
    }
    let xmin = rows.iter().map(|r| r.clients).min().unwrap_or(1).max(1) as f64;
    let xmax = rows.iter().map(|r| r.clients).max().unwrap_or(1).max(1) as f64;
    // Log axes: client counts and latencies both span decades.
    let (x0, x1) = (xmin / 1.5, xmax * 1.5);
    let lat_ms = |us: u64| (us.max(1)) as f64 / 1000.0;
    let ymin = rows
        .iter()
        .map(|r| lat_ms(r.latency.p50_us))
        .fold(f64::INFINITY, f64::min);
    let ymax = rows
        .iter()
        .map(|r| lat_ms(r.latency.max_us))
        .fold(0.0, f64::max);
    let tmax = rows.iter().map(|r| r.throughput).fold(0.0, f64::max) * 1.15 + 1.0;

    let root = SVGBackend::new(path, (900, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(&e))?;
    let (top, bottom) = root.split_vertically(400);
    let title = format!(
        "chatmon bench: {} loop, {} mode, {} byte payload",
        report.load,
        match report.mode {
            Mode::Plain => "plain",
            Mode::Chat => "chat",
        },
        report.size
    );
    let mut lat = ChartBuilder::on(&top)
        .caption(&title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), (ymin / 1.5..ymax * 1.5).log_scale())
        .map_err(|e| perr(&e))?;
    lat.configure_mesh()
        .x_desc("clients")
        .y_desc("round trip (ms)")
        .draw()
        .map_err(|e| perr(&e))?;
    type Pick = fn(&Latency) -> u64;
    let series: [(&str, RGBColor, Pick); 5] = [
        ("p50", RGBColor(31, 119, 180), |l| l.p50_us),
        ("p90", RGBColor(44, 160, 44), |l| l.p90_us),
        ("p99", RGBColor(255, 127, 14), |l| l.p99_us),
        ("p99.9", RGBColor(214, 39, 40), |l| l.p999_us),
        ("max", RGBColor(127, 127, 127), |l| l.max_us),
    ];
    for (name, color, get) in series {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.clients as f64, lat_ms(get(&r.latency))))
            .collect();
        lat.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| perr(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        lat.draw_series(PointSeries::of_element(pts, 3, color, &|c, s, st| {
            EmptyElement::at(c) + Circle::new((0, 0), s, st.filled())
        }))
        .map_err(|e| perr(&e))?;
    }
    lat.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| perr(&e))?;

    let mut thr = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), 0.0..tmax)
        .map_err(|e| perr(&e))?;
    thr.configure_mesh()
        .x_desc("clients")
        .y_desc("throughput (msg/s)")
        .draw()
        .map_err(|e| perr(&e))?;
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.clients as f64, r.throughput))
        .collect();
    let blue = RGBColor(31, 119, 180);
    thr.draw_series(LineSeries::new(pts.clone(), blue.stroke_width(2)))
        .map_err(|e| perr(&e))?;
    thr.draw_series(PointSeries::of_element(pts, 3, blue, &|c, s, st| {
        EmptyElement::at(c) + Circle::new((0, 0), s, st.filled())
    }))
    .map_err(|e| perr(&e))?;
    root.present().map_err(|e| perr(&e))?;
    Ok(())
}

/// Parses `1,10,100` into client counts.
pub fn parse_clients(s: &str) -> Result<Vec<usize>, String> {
    let v: Result<Vec<usize>, String> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!(
                "{p:?} is not a client count (a whole number of at least 1)"
            )),
            Ok(n) => Ok(n),
        })
        .collect();
    let v = v?;
    if v.is_empty() {
        return Err("give at least one client count, e.g. 1,10,100".into());
    }
    Ok(v)
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

    #[test]
    fn reply_matching_takes_both_server_styles() {
        let payload = b"abc";
        let mut seen = false;
        assert!(plain_reply_matches(
            b"Server received: abc",
            payload,
            &mut seen
        ));
        assert!(seen);
        // The seed's server, a payload read in two chunks.
        let mut seen = false;
        assert!(plain_reply_matches(
            b"Server received: abServer received: c",
            payload,
            &mut seen
        ));
        // Two payloads read at once: the second line has no prefix.
        assert!(plain_reply_matches(b"abc", payload, &mut seen));
        // An echo server never prefixed: not a match.
        let mut seen = false;
        assert!(!plain_reply_matches(b"abc", payload, &mut seen));
        assert!(!plain_reply_matches(b"Error: too long", payload, &mut seen));
        assert!(!plain_reply_matches(
            b"Server received: abd",
            payload,
            &mut seen
        ));
    }

    #[test]
    fn open_loop_schedule_is_evenly_spaced_over_all_clients() {
        // 4 clients at 400 msg/s: one message every 2.5 ms overall, every
        // 10 ms per client, client i offset by i * 2.5 ms.
        assert_eq!(intended_offset(0, 4, 400.0, 0), Duration::ZERO);
        assert_eq!(intended_offset(1, 4, 400.0, 0), Duration::from_micros(2500));
        assert_eq!(intended_offset(0, 4, 400.0, 1), Duration::from_millis(10));
        assert_eq!(
            intended_offset(3, 4, 400.0, 2),
            Duration::from_micros(27_500)
        );
    }

    #[test]
    fn samples_merge_buffer_and_histogram() {
        let mut s = Samples::default();
        for i in 0..(SAMPLE_BATCH as u64 + 10) {
            s.record(Duration::from_micros(i + 1));
        }
        assert!(s.hist.is_some());
        let mut total = new_hist();
        s.merge_into(&mut total);
        assert_eq!(total.len(), SAMPLE_BATCH as u64 + 10);
        assert_eq!(total.max(), SAMPLE_BATCH as u64 + 10);
    }

    #[test]
    fn client_lists_parse() {
        assert_eq!(parse_clients("1,10, 100"), Ok(vec![1, 10, 100]));
        assert!(parse_clients("1,0").is_err());
        assert!(parse_clients("x").is_err());
        assert!(parse_clients("").is_err());
    }

    #[test]
    fn payload_has_no_newline_or_prefix() {
        let p = plain_payload(100);
        assert_eq!(p.len(), 100);
        assert!(!p.contains(&b'\n'));
        assert!(!p.windows(8).any(|w| w == b"Server r"));
    }
}
