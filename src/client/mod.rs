//! The chat client's connection: a tokio task that connects (and reconnects
//! with backoff), speaks the chat protocol, measures each message's round trip
//! and reports everything to the UI over a channel. The UI never touches the
//! socket; this task never touches the terminal.
//!
//! `mod` holds what the UI sees (settings, commands, events, the handle);
//! `task` the connection task itself (`task/incoming.rs`: what the server
//! sends; `task/latency.rs`: probes, pings and the clock offset's news;
//! `task/plain.rs`: the fallback for seed-style servers); `rtt` the
//! round-trip bookkeeping; `clock` the four timestamps' bookkeeping (offset
//! filter, clock probes, relay delays); `probe` the latency probes' ids,
//! timeouts and log interval.

mod clock;
mod probe;
mod rtt;
mod task;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::eventlog::EventLog;
use crate::protocol;
use crate::timing::{Offset, RelayTiming, Sample};
use crate::tls::client::TlsClient;

pub use self::probe::probe_timeout;
pub use self::task::{PLAIN_SERVER, backoff};

/// A message without a reply this long is shown as timed out.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest line taken from the server: relayed lines carry JSON overhead on
/// top of the server's own limit.
pub const DEFAULT_MAX_LINE: usize = protocol::DEFAULT_MAX_LINE * 2 + 1024;
/// Messages typed while disconnected that are kept for later.
pub const DEFAULT_MAX_QUEUED: usize = 1000;
/// Ping period: well under the server's default idle timeout of 10 minutes.
pub const DEFAULT_PING_EVERY: Duration = Duration::from_secs(25);
/// Latency probe period (`chatmon chat --probe`).
pub const DEFAULT_PROBE_EVERY: Duration = Duration::from_secs(1);

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of the server.
    pub server: String,
    /// Wanted name (the server may add a suffix).
    pub name: String,
    pub token: Option<String>,
    /// Ask for the server's event stream.
    pub subscribe: bool,
    /// A message without a reply after this long is shown as timed out.
    pub reply_timeout: Duration,
    /// Longest line accepted from the server.
    pub max_line: usize,
    /// Messages typed while disconnected that are kept for sending later.
    pub max_queued: usize,
    /// A `ping` goes out this often, so that a user who only reads is not
    /// closed by the server's `--idle-timeout` (which must be longer).
    pub ping_every: Duration,
    /// Speak TLS to the server (`chat --tls`), verified as these settings say.
    pub tls: Option<TlsClient>,
    /// Speak the seed's plain protocol from the start (`--plain`) instead of
    /// falling back to it when the server answers the hello with `Server
    /// received: ...`.
    pub plain: bool,
    /// A latency probe goes out this often while connected; zero turns
    /// probes off. A probe unanswered for [`probe_timeout`] is lost.
    pub probe_every: Duration,
}

impl ClientConfig {
    pub fn new(server: impl Into<String>, name: impl Into<String>) -> Self {
        ClientConfig {
            server: server.into(),
            name: name.into(),
            token: None,
            subscribe: false,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            max_line: DEFAULT_MAX_LINE,
            max_queued: DEFAULT_MAX_QUEUED,
            ping_every: DEFAULT_PING_EVERY,
            tls: None,
            plain: false,
            probe_every: DEFAULT_PROBE_EVERY,
        }
    }
}

/// What the UI asks the connection to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Send { id: u64, text: String },
    Nick(String),
    Subscribe(bool),
    Quit,
}

/// What happened on the connection, for the UI.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Connecting {
        attempt: u32,
    },
    Connected {
        name: String,
        users: Vec<String>,
        /// The server's own description from its welcome.
        server: String,
        /// The server runs inside a chat TUI (its welcome says so), so that
        /// when it goes away another TUI may take over its address.
        embedded: bool,
        /// A plain session with a seed-style server: replies and round trips
        /// only (no room, no names, no server time).
        plain: bool,
    },
    Disconnected {
        /// What happened, in words for the user.
        reason: String,
        /// What happened, for code to act on (never match on `reason`).
        kind: DisconnectKind,
        retry_in: Duration,
    },
    /// Queued because the connection is down; sent after reconnecting.
    Queued {
        id: u64,
    },
    /// Written to the socket.
    Sent {
        id: u64,
    },
    /// The server's reply to message `id`, with its measured round trip
    /// and, when the server stamped it, where the time went.
    Reply {
        id: u64,
        text: String,
        rtt: Duration,
        split: Option<Sample>,
    },
    /// The clock offset to the server, after a round trip that changed it.
    Clock(Offset),
    /// No reply within the timeout (a late reply still comes as `Reply`).
    TimedOut {
        id: u64,
    },
    /// The answer to latency probe `id`, with its round trip.
    Probe {
        id: u64,
        rtt: Duration,
    },
    /// Latency probe `id` got no answer within [`probe_timeout`], or its
    /// connection was lost first; a late answer is not reported.
    ProbeLost {
        id: u64,
    },
    /// Not delivered, or not known to be; `reason` says which.
    Undelivered {
        id: u64,
        reason: String,
    },
    Chat {
        from: String,
        text: String,
        ts: String,
        /// How long it took to reach us, when the stamps allow saying.
        timing: Option<RelayTiming>,
    },
    Join {
        name: String,
        users: usize,
    },
    Leave {
        name: String,
        users: usize,
        reason: String,
    },
    Nick {
        old: String,
        new: String,
    },
    ServerError(String),
    /// A line of the server's event log.
    ServerEvent(String),
    /// Server event lines lost because we were slow.
    EventsDropped(u64),
    ServerStats {
        clients: usize,
        names: Vec<String>,
        msgs_per_sec: f64,
        uptime_secs: u64,
    },
    /// The server's link to the other nodes of its cluster went up or down.
    ClusterLink {
        up: bool,
        node: String,
    },
    /// The task has ended (after `Quit`).
    Closed,
}

/// Why the client is disconnected, in a form code can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectKind {
    /// Nothing listens at the server's address (the connect was refused):
    /// the server is gone, not merely unreachable.
    ConnectRefused,
    /// The connect failed otherwise (no route, name not resolved, timeout).
    ConnectFailed,
    /// An established connection was lost or closed.
    Lost,
    /// The server said it is stopping.
    ServerStopping,
    /// The server would not have us (token, name, version), or is no chat
    /// server; retrying soon will not help.
    Refused,
}

/// The UI's end of a connection task.
#[derive(Clone)]
pub struct ClientHandle {
    tx: mpsc::UnboundedSender<Command>,
    next_id: Arc<AtomicU64>,
}

impl ClientHandle {
    /// Queues a message and returns the id its reply will carry.
    pub fn send(&self, text: String) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Command::Send { id, text });
        id
    }

    pub fn command(&self, cmd: Command) {
        let _ = self.tx.send(cmd);
    }
}

/// Starts the connection task on the current tokio runtime.
pub fn spawn(
    config: ClientConfig,
    log: EventLog,
) -> (ClientHandle, mpsc::UnboundedReceiver<ClientEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (evt_tx, evt_rx) = mpsc::unbounded_channel();
    tokio::spawn(task::run(config, log, cmd_rx, evt_tx));
    (
        ClientHandle {
            tx: cmd_tx,
            next_id: Arc::new(AtomicU64::new(1)),
        },
        evt_rx,
    )
}
