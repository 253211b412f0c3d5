//! The connection task: connect, hello, read and write until the connection
//! ends, then back off and reconnect; every outcome becomes a
//! [`ClientEvent`] for the UI and, where the log has one, a log line.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::eventlog::{self, EventKind, EventLog, LogMessage};
use crate::protocol::{self, ClientMsg, Frame, LineFramer, PROTOCOL_VERSION, ServerMsg};
use crate::timing;
use crate::tls::client::{ClientStream, ClientWriter, TlsConnectError};

mod incoming;
mod latency;
mod plain;

pub use self::plain::PLAIN_SERVER;

use super::clock::ClockState;
use super::probe::Prober;
use super::rtt::RttTracker;
use super::{ClientConfig, ClientEvent, Command, DisconnectKind};

struct Task {
    config: ClientConfig,
    log: EventLog,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    evt_tx: mpsc::UnboundedSender<ClientEvent>,
    /// Messages waiting for a connection, oldest first.
    queued: VecDeque<(u64, String)>,
    rtt: RttTracker,
    /// Clock offset to the server of the current connection.
    clock: ClockState,
    /// Speak the seed's plain protocol: asked for (`--plain`), or the server
    /// answered our hello as a plain server would. Kept for reconnects.
    plain: bool,
    /// Our name as the server knows it (or as we want it, before the welcome).
    name: String,
    subscribe: bool,
    quit: bool,
    /// The latency probes; `None` when they are off.
    probes: Option<Prober>,
    /// The server of this connection refused a probe as an unknown
    /// message (a chatmon from before probes): none go out until the next
    /// connection.
    probes_refused: bool,
}

/// Why a connection ended. Its `Display` is the reason the UI shows (and the
/// client's `Disconnection` log line carries), so the texts must not change.
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("cannot connect to {server}: {error}")]
    Connect { server: String, error: io::Error },
    #[error("connection to {server} failed: {error}")]
    Hello { server: String, error: io::Error },
    #[error("the server closed the connection")]
    Closed,
    #[error("connection lost: {0}")]
    Io(io::Error),
    /// The server said it is stopping, with these words.
    #[error("{}", stopping(.0))]
    Stopping(String),
    #[error("{server} does not speak the chat protocol (it said: {said})")]
    NotChat { server: String, said: String },
    #[error("the server refused us: {0}")]
    RefusedBy(String),
    /// The TLS handshake failed: the certificate, or no TLS at all.
    #[error("TLS with {server}: {error}")]
    Tls {
        server: String,
        error: TlsConnectError,
    },
}

impl ConnError {
    /// The kind the UI acts on.
    fn kind(&self) -> DisconnectKind {
        match self {
            ConnError::Connect { error, .. }
                if error.kind() == io::ErrorKind::ConnectionRefused =>
            {
                DisconnectKind::ConnectRefused
            }
            ConnError::Connect { .. } => DisconnectKind::ConnectFailed,
            ConnError::Hello { .. } | ConnError::Closed | ConnError::Io(_) => DisconnectKind::Lost,
            ConnError::Stopping(_) => DisconnectKind::ServerStopping,
            ConnError::NotChat { .. } | ConnError::RefusedBy(_) => DisconnectKind::Refused,
            // A certificate does not fix itself in a second: back off longer.
            ConnError::Tls { .. } => DisconnectKind::Refused,
        }
    }

    /// The server refused us for a reason retrying will not fix soon.
    fn is_refusal(&self) -> bool {
        self.kind() == DisconnectKind::Refused
    }
}

enum SessionEnd {
    Ended(ConnError),
    /// The server answered the hello with `Server received: ...`: a
    /// seed-style server. Reconnect at once in a plain session.
    Plain,
    Quit,
}

pub(super) async fn run(
    config: ClientConfig,
    log: EventLog,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    evt_tx: mpsc::UnboundedSender<ClientEvent>,
) {
    let mut t = Task {
        name: config.name.clone(),
        subscribe: config.subscribe,
        plain: config.plain,
        config,
        log,
        cmd_rx,
        evt_tx,
        queued: VecDeque::new(),
        rtt: RttTracker::default(),
        clock: ClockState::default(),
        quit: false,
        probes: None,
        probes_refused: false,
    };
    t.probes = Prober::new(t.config.probe_every, Instant::now());
    let mut attempt: u32 = 0;
    while !t.quit {
        attempt += 1;
        t.emit(ClientEvent::Connecting { attempt });
        let end = match TcpStream::connect(&t.config.server).await {
            Ok(stream) => match t.open(stream).await {
                Err(e) => SessionEnd::Ended(e),
                Ok(stream) => {
                    let end = if t.plain {
                        t.plain_session(stream).await
                    } else {
                        t.session(stream).await
                    };
                    if matches!(&end, SessionEnd::Ended(e) if !e.is_refusal()) {
                        // We were connected, so the next failure starts a fresh
                        // backoff rather than continuing an old one.
                        attempt = 1;
                    }
                    end
                }
            },
            Err(error) => SessionEnd::Ended(ConnError::Connect {
                server: t.config.server.clone(),
                error,
            }),
        };
        let (error, base) = match end {
            SessionEnd::Quit => break,
            SessionEnd::Plain => {
                t.plain = true;
                attempt = 0;
                continue;
            }
            SessionEnd::Ended(e) if e.is_refusal() => (e, REFUSED_BACKOFF_STEPS),
            SessionEnd::Ended(e) => (e, 0),
        };
        // Whatever was in flight is now unknown: say so instead of waiting.
        t.probes_lost_with_connection();
        for id in t.rtt.drain() {
            t.emit(ClientEvent::Undelivered {
                id,
                reason: "connection lost before the reply; it may not have arrived".into(),
            });
        }
        let retry_in = backoff(attempt + base);
        t.emit(ClientEvent::Disconnected {
            reason: error.to_string(),
            kind: error.kind(),
            retry_in,
        });
        t.wait_commands(retry_in).await;
    }
    for (id, _) in std::mem::take(&mut t.queued) {
        t.emit(ClientEvent::Undelivered {
            id,
            reason: "quit before it could be sent".into(),
        });
    }
    t.log.flush();
    t.emit(ClientEvent::Closed);
}

/// First reconnect delay.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Doublings of the reconnect delay before it stops growing.
const BACKOFF_DOUBLINGS: u32 = 6;
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Extra backoff steps after a refusal: retrying at once will not help.
const REFUSED_BACKOFF_STEPS: u32 = 5;
/// Read buffer of the connection.
const READ_BUF: usize = 16 * 1024;
/// How often replies are checked for their timeout.
const EXPIRY_TICK: Duration = Duration::from_millis(250);
/// Shortest ping period, whatever the configuration says.
const MIN_PING_EVERY: Duration = Duration::from_millis(100);
/// Shortest probe period, whatever the configuration says.
const MIN_PROBE_EVERY: Duration = Duration::from_millis(10);
/// What a server that does not know probes says of one (serde's words for
/// an unknown `type`).
const PROBE_REFUSED: &str = "unknown variant `probe`";
/// Characters of a non-chat server's first line quoted in the error.
const QUOTE_CHARS: usize = 80;

/// Backoff before reconnect attempt `n`: 100 ms doubling, capped at 5 s.
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(BACKOFF_DOUBLINGS);
    BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX)
}

impl Task {
    fn emit(&self, e: ClientEvent) {
        let _ = self.evt_tx.send(e);
    }

    fn peer(&self) -> &str {
        &self.config.server
    }

    /// While disconnected: queue messages, obey quit, for `wait`.
    async fn wait_commands(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(Command::Quit) => { self.quit = true; return; }
                    Some(Command::Send { id, text }) => self.queue(id, text),
                    Some(Command::Nick(n)) => self.name = n,
                    Some(Command::Subscribe(on)) => self.subscribe = on,
                },
            }
        }
    }

    fn queue(&mut self, id: u64, text: String) {
        if self.queued.len() >= self.config.max_queued {
            self.emit(ClientEvent::Undelivered {
                id,
                reason: format!(
                    "not sent: {} messages already wait for the connection",
                    self.config.max_queued
                ),
            });
            return;
        }
        self.queued.push_back((id, text));
        self.emit(ClientEvent::Queued { id });
    }

    /// The connection as the session speaks it: TLS when asked for, with
    /// a handshake failure in words in the log (the UI gets it as the
    /// disconnection reason).
    async fn open(&mut self, stream: TcpStream) -> Result<ClientStream, ConnError> {
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.config.tls else {
            return Ok(ClientStream::Plain(stream));
        };
        match tls.open(stream, self.config.reply_timeout).await {
            Ok(s) => Ok(s),
            Err(error) => {
                let e = ConnError::Tls {
                    server: self.peer().to_string(),
                    error,
                };
                self.log.record(
                    EventKind::Error,
                    &LogMessage::ClientError {
                        name: &self.name,
                        what: &e.to_string(),
                    },
                );
                Err(e)
            }
        }
    }

    async fn session(&mut self, stream: ClientStream) -> SessionEnd {
        self.probes_refused = false;
        self.clock.reset();
        let (mut rd, mut wr) = stream.into_split();
        let hello = protocol::encode(&ClientMsg::Hello {
            v: PROTOCOL_VERSION,
            name: self.name.clone(),
            token: self.config.token.clone(),
            subscribe: self.subscribe,
        });
        if let Err(e) = send_bytes(&mut wr, hello.as_bytes()).await {
            // Not logged as a disconnection: we never were connected.
            return SessionEnd::Ended(ConnError::Hello {
                server: self.peer().to_string(),
                error: e,
            });
        }
        let mut framer = LineFramer::new(self.config.max_line);
        let mut frames = Vec::new();
        let mut buf = vec![0u8; READ_BUF];
        let mut welcomed = false;
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let every = self.config.ping_every.max(MIN_PING_EVERY);
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first probe goes out as soon as we are welcomed.
        let mut probe = tokio::time::interval(self.config.probe_every.max(MIN_PROBE_EVERY));
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = rd.read(&mut buf) => {
                    let n = match r {
                        Ok(0) => return self.lost(ConnError::Closed),
                        Ok(n) => n,
                        Err(e) => return self.lost(ConnError::Io(e)),
                    };
                    let now = Instant::now();
                    // t4 of every reply in this read, beside `now`.
                    let wall = timing::wall_micros();
                    framer.push(&buf[..n], &mut frames);
                    for f in frames.drain(..) {
                        let line = match f {
                            Frame::Line(l) => l,
                            Frame::TooLong { len } => {
                                self.error(&format!("ignored a {len}-byte line from the server (too long)"));
                                continue;
                            }
                        };
                        let msg = match protocol::decode::<ServerMsg>(&line) {
                            Ok(m) => m,
                            Err(e) => {
                                // A plain-mode server (or something else) answered.
                                let text = String::from_utf8_lossy(&line);
                                if !welcomed && line.starts_with(protocol::REPLY_PREFIX.as_bytes()) {
                                    return SessionEnd::Plain;
                                }
                                if !welcomed {
                                    return SessionEnd::Ended(ConnError::NotChat {
                                        server: self.peer().to_string(),
                                        said: truncate(&text, QUOTE_CHARS),
                                    });
                                }
                                self.error(&format!("ignored a line the server sent: {e}"));
                                continue;
                            }
                        };
                        if !welcomed {
                            match msg {
                                ServerMsg::Welcome { name, users, server, embedded } => {
                                    welcomed = true;
                                    self.name = name.clone();
                                    self.log.record(EventKind::Connection, &LogMessage::ClientConnected {
                                        name: &name,
                                        server: self.peer(),
                                        users: users.len(),
                                    });
                                    self.emit(ClientEvent::Connected { name, users, server, embedded, plain: false });
                                    // Deliver what was typed while we were away.
                                    while let Some((id, text)) = self.queued.pop_front() {
                                        if let Err(e) = self.send_msg(&mut wr, id, text).await {
                                            return self.lost(e);
                                        }
                                    }
                                }
                                ServerMsg::Error { message } => {
                                    return SessionEnd::Ended(ConnError::RefusedBy(message));
                                }
                                ServerMsg::Shutdown { message } => {
                                    return self.lost(ConnError::Stopping(message));
                                }
                                _ => {}
                            }
                            continue;
                        }
                        if let Some(end) = self.on_message(msg, now, wall) {
                            return end;
                        }
                    }
                }
                cmd = self.cmd_rx.recv() => {
                    let r = match cmd {
                        None | Some(Command::Quit) => {
                            self.quitting();
                            let _ = wr.shutdown().await;
                            return SessionEnd::Quit;
                        }
                        Some(Command::Send { id, text }) => {
                            if welcomed {
                                self.send_msg(&mut wr, id, text).await
                            } else {
                                self.queue(id, text);
                                Ok(())
                            }
                        }
                        // The name changes when the server confirms it (it may
                        // make it unique), in on_message.
                        Some(Command::Nick(n)) => write_msg(&mut wr, &ClientMsg::Nick { name: n }).await,
                        Some(Command::Subscribe(on)) => {
                            self.subscribe = on;
                            write_msg(&mut wr, &ClientMsg::Subscribe { on }).await
                        }
                    };
                    if let Err(e) = r {
                        return self.lost(e);
                    }
                }
                _ = tick.tick() => {
                    // A seed-style server that answered the hello without a
                    // newline: its line never ends, but its prefix says enough.
                    if !welcomed && framer.pending_bytes().starts_with(protocol::REPLY_PREFIX.as_bytes()) {
                        return SessionEnd::Plain;
                    }
                    for id in self.rtt.expire(Instant::now(), self.config.reply_timeout) {
                        self.emit(ClientEvent::TimedOut { id });
                    }
                    if welcomed && self.clock.wants_probe()
                        && let Err(e) = self.ping(&mut wr).await
                    {
                        return self.lost(e);
                    }
                    self.expire_probes(Instant::now());
                }
                _ = probe.tick(), if welcomed && self.probes.is_some() && !self.probes_refused => {
                    if let Err(e) = self.send_probe(&mut wr).await {
                        return self.lost(e);
                    }
                }
                _ = ping.tick(), if welcomed => {
                    if let Err(e) = self.ping(&mut wr).await {
                        return self.lost(e);
                    }
                }
            }
        }
    }

    /// The user quit: logged once, whichever kind of session it was.
    fn quitting(&mut self) {
        self.quit = true;
        self.log.record(
            EventKind::Disconnection,
            &LogMessage::ClientDisconnected {
                name: &self.name,
                server: self.peer(),
                reason: "quit",
            },
        );
    }

    fn lost(&self, reason: ConnError) -> SessionEnd {
        self.log.record(
            EventKind::Disconnection,
            &LogMessage::ClientDisconnected {
                name: &self.name,
                server: self.peer(),
                reason: &reason.to_string(),
            },
        );
        SessionEnd::Ended(reason)
    }

    fn error(&self, what: &str) {
        self.log.record(
            EventKind::Error,
            &LogMessage::ClientError {
                name: &self.name,
                what,
            },
        );
        self.emit(ClientEvent::ServerError(what.to_string()));
    }

    async fn send_msg(
        &mut self,
        wr: &mut ClientWriter,
        id: u64,
        text: String,
    ) -> Result<(), ConnError> {
        // Stamp right before the write (and the encoding, which carries the
        // stamp): the round trip starts when the bytes go to the socket, not
        // when the user pressed Enter. The wall clock
        // (t1) goes into the message, with our offset estimate, so that
        // whoever receives the relay can work out its one-way delay.
        let at = Instant::now();
        let sent_us = timing::wall_micros();
        let estimate = self.clock.estimate(at);
        let line = protocol::encode(&ClientMsg::Msg {
            id,
            text: text.clone(),
            sent_us: Some(sent_us),
            offset_us: estimate.map(|o| o.offset_us),
            bound_us: estimate.map(|o| o.bound_us),
        });
        // The log line carries the same moment, so that it sorts before the
        // server's `Message Received` for it.
        let wall = eventlog::now();
        if let Err(e) = send_bytes(wr, line.as_bytes()).await {
            // Not written: keep it for the next connection.
            self.queued.push_front((id, text));
            self.emit(ClientEvent::Queued { id });
            return Err(ConnError::Io(e));
        }
        self.rtt.sent(id, at, sent_us);
        self.log.record_at(
            EventKind::MessageSent,
            wall,
            &LogMessage::ClientSent {
                name: &self.name,
                server: self.peer(),
                id,
                text: &text,
            },
        );
        self.emit(ClientEvent::Sent { id });
        Ok(())
    }
}

async fn write_msg(wr: &mut ClientWriter, msg: &ClientMsg) -> Result<(), ConnError> {
    send_bytes(wr, protocol::encode(msg).as_bytes())
        .await
        .map_err(ConnError::Io)
}

/// Writes all of `bytes` and flushes: a TLS record that did not fit in the
/// socket would otherwise wait in rustls until the next write (a no-op for a
/// plain socket).
async fn send_bytes(wr: &mut ClientWriter, bytes: &[u8]) -> io::Result<()> {
    wr.write_all(bytes).await?;
    wr.flush().await
}

/// Words for a server's shutdown notice, without saying it twice: chatmon's
/// own notice is [`protocol::SHUTDOWN_NOTICE`].
fn stopping(message: &str) -> String {
    if message == protocol::SHUTDOWN_NOTICE {
        format!("the {message}")
    } else {
        format!("the server is stopping ({message})")
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(30), Duration::from_millis(5000));
    }
}
