//! The chat/echo server: its settings, its start and its one stop. Each
//! sub-concept has its own file:
//!
//! - `listen`: the accept thread's side: admitting (or refusing) a
//!   connection, spawning its session, and the guard that ends it.
//! - `conn`: one connection's socket, whole-line writes, and why it closed.
//! - `session/`: one client's reader thread: `mod` reads and frames, `auth`
//!   checks the token, `plain` answers the seed's protocol, `chat` speaks the
//!   JSON chat protocol (hello, messages, nick, subscribe).
//! - `limits`: what keeps a few peers from holding every slot: connections
//!   per address, and the connections owing their first line that a full
//!   server evicts (the deadlines are `session/deadline.rs`).
//! - `cluster`: the hub's side of `serve --cluster`: local room events to
//!   the bridge, other nodes' events to the local members.
//! - `hub`: the room: members, subscribers, and where a chat line is relayed.
//! - `outbox`: a chat client's bounded outbound queue and its writer thread.
//! - `stats`: the figures the server keeps (counters, error kinds, reply
//!   times), the `Stats` thread, and [`Monitor`], the read-only view that
//!   monitoring uses. The server knows nothing of HTTP or Prometheus.
//!
//! # Threads
//! - `chatmon-accept`: accepts, enforces `max_per_ip` and `max_clients`
//!   (evicting a connection that owes its first line to make room), spawns
//!   sessions.
//! - `client-N`: reads client N's lines, writes its replies directly (so a
//!   reply costs no thread hop), and hands relays to other clients' outboxes.
//! - `client-N-out`: drains chat client N's bounded outbox to its socket. A
//!   client that cannot keep up fills its outbox and is disconnected; the
//!   relaying thread never blocks on anyone else's socket.
//! - `chatmon-stats`: periodic `Stats` events.
//! - `chatmon-idle`: closes connections silent past the idle timeout
//!   (`idle`), so that sessions block in `read` without a kernel timer.
//!
//! Every one of them observes one `Shutdown`; session and writer threads
//! hold a guard of it, so that [`Server::shutdown`] waits until they are gone.
//! Each client costs one descriptor: the reader and writer share one
//! `Arc<Conn>` around its socket (`&TcpStream` is both `Read` and `Write`),
//! or, with TLS, around one rustls connection that both use through `&self`
//! without blocking each other (see `tls::stream`). A TLS session's
//! handshake runs on its own `client-N` thread, within
//! [`ServerConfig::tls_handshake_timeout`].

mod cluster;
mod conn;
mod hub;
mod idle;
mod limits;
mod listen;
mod outbox;
mod session;
mod slice;
mod stats;

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::cluster::{Bridge, ClusterConfig};
use crate::eventlog::{self, EventKind, EventLog, LogMessage};
use crate::protocol::{self, SHUTDOWN_NOTICE, ServerMsg};
use crate::shutdown::Shutdown;
use crate::sys;
use crate::tls::server::{ReloadableServerConfig, TlsConfigError};

use self::conn::{Conn, DisconnectReason};
use self::hub::Hub;
use self::outbox::Outbox;

pub use self::cluster::ClusterView;
pub use self::stats::{
    Counters, ErrorCounts, ErrorKind, HistogramSnapshot, Monitor, ReplyTimes, Snapshot, Traffic,
};
/// Appended to the welcome's `server` field by an embedded server. Lives in
/// [`protocol`] now, with the welcome's `embedded` flag; kept here for the
/// callers that read it from the server.
pub use crate::protocol::EMBEDDED_MARK;

/// How long a plain session's goodbye line may take to write at shutdown, so
/// that one stuck peer cannot hold up the others'.
const GOODBYE_WRITE_TIMEOUT: Duration = Duration::from_millis(200);
/// After the grace period, how long to wait for the sessions closed by force.
const FORCED_CLOSE_WAIT: Duration = Duration::from_millis(500);
/// The grace period of a server dropped without [`Server::shutdown`].
const DROP_GRACE: Duration = Duration::from_millis(500);
/// Smallest listen backlog asked for (std's own default).
const MIN_BACKLOG: usize = 128;
/// The goodbye of a plain session (a chat session gets a `shutdown` message).
const PLAIN_GOODBYE: &[u8] = b"Server is stopping. Goodbye.\n";

/// Server settings. [`ServerConfig::default`] gives the documented defaults.
/// Its `Debug` output hides the token.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: SocketAddr,
    /// Connections beyond this many are refused with one line.
    pub max_clients: usize,
    /// Longest accepted line in bytes; longer ones are discarded with an error.
    pub max_line: usize,
    /// A client that sends nothing for this long is closed (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// A line must end within this long of its first byte, and a connection's
    /// first line within this long of its accept (`None` or zero: no
    /// deadline, and no eviction when full). Without it, bytes trickled without a newline hold
    /// a slot for ever: each one resets the idle timer.
    pub line_timeout: Option<Duration>,
    /// Simultaneous connections from one IP address (IPv6: one /64) beyond
    /// this many are refused (`None`: no limit).
    pub max_per_ip: Option<usize>,
    /// Apply `max_per_ip` to loopback peers too; off, local benchmarks and
    /// many local TUIs are not limited.
    pub max_per_ip_loopback: bool,
    /// Shared secret every session must present first.
    pub token: Option<String>,
    /// Lines a chat client's outbox holds before the client counts as too slow.
    pub outbox_len: usize,
    /// Event lines a subscriber's outbox holds before the oldest are dropped.
    pub event_backlog: usize,
    /// A write that makes no progress for this long ends the session.
    pub write_timeout: Duration,
    /// How long a partial line (no newline) may sit before it counts as a whole
    /// message, as the seed's `recv(1024)` clients expect.
    pub partial_line_delay: Duration,
    /// Period of `Stats` events (`None`: off).
    pub stats_interval: Option<Duration>,
    /// Set when a chat TUI runs this server in its own process. The welcome
    /// says so ([`EMBEDDED_MARK`]), so that when it goes away other TUIs may
    /// take over its address, while a stopped `chatmon serve` keeps its
    /// address free for its restart.
    pub embedded: bool,
    /// With it, the chat port speaks only TLS (`--tls-cert`/`--tls-key`);
    /// shared with `main`, which reloads it on SIGHUP.
    pub tls: Option<Arc<ReloadableServerConfig>>,
    /// A TLS handshake not finished in this long is closed: a half-open
    /// client holds a `max_clients` slot only this long.
    pub tls_handshake_timeout: Duration,
    /// Join this server's room to the other nodes of a NATS cluster
    /// (`serve --cluster`); `None`: a single server, nothing of NATS runs.
    /// An empty node name is filled in with this host's name and port.
    pub cluster: Option<ClusterConfig>,
    /// Scheduler slice of the threads that answer clients (`None` or zero:
    /// the kernel's default). See `serve --sched-slice`.
    pub sched_slice: Option<Duration>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("max_clients", &self.max_clients)
            .field("max_line", &self.max_line)
            .field("idle_timeout", &self.idle_timeout)
            .field("line_timeout", &self.line_timeout)
            .field("max_per_ip", &self.max_per_ip)
            .field("max_per_ip_loopback", &self.max_per_ip_loopback)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("outbox_len", &self.outbox_len)
            .field("event_backlog", &self.event_backlog)
            .field("write_timeout", &self.write_timeout)
            .field("partial_line_delay", &self.partial_line_delay)
            .field("stats_interval", &self.stats_interval)
            .field("embedded", &self.embedded)
            .field(
                "tls",
                &self.tls.as_ref().map(|t| t.cert_path().to_path_buf()),
            )
            .field("tls_handshake_timeout", &self.tls_handshake_timeout)
            .field("cluster", &self.cluster)
            .field("sched_slice", &self.sched_slice)
            .finish()
    }
}

/// Default connection limit (`serve --max-clients`).
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// Default idle timeout (`serve --idle-timeout`).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Default line deadline (`serve --line-timeout`): 64 KiB at 100 kbit/s
/// takes about 5.2 s, so a long line on a slow real network still fits.
pub const DEFAULT_LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connections per address (`serve --max-per-ip`).
pub const DEFAULT_MAX_PER_IP: usize = 64;
/// Default chat lines an outbox holds.
pub const DEFAULT_OUTBOX_LEN: usize = 4096;
/// Default event lines a subscriber's outbox holds.
pub const DEFAULT_EVENT_BACKLOG: usize = 1024;
/// Default write timeout.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default pause after which a partial line counts as a message.
pub const DEFAULT_PARTIAL_LINE_DELAY: Duration = Duration::from_millis(20);
/// Default deadline of a TLS handshake.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default period of `Stats` events (`serve --stats-interval`).
pub const DEFAULT_STATS_INTERVAL: Duration = Duration::from_secs(10);

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 7878)),
            max_clients: DEFAULT_MAX_CLIENTS,
            max_line: protocol::DEFAULT_MAX_LINE,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            line_timeout: Some(DEFAULT_LINE_TIMEOUT),
            max_per_ip: Some(DEFAULT_MAX_PER_IP),
            max_per_ip_loopback: false,
            token: None,
            outbox_len: DEFAULT_OUTBOX_LEN,
            event_backlog: DEFAULT_EVENT_BACKLOG,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            partial_line_delay: DEFAULT_PARTIAL_LINE_DELAY,
            stats_interval: Some(DEFAULT_STATS_INTERVAL),
            embedded: false,
            tls: None,
            tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
            cluster: None,
            // The kernel's own: see `slice.rs` for when a shorter one pays.
            sched_slice: None,
        }
    }
}

/// What every thread of one server shares.
struct Shared {
    config: ServerConfig,
    /// The log, tapped so that every line also goes to subscribers.
    log: EventLog,
    /// Shared with the log's tap, which must reach the subscribers without
    /// upgrading a `Weak<Shared>`: that upgrade was two contended atomic
    /// adds on `Shared`'s own cache line per log line, for every session.
    hub: Arc<Hub>,
    counters: Arc<Counters>,
    /// Messages per second of the last stats interval (f64 bits), for the
    /// figures a new subscriber gets at once.
    last_rate_bits: AtomicU64,
    /// The stop signal; session and writer threads hold a guard of it.
    shutdown: Shutdown,
    /// Connections being served, for `max_clients` and the figures.
    active: AtomicUsize,
    /// Id of the next connection (ids are never reused).
    next_id: AtomicU64,
    /// Connections per address, for `max_per_ip`.
    per_addr: limits::PerAddress,
    /// Connections still owing their first line: who is evicted when full.
    waiting: limits::Waiting,
    started: Instant,
    local_addr: SocketAddr,
    /// The bridge to the other nodes (`--cluster`); the hub hands it local
    /// room events and never waits on it.
    cluster: Option<Bridge>,
    /// The client threads' scheduler slice.
    slice: slice::Slice,
}

/// A running server. Dropping it stops it with a short grace period; call
/// [`Server::shutdown`] to choose the grace period.
pub struct Server {
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
    stats: Option<thread::JoinHandle<()>>,
    /// Enforces the idle timeout, when there is one.
    idle: Option<thread::JoinHandle<()>>,
    /// Delivers other nodes' events, when in a cluster.
    cluster: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// Binds and starts serving in background threads.
    pub fn start(config: ServerConfig, log: EventLog) -> io::Result<Server> {
        if config.token.as_deref() == Some("") {
            // An empty token would match every client that sends none: it
            // would look like protection and be none.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the token is empty: give a non-empty --token (or CHATMON_TOKEN), or none",
            ));
        }
        let listener = TcpListener::bind(config.bind).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.bind))
        })?;
        let local_addr = listener.local_addr()?;
        // Room in the accept queue for a burst as large as the client limit;
        // if this fails, std's 128 still works, only bursts are slower.
        let _ = sys::set_listen_backlog(&listener, config.max_clients.max(MIN_BACKLOG));
        let (bridge, cluster_note) = match config.cluster.clone() {
            Some(c) => {
                let (b, note) = cluster::start_bridge(c, local_addr)?;
                (Some(b), Some(note))
            }
            None => (None, None),
        };
        let hub = Arc::new(Hub::default());
        let counters = Arc::new(Counters::default());
        // The hub holds no log, so holding it here makes no cycle; with no
        // subscriber, a line costs the tap one relaxed load.
        let (h, c) = (hub.clone(), counters.clone());
        let tap: eventlog::Tap = Arc::new(move |line: &str| h.broadcast_event(line, &c));
        let slice = slice::Slice::new(config.sched_slice, !config.embedded);
        let shared = Arc::new(Shared {
            log: log.with_tap(tap),
            config,
            hub,
            counters,
            last_rate_bits: AtomicU64::new(0),
            shutdown: Shutdown::new(),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            per_addr: limits::PerAddress::default(),
            waiting: limits::Waiting::default(),
            started: Instant::now(),
            local_addr,
            cluster: bridge,
            slice,
        });
        let token_required = shared.config.token.is_some();
        shared.log.record(
            EventKind::ServerStart,
            &LogMessage::ServerStart {
                addr: &local_addr.to_string(),
                max_clients: shared.config.max_clients,
                max_line: shared.config.max_line,
                token_required,
            },
        );
        if let Some(what) = &cluster_note {
            shared
                .log
                .record(EventKind::Cluster, &LogMessage::Cluster { what });
        }
        let s = shared.clone();
        let accept = thread::Builder::new()
            .name("chatmon-accept".into())
            .spawn(move || listen::accept_loop(s, listener))?;
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            thread::Builder::new().name(name.into()).spawn(f)
        };
        let stats = shared
            .config
            .stats_interval
            .filter(|d| !d.is_zero())
            .map(|every| {
                let s = shared.clone();
                spawn(
                    "chatmon-stats",
                    Box::new(move || stats::stats_loop(s, every)),
                )
            })
            .transpose();
        let idle = shared
            .config
            .idle_timeout
            .filter(|d| !d.is_zero())
            .map(|idle| {
                let s = shared.clone();
                spawn("chatmon-idle", Box::new(move || idle::idle_loop(s, idle)))
            })
            .transpose();
        let delivery = shared
            .cluster
            .as_ref()
            .and_then(|b| b.take_events())
            .map(|events| cluster::spawn_delivery(shared.clone(), events))
            .transpose();
        match (stats, idle, delivery) {
            (Ok(stats), Ok(idle), Ok(cluster)) => Ok(Server {
                shared,
                accept: Some(accept),
                stats,
                idle,
                cluster,
            }),
            (stats, idle, delivery) => {
                // A thread that could not start stops those that did: they
                // would run on after the error is returned.
                shared.shutdown.trigger();
                if let Some(b) = &shared.cluster {
                    b.stop();
                }
                let mut error = None;
                for started in [stats, idle, delivery] {
                    match started {
                        Ok(Some(t)) => {
                            let _ = t.join();
                        }
                        Ok(None) => {}
                        Err(e) => {
                            error.get_or_insert(e);
                        }
                    }
                }
                let _ = accept.join();
                Err(error.unwrap_or_else(|| io::Error::other("a server thread did not start")))
            }
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Connections being served right now.
    pub fn active_clients(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// Reads the TLS certificate and key again (SIGHUP, after a renewal):
    /// new connections get the new pair, connected clients keep theirs. A bad
    /// pair keeps the old one in use, and the `Error` line says why. `None`
    /// when the server has no TLS.
    pub fn reload_tls(&self) -> Option<Result<(), TlsConfigError>> {
        let tls = self.shared.config.tls.as_ref()?;
        let r = tls.reload();
        if let Err(e) = &r {
            self.shared.error_as(
                ErrorKind::Tls,
                "tls",
                &format!("reload failed, still serving the old certificate and key: {e}"),
            );
        }
        Some(r)
    }

    /// A handle on this server's figures that monitoring can keep (the
    /// metrics endpoint runs on its own threads).
    pub fn monitor(&self) -> Monitor {
        Monitor(self.shared.clone())
    }

    /// Stops accepting, tells every client the server is stopping, waits up
    /// to `grace` for sessions to end, closes the rest, logs `Server Stop`
    /// and flushes the log.
    pub fn shutdown(mut self, grace: Duration) {
        self.stop(grace);
    }

    fn stop(&mut self, grace: Duration) {
        let sh = &self.shared;
        if !sh.shutdown.trigger() {
            return;
        }
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        // Goodbye first: the other nodes drop this node's users at once,
        // rather than one leave at a time while the sessions close.
        if let Some(b) = &sh.cluster {
            b.stop();
        }
        if let Some(d) = self.cluster.take() {
            let _ = d.join();
        }
        let conns: Vec<Arc<Conn>> = sh.lock_conns().values().cloned().collect();
        let members: HashMap<u64, Arc<Outbox>> = sh.hub.member_outboxes();
        for c in &conns {
            if let Some(ob) = members.get(&c.id) {
                let line = protocol::encode(&ServerMsg::Shutdown {
                    message: SHUTDOWN_NOTICE.into(),
                });
                let _ = ob.close_with(Some(line.into()));
            } else {
                // Plain sessions: a short timeout, so one stuck peer cannot
                // hold up the others' goodbye; and no goodbye at all if its
                // thread is already blocked writing to a peer that stopped
                // reading (the close below wakes that write at once).
                let _ = c
                    .stream
                    .socket()
                    .set_write_timeout(Some(GOODBYE_WRITE_TIMEOUT));
                if let Ok(_g) = c.write_lock.try_lock() {
                    let _ = c.stream.write_all(PLAIN_GOODBYE);
                }
                c.close(DisconnectReason::ServerStopping);
            }
        }
        // Chat sessions end once their writer has sent the notice.
        sh.shutdown.wait_idle(grace);
        for c in sh.lock_conns().values() {
            c.close(DisconnectReason::ServerStopping);
        }
        sh.shutdown.wait_idle(FORCED_CLOSE_WAIT);
        for t in [self.stats.take(), self.idle.take()].into_iter().flatten() {
            let _ = t.join();
        }
        let c = &sh.counters;
        sh.log.record(
            EventKind::ServerStop,
            &LogMessage::ServerStop {
                uptime: sh.started.elapsed(),
                connections: c.accepted.load(Ordering::Relaxed),
                received: c.traffic.messages_received(),
                replies: c.traffic.replies_sent(),
            },
        );
        sh.log.flush();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A server dropped without shutdown (a test that panicked, a TUI that
        // quit) still closes its sockets and says goodbye.
        self.stop(DROP_GRACE);
    }
}

impl Shared {
    fn lock_conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.hub.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an error (in total and by kind, for the metrics) and logs it.
    fn error_as(&self, kind: ErrorKind, who: &str, what: &str) {
        self.count_error(kind);
        self.log
            .record(EventKind::Error, &LogMessage::ServerError { who, what });
    }

    /// The line deadline, if on (a zero `line_timeout` is off).
    fn line_deadline(&self) -> Option<Duration> {
        self.config.line_timeout.filter(|t| !t.is_zero())
    }

    /// Counts an error without logging it: for repeats that are logged once
    /// per burst.
    fn count_error(&self, kind: ErrorKind) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.counters.errors_by_kind.inc(kind);
    }
}

/// The warning to print before listening on `bind`, if any: a non-loopback
/// address without a token lets anyone who can reach it in.
pub fn exposure_warning(bind: SocketAddr, token: Option<&str>) -> Option<String> {
    if bind.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        return None;
    }
    Some(format!(
        "warning: listening on {bind} without --token: anyone who can reach it can connect"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_token() {
        let c = ServerConfig {
            token: Some("s3cret".into()),
            ..ServerConfig::default()
        };
        let d = format!("{c:?}");
        assert!(!d.contains("s3cret") && d.contains("<hidden>"), "{d}");
    }

    #[test]
    fn exposure_warning_only_for_open_non_loopback() {
        let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(exposure_warning(addr("127.0.0.1:7878"), None), None);
        assert_eq!(exposure_warning(addr("[::1]:7878"), None), None);
        assert_eq!(exposure_warning(addr("0.0.0.0:7878"), Some("s3cret")), None);
        for open in ["0.0.0.0:7878", "[::]:7878", "192.0.2.1:7878"] {
            let w = exposure_warning(addr(open), None).expect("warns");
            assert!(w.contains(open) && w.contains("without --token"), "{w}");
        }
        assert!(exposure_warning(addr("0.0.0.0:7878"), Some("")).is_some());
    }
}
