//! The server: a listener thread, one named OS thread per client (plus a
//! writer thread per chat client), and the relay hub.
//!
//! # Threads
//! - `chatmon-accept`: accepts, enforces `max_clients`, spawns sessions.
//! - `client-N`: reads client N's lines, writes its replies directly (so a
//!   reply costs no thread hop), and hands relays to other clients' outboxes.
//! - `client-N-out`: drains chat client N's bounded outbox to its socket. A
//!   client that cannot keep up fills its outbox and is disconnected; the
//!   relaying thread never blocks on anyone else's socket.
//! - `chatmon-stats`: periodic `Stats` events.
//!
//! Each client costs one descriptor: the reader and writer share one
//! `Arc<TcpStream>` (`&TcpStream` is both `Read` and `Write`).

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::eventlog::{self, EventKind, EventLog};
use crate::metrics::{ErrorCounts, ErrorKind, ReplyTimes};
use crate::protocol::{
    self, ClientMsg, Frame, LineFramer, PLAIN_AUTH_PREFIX, PROTOCOL_VERSION, ServerMsg,
};
use crate::sys;

/// Stack for a client's reader thread: it parses JSON and formats lines, with
/// buffers on the heap, so 128 KiB is plenty and lets thousands of clients fit.
const READER_STACK: usize = 128 * 1024;
/// Stack for a chat client's writer thread, which only copies bytes.
const WRITER_STACK: usize = 64 * 1024;
/// Read buffer per client.
const READ_BUF: usize = 16 * 1024;

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
}

/// Appended to the welcome's `server` field by an embedded server.
pub const EMBEDDED_MARK: &str = "(in a chat TUI)";

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            .field("max_clients", &self.max_clients)
            .field("max_line", &self.max_line)
            .field("idle_timeout", &self.idle_timeout)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("outbox_len", &self.outbox_len)
            .field("event_backlog", &self.event_backlog)
            .field("write_timeout", &self.write_timeout)
            .field("partial_line_delay", &self.partial_line_delay)
            .field("stats_interval", &self.stats_interval)
            .field("embedded", &self.embedded)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 7878)),
            max_clients: 1024,
            max_line: protocol::DEFAULT_MAX_LINE,
            idle_timeout: Some(Duration::from_secs(600)),
            token: None,
            outbox_len: 4096,
            event_backlog: 1024,
            write_timeout: Duration::from_secs(10),
            partial_line_delay: Duration::from_millis(20),
            stats_interval: Some(Duration::from_secs(10)),
            embedded: false,
        }
    }
}

/// Server-wide counters, read by `Stats` events and by monitoring.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub messages_received: AtomicU64,
    pub replies_sent: AtomicU64,
    pub relayed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub errors: AtomicU64,
    pub events_dropped: AtomicU64,
    pub slow_disconnects: AtomicU64,
    /// `errors` again, split by kind, for the metrics endpoint.
    pub errors_by_kind: ErrorCounts,
    /// Time from handling a message to having written its reply (plain and
    /// chat), for the metrics endpoint: lock-free buckets.
    pub reply_time: ReplyTimes,
}

/// A snapshot of the server's state for monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub clients: usize,
    pub names: Vec<String>,
    pub messages_received: u64,
    pub uptime: Duration,
}

/// Read-only access to a running server's figures, for monitoring. Cheap to
/// clone; every read is an atomic load.
#[derive(Clone)]
pub struct Monitor(Arc<Shared>);

impl Monitor {
    pub fn counters(&self) -> &Counters {
        &self.0.counters
    }

    /// Connections being served (plain and chat).
    pub fn active_clients(&self) -> usize {
        self.0.active.load(Ordering::SeqCst)
    }

    /// Chat sessions in the room.
    pub fn chat_clients(&self) -> usize {
        self.0.hub.member_count.load(Ordering::Relaxed)
    }

    /// Clients subscribed to the event stream.
    pub fn subscribers(&self) -> usize {
        self.0.hub.subscriber_count.load(Ordering::Relaxed)
    }

    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }
}

/// Outbound lines of one chat client. Chat lines must all arrive, so when
/// they overflow the client is evicted; event lines (monitoring) may be lost,
/// so the oldest are dropped and counted instead.
struct Outbox {
    inner: Mutex<OutboxInner>,
    cv: Condvar,
    cap: usize,
    event_cap: usize,
}

#[derive(Default)]
struct OutboxInner {
    lines: VecDeque<Arc<str>>,
    events: VecDeque<Arc<str>>,
    dropped_events: u64,
    closed: bool,
}

impl Outbox {
    fn new(cap: usize, event_cap: usize) -> Self {
        Outbox {
            inner: Mutex::new(OutboxInner::default()),
            cv: Condvar::new(),
            cap,
            event_cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutboxInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a chat line; `false` if the outbox is full (client too slow).
    fn push(&self, line: Arc<str>) -> Push {
        let mut g = self.lock();
        if g.closed {
            return Push::Closed;
        }
        if g.lines.len() >= self.cap {
            return Push::Full;
        }
        g.lines.push_back(line);
        drop(g);
        self.cv.notify_one();
        Push::Queued
    }

    /// Queues an event line, dropping the oldest when full. Returns whether
    /// one was dropped.
    fn push_event(&self, line: Arc<str>) -> bool {
        let mut g = self.lock();
        if g.closed {
            return false;
        }
        let mut dropped = false;
        if g.events.len() >= self.event_cap {
            g.events.pop_front();
            g.dropped_events += 1;
            dropped = true;
        }
        g.events.push_back(line);
        drop(g);
        self.cv.notify_one();
        dropped
    }

    /// Queues a last line (even past the cap) and closes the outbox.
    /// Returns whether it was open.
    fn close_with(&self, last: Option<Arc<str>>) -> bool {
        let mut g = self.lock();
        if let Some(l) = last {
            g.lines.push_back(l);
        }
        let was_open = !std::mem::replace(&mut g.closed, true);
        drop(g);
        self.cv.notify_all();
        was_open
    }

    /// Waits for lines and moves them into `out` as one batch of bytes.
    /// Returns `false` once closed and drained.
    fn take(&self, out: &mut Vec<u8>) -> bool {
        let mut g = self.lock();
        while g.lines.is_empty() && g.events.is_empty() && g.dropped_events == 0 && !g.closed {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        if g.lines.is_empty() && g.events.is_empty() && g.dropped_events == 0 {
            return false;
        }
        if g.dropped_events > 0 {
            let n = std::mem::take(&mut g.dropped_events);
            out.extend_from_slice(protocol::encode(&ServerMsg::Dropped { count: n }).as_bytes());
        }
        while let Some(l) = g.events.pop_front() {
            out.extend_from_slice(l.as_bytes());
        }
        while out.len() < 256 * 1024 {
            match g.lines.pop_front() {
                Some(l) => out.extend_from_slice(l.as_bytes()),
                None => break,
            }
        }
        true
    }
}

/// What became of a line offered to an [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Push {
    Queued,
    /// The client is too slow: its outbox is full.
    Full,
    /// The client is leaving; the line is discarded.
    Closed,
}

/// One connection, shared by its reader thread, its writer thread and the hub.
struct Conn {
    id: u64,
    peer: SocketAddr,
    stream: TcpStream,
    /// Serialises whole-line writes from the reader (replies) and the writer
    /// (relays) so that lines never interleave on the socket.
    write_lock: Mutex<()>,
    /// Why the server closed this connection, if it did.
    close_reason: Mutex<Option<String>>,
}

impl Conn {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let _g = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        (&self.stream).write_all(line)
    }

    /// Closes the socket (waking its reader) and records why, first reason wins.
    fn close(&self, reason: &str) {
        {
            let mut r = self.close_reason.lock().unwrap_or_else(|p| p.into_inner());
            if r.is_none() {
                *r = Some(reason.to_string());
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn reason(&self) -> Option<String> {
        self.close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A member of the room (a chat session).
struct Member {
    name: String,
    conn: Arc<Conn>,
    outbox: Arc<Outbox>,
    /// Its join was announced; only then does the room hear it leave.
    announced: bool,
}

/// Everyone connected, and the chat room.
#[derive(Default)]
struct Hub {
    /// Every live connection, for shutdown notices.
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Chat sessions by connection id.
    members: RwLock<HashMap<u64, Member>>,
    /// Outboxes of clients that subscribed to the event stream.
    subscribers: RwLock<HashMap<u64, Arc<Outbox>>>,
    /// Fast path: skip the subscriber lock when nobody subscribed.
    subscriber_count: AtomicUsize,
    /// Fast path: skip building relay lines when nobody would get them.
    member_count: AtomicUsize,
}

struct Shared {
    config: ServerConfig,
    /// The log, tapped so that every line also goes to subscribers.
    log: EventLog,
    hub: Hub,
    counters: Counters,
    /// Messages per second of the last stats interval (f64 bits), for the
    /// figures a new subscriber gets at once.
    last_rate_bits: AtomicU64,
    stopping: AtomicBool,
    active: AtomicUsize,
    next_id: AtomicU64,
    started: Instant,
    local_addr: SocketAddr,
}

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
    stats: Option<thread::JoinHandle<()>>,
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
        let _ = sys::set_listen_backlog(&listener, config.max_clients.max(128));
        let shared = Arc::new_cyclic(|weak: &std::sync::Weak<Shared>| {
            let w = weak.clone();
            let tap: eventlog::Tap = Arc::new(move |line: &str| {
                if let Some(s) = w.upgrade() {
                    s.broadcast_event(line);
                }
            });
            Shared {
                log: log.with_tap(tap),
                config,
                hub: Hub::default(),
                counters: Counters::default(),
                last_rate_bits: AtomicU64::new(0),
                stopping: AtomicBool::new(false),
                active: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                started: Instant::now(),
                local_addr,
            }
        });
        let token_note = if shared.config.token.is_some() {
            ", token required"
        } else {
            ""
        };
        shared.log.log(
            EventKind::ServerStart,
            &format!(
                "server listening on {local_addr} (max clients {}, max line {} bytes{token_note})",
                shared.config.max_clients, shared.config.max_line
            ),
        );
        let s = shared.clone();
        let accept = thread::Builder::new()
            .name("chatmon-accept".into())
            .spawn(move || accept_loop(s, listener))?;
        let stats = match shared.config.stats_interval {
            Some(every) if !every.is_zero() => {
                let s = shared.clone();
                Some(
                    thread::Builder::new()
                        .name("chatmon-stats".into())
                        .spawn(move || stats_loop(s, every))?,
                )
            }
            _ => None,
        };
        Ok(Server {
            shared,
            accept: Some(accept),
            stats,
        })
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
        if sh.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let conns: Vec<Arc<Conn>> = sh.lock_conns().values().cloned().collect();
        let members: HashMap<u64, Arc<Outbox>> = sh
            .hub
            .members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, m)| (*id, m.outbox.clone()))
            .collect();
        let notice = "server is stopping";
        for c in &conns {
            if let Some(ob) = members.get(&c.id) {
                let line = protocol::encode(&ServerMsg::Shutdown {
                    message: notice.into(),
                });
                let _ = ob.close_with(Some(line.into()));
            } else {
                // Plain sessions: a short timeout, so one stuck peer cannot
                // hold up the others' goodbye; and no goodbye at all if its
                // thread is already blocked writing to a peer that stopped
                // reading (the close below wakes that write at once).
                let _ = c.stream.set_write_timeout(Some(Duration::from_millis(200)));
                if let Ok(_g) = c.write_lock.try_lock() {
                    let _ = (&c.stream).write_all(b"Server is stopping. Goodbye.\n");
                }
                c.close("server stopping");
            }
        }
        let deadline = Instant::now() + grace;
        while sh.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        for c in sh.lock_conns().values() {
            c.close("server stopping");
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        while sh.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if let Some(s) = self.stats.take() {
            let _ = s.join();
        }
        let c = &sh.counters;
        sh.log.log(
            EventKind::ServerStop,
            &format!(
                "server stopped after {:.1}s: {} connections, {} messages received, {} replies sent",
                sh.started.elapsed().as_secs_f64(),
                c.accepted.load(Ordering::Relaxed),
                c.messages_received.load(Ordering::Relaxed),
                c.replies_sent.load(Ordering::Relaxed),
            ),
        );
        sh.log.flush();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A server dropped without shutdown (a test that panicked, a TUI that
        // quit) still closes its sockets and says goodbye.
        self.stop(Duration::from_millis(500));
    }
}

impl Shared {
    fn lock_conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.hub.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn members(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, Member>> {
        self.hub.members.read().unwrap_or_else(|p| p.into_inner())
    }

    fn members_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u64, Member>> {
        self.hub.members.write().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot(&self) -> Snapshot {
        let mut names: Vec<String> = self.members().values().map(|m| m.name.clone()).collect();
        names.sort();
        Snapshot {
            clients: self.active.load(Ordering::SeqCst),
            names,
            messages_received: self.counters.messages_received.load(Ordering::Relaxed),
            uptime: self.started.elapsed(),
        }
    }

    /// The server's figures as a `stats` message for subscribers.
    fn stats_msg(&self) -> Arc<str> {
        let snap = self.snapshot();
        protocol::encode(&ServerMsg::Stats {
            clients: snap.clients,
            names: snap.names,
            msgs_per_sec: f64::from_bits(self.last_rate_bits.load(Ordering::Relaxed)),
            uptime_secs: snap.uptime.as_secs(),
        })
        .into()
    }

    /// Sends one log line to every subscriber; never blocks on any of them.
    fn broadcast_event(&self, line: &str) {
        if self.hub.subscriber_count.load(Ordering::Relaxed) == 0 {
            return;
        }
        let msg: Arc<str> = protocol::encode(&ServerMsg::Event {
            line: line.trim_end_matches('\n').to_string(),
        })
        .into();
        let subs = self
            .hub
            .subscribers
            .read()
            .unwrap_or_else(|p| p.into_inner());
        for ob in subs.values() {
            if ob.push_event(msg.clone()) {
                self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues `line` to every member but `except`, evicting those too slow to
    /// take it. Never blocks on a socket.
    fn relay(&self, line: Arc<str>, except: Option<u64>) {
        self.relay_where(line, |id| Some(id) != except);
    }

    /// Queues `line` to the members `to` picks, as [`Shared::relay`] does.
    fn relay_where(&self, line: Arc<str>, to: impl Fn(u64) -> bool) {
        let mut slow: Vec<Arc<Conn>> = Vec::new();
        let mut n = 0u64;
        {
            let members = self.members();
            for (id, m) in members.iter() {
                if !to(*id) {
                    continue;
                }
                match m.outbox.push(line.clone()) {
                    Push::Queued => n += 1,
                    // Closing the outbox makes later relays skip this
                    // client, so it is evicted (and counted) once.
                    Push::Full if m.outbox.close_with(None) => slow.push(m.conn.clone()),
                    Push::Full | Push::Closed => {}
                }
            }
        }
        self.counters.relayed.fetch_add(n, Ordering::Relaxed);
        for c in slow {
            self.counters
                .slow_disconnects
                .fetch_add(1, Ordering::Relaxed);
            c.close(&format!(
                "too slow: {} lines waiting to be sent",
                self.config.outbox_len
            ));
        }
    }

    /// Counts an error (in total and by kind, for the metrics) and logs it.
    fn error_as(&self, kind: ErrorKind, who: &str, what: &str) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.counters.errors_by_kind.inc(kind);
        self.log
            .log(EventKind::Error, &format!("server: {who}: {what}"));
    }
}

fn accept_loop(sh: Arc<Shared>, listener: TcpListener) {
    let mut backoff = Duration::from_millis(5);
    let mut in_error_burst = false;
    while !sh.stopping.load(Ordering::SeqCst) {
        // Poll with a timeout so that shutdown never waits on a blocked accept.
        match sys::wait_readable(&listener, Some(Duration::from_millis(100))) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => {
                thread::sleep(backoff);
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                in_error_burst = false;
                backoff = Duration::from_millis(5);
                admit(&sh, stream, peer);
            }
            Err(e) => {
                // EMFILE, ENFILE, ECONNABORTED, EINTR...: transient. Log once
                // per burst, back off, go on; the accept loop never dies.
                if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::WouldBlock {
                    continue;
                }
                if !in_error_burst {
                    in_error_burst = true;
                    sh.error_as(
                        ErrorKind::Accept,
                        "accept",
                        &format!("cannot accept connections: {e}; retrying"),
                    );
                }
                thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn admit(sh: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    if sh.active.load(Ordering::SeqCst) >= sh.config.max_clients {
        sh.counters.refused.fetch_add(1, Ordering::Relaxed);
        // Non-blocking: the accept loop must never wait on a refused peer.
        let _ = stream.set_nonblocking(true);
        let msg = format!(
            "Error: server is full ({} clients), try again later\n",
            sh.config.max_clients
        );
        let _ = (&stream).write(msg.as_bytes());
        let _ = stream.shutdown(Shutdown::Both);
        sh.error_as(
            ErrorKind::Refused,
            &peer.to_string(),
            &format!(
                "refused: server is full ({} clients)",
                sh.config.max_clients
            ),
        );
        return;
    }
    let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_write_timeout(Some(sh.config.write_timeout));
    if let Some(idle) = sh.config.idle_timeout {
        let _ = sys::set_keepalive(&stream, idle.min(Duration::from_secs(60)));
    }
    let conn = Arc::new(Conn {
        id,
        peer,
        stream,
        write_lock: Mutex::new(()),
        close_reason: Mutex::new(None),
    });
    sh.active.fetch_add(1, Ordering::SeqCst);
    sh.counters.accepted.fetch_add(1, Ordering::Relaxed);
    sh.lock_conns().insert(id, conn.clone());
    sh.log
        .log(EventKind::Connection, &format!("server: {peer} connected"));
    let s = sh.clone();
    let c = conn.clone();
    let spawned = thread::Builder::new()
        .name(format!("client-{id}"))
        .stack_size(READER_STACK)
        .spawn(move || {
            let _guard = SessionGuard {
                sh: s.clone(),
                conn: c.clone(),
            };
            Session::new(s, c).run();
        });
    if let Err(e) = spawned {
        let _ = conn.write_line(b"Error: server cannot take more clients right now\n");
        conn.close("no thread for it");
        sh.lock_conns().remove(&id);
        sh.active.fetch_sub(1, Ordering::SeqCst);
        sh.error_as(
            ErrorKind::Thread,
            &peer.to_string(),
            &format!("cannot start a thread: {e}"),
        );
    }
}

/// Ends a session whatever way its thread ends (even by panic): leaves the
/// room, closes the socket, logs the disconnection, frees the slot.
struct SessionGuard {
    sh: Arc<Shared>,
    conn: Arc<Conn>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let sh = &self.sh;
        let id = self.conn.id;
        let member = sh.members_mut().remove(&id);
        if member.is_some() {
            sh.hub.member_count.fetch_sub(1, Ordering::Relaxed);
        }
        if sh
            .hub
            .subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
            .is_some()
        {
            sh.hub.subscriber_count.fetch_sub(1, Ordering::Relaxed);
        }
        sh.lock_conns().remove(&id);
        let reason = self
            .conn
            .reason()
            .unwrap_or_else(|| "closed by peer".to_string());
        let who = match &member {
            Some(m) => format!("{}@{}", m.name, self.conn.peer),
            None => self.conn.peer.to_string(),
        };
        if let Some(m) = &member {
            let _ = m.outbox.close_with(None);
        }
        let _ = self.conn.stream.shutdown(Shutdown::Both);
        sh.log.log(
            EventKind::Disconnection,
            &format!("server: {who} disconnected ({reason})"),
        );
        if let Some(m) = member
            && m.announced
            && !sh.stopping.load(Ordering::SeqCst)
        {
            let users = sh.hub.member_count.load(Ordering::Relaxed);
            let line = protocol::encode(&ServerMsg::Leave {
                name: m.name,
                users,
                reason,
            });
            sh.relay(line.into(), Some(id));
        }
        sh.active.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Mode {
    /// Nothing read yet (or token accepted, nothing else yet).
    New,
    Plain,
    Chat {
        name: String,
    },
}

struct Session {
    sh: Arc<Shared>,
    conn: Arc<Conn>,
    mode: Mode,
    authed: bool,
    /// `name@addr` or `addr`, for log lines.
    who: String,
    /// When the frame being handled was taken up: the start of the server's
    /// read-to-reply time.
    handling_since: Instant,
    /// The client was told its current line is too long while it was still
    /// arriving; its end needs no second error.
    warned_long: bool,
    /// Reused buffer for plain replies: no allocation per reply.
    reply_buf: String,
}

impl Session {
    fn new(sh: Arc<Shared>, conn: Arc<Conn>) -> Session {
        let authed = sh.config.token.is_none();
        let who = conn.peer.to_string();
        Session {
            sh,
            conn,
            mode: Mode::New,
            authed,
            who,
            warned_long: false,
            handling_since: Instant::now(),
            reply_buf: String::new(),
        }
    }

    fn run(mut self) {
        let mut framer = LineFramer::new(self.sh.config.max_line);
        let mut buf = vec![0u8; READ_BUF];
        let mut frames = Vec::new();
        let mut last_input = Instant::now();
        // The socket's receive timeout as last set. Blocking reads with
        // SO_RCVTIMEO instead of poll-then-read save a syscall per message;
        // the timeout changes only when the session's state does.
        let mut armed: Option<Duration> = None;
        // Set after an idle timeout fired early (input came meanwhile): the
        // timeout then holds the rest of the idle time, not all of it.
        let mut armed_rest = false;
        loop {
            // The seed's no-newline messages exist only in plain mode; a chat
            // line split across TCP segments must wait for its newline.
            let waiting_partial =
                framer.pending() > 0 && !framer.is_discarding() && self.flushes_partial(&framer);
            // An overlong line whose bytes stopped coming: warn about it.
            let long_pause = framer.is_discarding() && !self.warned_long;
            let want = if waiting_partial || long_pause {
                Some(self.sh.config.partial_line_delay)
            } else if armed_rest {
                armed
            } else {
                self.sh.config.idle_timeout
            };
            if want != armed {
                let t = want.map(|d| d.max(Duration::from_millis(1)));
                if let Err(e) = self.conn.stream.set_read_timeout(t) {
                    self.conn.close(&format!("cannot set a read timeout: {e}"));
                    return;
                }
                armed = want;
            }
            let n = match (&self.conn.stream).read(&mut buf) {
                Ok(0) => {
                    // EOF. A half-closed peer may still wait for the reply to
                    // its last unterminated message (`send` then `shutdown(WR)`).
                    if let Some(f) = framer.flush() {
                        self.handle(f);
                    }
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if waiting_partial {
                        if let Some(f) = framer.flush()
                            && !self.handle(f)
                        {
                            return;
                        }
                        continue;
                    }
                    if long_pause && !self.warn_long(&framer) {
                        return;
                    }
                    if let Some(idle) = self.sh.config.idle_timeout {
                        let quiet = last_input.elapsed();
                        if quiet >= idle {
                            let idle = humantime::format_duration(idle);
                            self.send_error(&format!("idle for {idle}, closing"));
                            self.conn.close(&format!("idle for {idle}"));
                            return;
                        }
                        armed_rest = true;
                        let rest = Some(idle - quiet);
                        let t = rest.map(|d| d.max(Duration::from_millis(1)));
                        if self.conn.stream.set_read_timeout(t).is_ok() {
                            armed = rest;
                        }
                    }
                    continue;
                }
                Err(e) => {
                    let reason = match e.kind() {
                        io::ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
                        _ => format!("read failed: {e}"),
                    };
                    self.conn.close(&reason);
                    return;
                }
            };
            armed_rest = false;
            last_input = Instant::now();
            self.sh
                .counters
                .bytes_in
                .fetch_add(n as u64, Ordering::Relaxed);
            framer.push(&buf[..n], &mut frames);
            for f in frames.drain(..) {
                if !self.handle(f) {
                    return;
                }
            }
            // A line that outgrew the limit gets its error while it is still
            // coming (when it pauses, or once it is far too long), not at a
            // newline that may never come.
            if framer.is_discarding()
                && !self.warned_long
                && framer.pending() / 8 >= self.sh.config.max_line
                && !self.warn_long(&framer)
            {
                return;
            }
        }
    }

    /// Whether an unterminated line counts as a message after a pause: in
    /// plain sessions, and before the first line unless it starts like a
    /// hello (a chat client's hello split across segments must not become a
    /// plain message).
    fn flushes_partial(&self, framer: &LineFramer) -> bool {
        match self.mode {
            Mode::Plain => true,
            Mode::Chat { .. } => false,
            Mode::New => !framer.pending_bytes().trim_ascii_start().starts_with(b"{"),
        }
    }

    /// Tells the client its current line is over the limit and being
    /// discarded; `false` ends the session.
    fn warn_long(&mut self, framer: &LineFramer) -> bool {
        self.warned_long = true;
        let msg = format!(
            "line of {} bytes so far is longer than the limit of {} bytes; discarding it up to its newline",
            framer.pending(),
            self.sh.config.max_line
        );
        self.sh.error_as(ErrorKind::LineTooLong, &self.who, &msg);
        self.send_error(&msg)
    }

    /// Handles one frame; `false` ends the session.
    fn handle(&mut self, frame: Frame) -> bool {
        self.handling_since = Instant::now();
        let line = match frame {
            Frame::TooLong { .. } if self.warned_long => {
                // Already told while it was arriving.
                self.warned_long = false;
                return true;
            }
            Frame::TooLong { len } => {
                let msg = format!(
                    "line of {len} bytes is longer than the limit of {} bytes; discarded",
                    self.sh.config.max_line
                );
                self.sh.error_as(ErrorKind::LineTooLong, &self.who, &msg);
                return self.send_error(&msg);
            }
            Frame::Line(l) => l,
        };
        if !self.authed {
            return self.authenticate(&line);
        }
        match self.mode {
            Mode::New => {
                if protocol::looks_like_hello(&line) {
                    return self.hello(&line);
                }
                if protocol::is_chat_before_hello(&line) {
                    // A chat client that skipped its hello: say so in its
                    // words and let it try again, rather than echo its JSON.
                    let msg = "send a hello first: {\"type\":\"hello\",\"v\":1,\"name\":\"...\"}";
                    self.sh
                        .error_as(ErrorKind::Malformed, &self.who, "chat message before hello");
                    return self.write_msg(&ServerMsg::Error {
                        message: msg.into(),
                    });
                }
                self.mode = Mode::Plain;
                self.plain(&line)
            }
            Mode::Plain => self.plain(&line),
            Mode::Chat { .. } => self.chat(&line),
        }
    }

    fn authenticate(&mut self, line: &[u8]) -> bool {
        let Some(expected) = self.sh.config.token.as_deref() else {
            self.authed = true;
            return true;
        };
        let (given, is_hello) = if protocol::looks_like_hello(line) {
            match protocol::decode::<ClientMsg>(line) {
                Ok(ClientMsg::Hello { token, .. }) => (token.unwrap_or_default(), true),
                _ => (String::new(), true),
            }
        } else {
            let text = String::from_utf8_lossy(line);
            let t = text
                .strip_prefix(PLAIN_AUTH_PREFIX)
                .unwrap_or("")
                .to_string();
            (t, false)
        };
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            self.authed = true;
            if is_hello {
                return self.hello(line);
            }
            self.mode = Mode::Plain;
            return self.write_plain(b"Authenticated.\n");
        }
        let msg = match (given.is_empty(), is_hello) {
            (false, _) => "wrong token",
            (true, true) => {
                "this server requires a token: give chatmon chat --token (or CHATMON_TOKEN)"
            }
            (true, false) => {
                "this server requires a token: send `AUTH <token>` first (chat clients: --token)"
            }
        };
        // The token itself is never logged, only that it was wrong.
        self.sh.error_as(
            ErrorKind::Auth,
            &self.who,
            &format!("authentication failed: {msg}"),
        );
        if is_hello {
            // A chat client reads JSON, even before its welcome.
            let _ = self.write_msg(&ServerMsg::Error {
                message: msg.into(),
            });
        } else {
            self.send_error(msg);
        }
        self.conn.close("authentication failed");
        false
    }

    fn plain(&mut self, line: &[u8]) -> bool {
        let text = match protocol::as_utf8(line) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("{e}; discarded");
                self.sh.error_as(ErrorKind::InvalidUtf8, &self.who, &msg);
                return self.send_error(&msg);
            }
        };
        if let Err(e) = protocol::check_text(text) {
            let msg = format!("{e}; discarded");
            self.sh.error_as(ErrorKind::Malformed, &self.who, &msg);
            return self.send_error(&msg);
        }
        let c = &self.sh.counters;
        c.messages_received.fetch_add(1, Ordering::Relaxed);
        let now = eventlog::now();
        self.sh.log.log_args(
            EventKind::MessageReceived,
            now,
            format_args!("server <- {}: {text}", self.who),
        );
        let mut reply = std::mem::take(&mut self.reply_buf);
        reply.clear();
        reply.push_str(protocol::REPLY_PREFIX);
        reply.push_str(text);
        reply.push('\n');
        let written = self.write_plain(reply.as_bytes());
        if written {
            c.reply_time.observe(self.handling_since.elapsed());
            c.replies_sent.fetch_add(1, Ordering::Relaxed);
            self.sh.log.log_args(
                EventKind::MessageSent,
                eventlog::now(),
                format_args!("server -> {}: {}", self.who, reply.trim_end_matches('\n')),
            );
        }
        self.reply_buf = reply;
        if !written {
            return false;
        }
        if self.sh.hub.member_count.load(Ordering::Relaxed) > 0 {
            let line = protocol::encode(&ServerMsg::Chat {
                from: self.who.clone(),
                text: text.to_string(),
                ts: eventlog::format_time(now),
            });
            self.sh.relay(line.into(), Some(self.conn.id));
        }
        true
    }

    fn write_plain(&self, bytes: &[u8]) -> bool {
        match self.conn.write_line(bytes) {
            Ok(()) => {
                self.sh
                    .counters
                    .bytes_out
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.conn.close(&write_failure(&e));
                false
            }
        }
    }

    fn write_msg(&self, msg: &ServerMsg) -> bool {
        self.write_plain(protocol::encode(msg).as_bytes())
    }

    /// Tells the client something went wrong, in its mode's words.
    fn send_error(&self, message: &str) -> bool {
        match self.mode {
            Mode::Chat { .. } => self.write_msg(&ServerMsg::Error {
                message: message.to_string(),
            }),
            _ => self.write_plain(format!("Error: {message}\n").as_bytes()),
        }
    }

    fn hello(&mut self, line: &[u8]) -> bool {
        let (v, wanted, subscribe) = match protocol::decode::<ClientMsg>(line) {
            Ok(ClientMsg::Hello {
                v, name, subscribe, ..
            }) => (v, name, subscribe),
            Ok(_) | Err(_) => {
                // Looked like a hello but is not one: answer in chat words,
                // since that is what the client tried to speak.
                let msg = "first message must be a valid hello: {\"type\":\"hello\",\"v\":1,\"name\":\"...\"}";
                self.sh
                    .error_as(ErrorKind::Malformed, &self.who, "malformed hello");
                let _ = self.write_msg(&ServerMsg::Error {
                    message: msg.into(),
                });
                self.conn.close("malformed hello");
                return false;
            }
        };
        if v != PROTOCOL_VERSION {
            let msg = format!(
                "protocol version {v} is not supported (this server speaks {PROTOCOL_VERSION})"
            );
            self.sh
                .error_as(ErrorKind::ProtocolVersion, &self.who, &msg);
            let _ = self.write_msg(&ServerMsg::Error { message: msg });
            self.conn.close("unsupported protocol version");
            return false;
        }
        if let Err(why) = protocol::validate_name(&wanted) {
            let msg = format!("invalid name: {why}");
            self.sh.error_as(ErrorKind::InvalidName, &self.who, &msg);
            let _ = self.write_msg(&ServerMsg::Error { message: msg });
            self.conn.close("invalid name");
            return false;
        }
        let outbox = Arc::new(Outbox::new(
            self.sh.config.outbox_len,
            self.sh.config.event_backlog,
        ));
        // Relays may reach the outbox as soon as we are a member, but its
        // writer thread starts only after the welcome is written, so the
        // welcome is always the first line the client reads.
        // Who was in the room before us: only they hear that we joined.
        // Whoever joins after us has us in their welcome already, and a
        // Join relayed to them too would count us twice.
        let (name, users, before) = {
            let mut members = self.sh.members_mut();
            let before: std::collections::HashSet<u64> = members.keys().copied().collect();
            let name = unique_name(&members, &wanted, None);
            members.insert(
                self.conn.id,
                Member {
                    name: name.clone(),
                    conn: self.conn.clone(),
                    outbox: outbox.clone(),
                    announced: false,
                },
            );
            let mut users: Vec<String> = members.values().map(|m| m.name.clone()).collect();
            users.sort();
            (name, users, before)
        };
        self.sh.hub.member_count.fetch_add(1, Ordering::Relaxed);
        self.mode = Mode::Chat { name: name.clone() };
        self.who = format!("{name}@{}", self.conn.peer);
        let n_users = users.len();
        // Subscribe before the welcome, so that a client that has read its
        // welcome knows every event from then on reaches it (queued events
        // wait for the writer thread, which starts after the welcome).
        if subscribe {
            self.set_subscribed(true, &outbox);
        }
        if !self.write_msg(&ServerMsg::Welcome {
            name: name.clone(),
            users,
            server: if self.sh.config.embedded {
                format!("chatmon {} {EMBEDDED_MARK}", env!("CARGO_PKG_VERSION"))
            } else {
                format!("chatmon {}", env!("CARGO_PKG_VERSION"))
            },
        }) {
            return false;
        }
        let c = self.conn.clone();
        let ob = outbox.clone();
        let sh = self.sh.clone();
        let spawned = thread::Builder::new()
            .name(format!("client-{}-out", self.conn.id))
            .stack_size(WRITER_STACK)
            .spawn(move || writer_loop(sh, c, ob));
        if let Err(e) = spawned {
            self.sh.error_as(
                ErrorKind::Thread,
                &self.who,
                &format!("cannot start a writer thread: {e}"),
            );
            self.send_error("server cannot take more chat clients right now");
            self.conn.close("no thread for it");
            return false;
        }
        self.sh.log.log(
            EventKind::Join,
            &format!("server: {} joined the room as {name}", self.conn.peer),
        );
        self.sh.relay_where(
            protocol::encode(&ServerMsg::Join {
                name,
                users: n_users,
            })
            .into(),
            |id| before.contains(&id),
        );
        if let Some(m) = self.sh.members_mut().get_mut(&self.conn.id) {
            m.announced = true;
        }
        true
    }

    fn set_subscribed(&self, on: bool, outbox: &Arc<Outbox>) {
        // A new subscriber sees the server's figures at once rather than at
        // the next stats interval (or never, with stats off). Built before
        // taking the subscribers lock: the snapshot takes the members lock.
        let figures = on.then(|| self.sh.stats_msg());
        let mut subs = self
            .sh
            .hub
            .subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let changed = if on {
            subs.insert(self.conn.id, outbox.clone()).is_none()
        } else {
            subs.remove(&self.conn.id).is_some()
        };
        if changed {
            if on {
                self.sh.hub.subscriber_count.fetch_add(1, Ordering::Relaxed);
                if let Some(f) = figures {
                    outbox.push_event(f);
                }
            } else {
                self.sh.hub.subscriber_count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn chat(&mut self, line: &[u8]) -> bool {
        let msg = match protocol::decode::<ClientMsg>(line) {
            Ok(m) => m,
            Err(e) => {
                let m = e.to_string();
                let kind = match e {
                    protocol::ProtocolError::InvalidUtf8 { .. } => ErrorKind::InvalidUtf8,
                    protocol::ProtocolError::Malformed(_) => ErrorKind::Malformed,
                };
                self.sh.error_as(kind, &self.who, &m);
                return self.send_error(&m);
            }
        };
        match msg {
            ClientMsg::Msg { id, text } => self.chat_msg(id, text),
            ClientMsg::Nick { name } => self.nick(name),
            ClientMsg::Subscribe { on } => {
                let outbox = self
                    .sh
                    .members()
                    .get(&self.conn.id)
                    .map(|m| m.outbox.clone());
                if let Some(ob) = outbox {
                    self.set_subscribed(on, &ob);
                }
                true
            }
            ClientMsg::Ping => true,
            ClientMsg::Hello { .. } => {
                self.sh
                    .error_as(ErrorKind::Malformed, &self.who, "second hello refused");
                self.send_error("already said hello")
            }
        }
    }

    fn chat_msg(&mut self, id: u64, text: String) -> bool {
        let Mode::Chat { name } = &self.mode else {
            return true;
        };
        if let Err(e) = protocol::check_text(&text) {
            let msg = format!("message #{id} refused: {e}");
            self.sh.error_as(ErrorKind::Malformed, &self.who, &msg);
            return self.send_error(&msg);
        }
        let c = &self.sh.counters;
        c.messages_received.fetch_add(1, Ordering::Relaxed);
        let now = eventlog::now();
        self.sh.log.log_args(
            EventKind::MessageReceived,
            now,
            format_args!("server <- {} #{id}: {text}", self.who),
        );
        let reply_text = protocol::reply_text(&text);
        if !self.write_msg(&ServerMsg::Reply {
            id,
            text: reply_text.clone(),
        }) {
            return false;
        }
        c.reply_time.observe(self.handling_since.elapsed());
        c.replies_sent.fetch_add(1, Ordering::Relaxed);
        self.sh.log.log_args(
            EventKind::MessageSent,
            eventlog::now(),
            format_args!("server -> {} #{id}: {reply_text}", self.who),
        );
        // Alone in the room: no relay line to build.
        if self.sh.hub.member_count.load(Ordering::Relaxed) > 1 {
            let line = protocol::encode(&ServerMsg::Chat {
                from: name.clone(),
                text,
                ts: eventlog::format_time(now),
            });
            self.sh.relay(line.into(), Some(self.conn.id));
        }
        true
    }

    fn nick(&mut self, wanted: String) -> bool {
        let Mode::Chat { name: old } = &self.mode else {
            return true;
        };
        let old = old.clone();
        if let Err(why) = protocol::validate_name(&wanted) {
            let msg = format!("invalid name: {why}");
            self.sh.error_as(
                ErrorKind::InvalidName,
                &self.who,
                &format!("nick refused: {msg}"),
            );
            return self.send_error(&msg);
        }
        let new = {
            let mut members = self.sh.members_mut();
            let new = unique_name(&members, &wanted, Some(self.conn.id));
            if let Some(m) = members.get_mut(&self.conn.id) {
                m.name = new.clone();
            }
            new
        };
        if new == old {
            return true;
        }
        self.mode = Mode::Chat { name: new.clone() };
        self.who = format!("{new}@{}", self.conn.peer);
        self.sh.log.log(
            EventKind::Join,
            &format!("server: {old}@{} is now known as {new}", self.conn.peer),
        );
        // Everyone, the renamed client included, learns the new name.
        self.sh
            .relay(protocol::encode(&ServerMsg::Nick { old, new }).into(), None);
        true
    }
}

fn writer_loop(sh: Arc<Shared>, conn: Arc<Conn>, outbox: Arc<Outbox>) {
    let mut batch = Vec::with_capacity(4096);
    while outbox.take(&mut batch) {
        match conn.write_line(&batch) {
            Ok(()) => {
                sh.counters
                    .bytes_out
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
            }
            Err(e) => {
                conn.close(&write_failure(&e));
                return;
            }
        }
    }
    // Closed and drained: if this was the shutdown notice, end the session.
    if sh.stopping.load(Ordering::SeqCst) {
        conn.close("server stopping");
    }
}

fn write_failure(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            "not reading: a write made no progress before the timeout".to_string()
        }
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
            "connection reset by peer".to_string()
        }
        _ => format!("write failed: {e}"),
    }
}

/// `wanted`, or `wanted-2`, `wanted-3`... whichever is free (compared by
/// [`protocol::name_key`], so that `Alice` or a Cyrillic `аlice` cannot pass
/// for `alice`).
fn unique_name(members: &HashMap<u64, Member>, wanted: &str, me: Option<u64>) -> String {
    // One pass to collect the keys, then cheap probes: this runs under the
    // room's write lock, so it must not be quadratic in the room's size.
    let taken: std::collections::HashSet<String> = members
        .iter()
        .filter(|(id, _)| Some(**id) != me)
        .map(|(_, m)| protocol::name_key(&m.name))
        .collect();
    if !taken.contains(&protocol::name_key(wanted)) {
        return wanted.to_string();
    }
    let base: String = wanted.chars().take(protocol::MAX_NAME_LEN - 6).collect();
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken.contains(&protocol::name_key(n)))
        .unwrap_or_else(|| base.clone())
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

/// Compares secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

fn stats_loop(sh: Arc<Shared>, every: Duration) {
    let c = &sh.counters;
    // The counters start at zero with the server, and this thread may get
    // its first time slice only after the first messages: start from zero,
    // not from whatever the counters hold by then.
    let (mut last_msgs, mut last_in, mut last_out, mut last_err) = (0, 0, 0, 0);
    let mut last = sh.started;
    loop {
        // Sleep in small steps so that shutdown is never held up.
        let until = last + every;
        let mut stopping = false;
        while Instant::now() < until {
            if sh.stopping.load(Ordering::SeqCst) {
                stopping = true;
                break;
            }
            thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        let now = Instant::now();
        let secs = now.duration_since(last).as_secs_f64().max(1e-9);
        last = now;
        let msgs = c.messages_received.load(Ordering::Relaxed);
        let bin = c.bytes_in.load(Ordering::Relaxed);
        let bout = c.bytes_out.load(Ordering::Relaxed);
        let err = c.errors.load(Ordering::Relaxed);
        // At shutdown, a last (shorter) interval: without it, the messages
        // since the last Stats line would be missing from the log's totals.
        if stopping && msgs == last_msgs && bin == last_in && err == last_err {
            return;
        }
        let rate = (msgs - last_msgs) as f64 / secs;
        sh.last_rate_bits.store(rate.to_bits(), Ordering::Relaxed);
        sh.log.log(
            EventKind::Stats,
            &format!(
                "server: clients={} messages={} rate={rate:.1}/s bytes_in={} bytes_out={} errors={} interval={secs:.1}s",
                sh.active.load(Ordering::SeqCst),
                msgs - last_msgs,
                bin - last_in,
                bout - last_out,
                err - last_err,
            ),
        );
        if stopping {
            return;
        }
        if sh.hub.subscriber_count.load(Ordering::Relaxed) > 0 {
            let line = sh.stats_msg();
            let subs = sh.hub.subscribers.read().unwrap_or_else(|p| p.into_inner());
            for ob in subs.values() {
                if ob.push_event(line.clone()) {
                    c.events_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        (last_msgs, last_in, last_out, last_err) = (msgs, bin, bout, err);
    }
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

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn outbox_evicts_chat_but_drops_events() {
        let ob = Outbox::new(2, 2);
        assert_eq!(ob.push("a\n".into()), Push::Queued);
        assert_eq!(ob.push("b\n".into()), Push::Queued);
        assert_eq!(ob.push("c\n".into()), Push::Full);
        assert!(!ob.push_event("e1\n".into()));
        assert!(!ob.push_event("e2\n".into()));
        assert!(ob.push_event("e3\n".into()));
        let mut out = Vec::new();
        assert!(ob.take(&mut out));
        let s = String::from_utf8(out).expect("utf8");
        assert!(s.starts_with("{\"type\":\"dropped\",\"count\":1}\n"), "{s}");
        assert!(s.ends_with("e2\ne3\na\nb\n"), "{s}");
        assert!(ob.close_with(None));
        assert!(!ob.close_with(None), "closing twice reports it was closed");
        assert_eq!(ob.push("late\n".into()), Push::Closed);
        let mut out = Vec::new();
        assert!(!ob.take(&mut out));
    }
}
