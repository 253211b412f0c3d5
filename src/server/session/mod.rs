//! One client's reader thread (`client-N`): reads and frames its bytes,
//! applies the idle timeout, the line deadline (`deadline`) and the line
//! limit, and hands each line to the part of the protocol it belongs to:
//! `auth` (the token), `plain` (the seed's echo protocol) or `chat` (the
//! JSON chat protocol). Replies are written from here; relays to others go
//! through the hub.

mod auth;
mod chat;
mod deadline;
mod plain;
mod tls;

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::{self, Frame, LineFramer, ServerMsg};

use super::Shared;
use super::conn::{Conn, DisconnectReason};
use super::stats::ErrorKind;

use self::deadline::{Expired, LineClock};

/// Read buffer per client.
const READ_BUF: usize = 16 * 1024;
/// Shortest read timeout set: zero would mean "no timeout" to the kernel.
const MIN_READ_TIMEOUT: Duration = Duration::from_millis(1);
/// A line being discarded this many times over the limit is warned about
/// while it still arrives, rather than at a newline that may never come.
const LONG_LINE_WARN_FACTOR: usize = 8;

/// Which protocol a session speaks, decided by its first line.
pub(super) enum Mode {
    /// Nothing read yet (or token accepted, nothing else yet).
    New,
    /// The seed's protocol: every line is echoed.
    Plain,
    /// The JSON chat protocol, as a room member under `name`.
    Chat { name: String },
}

/// The state of one client's session, owned by its reader thread.
pub(super) struct Session {
    sh: Arc<Shared>,
    conn: Arc<Conn>,
    mode: Mode,
    /// The token was given (or none is required).
    authed: bool,
    /// `name@addr` or `addr`, for log lines.
    who: String,
    /// When the frame being handled was taken up: the start of the server's
    /// read-to-reply time.
    handling_since: Instant,
    /// The wall clock (ns since the Unix epoch) when the frame being handled
    /// was taken up, derived from `handling_since` with no clock read of its
    /// own: the time of its `Message Received` line, and with the reply time
    /// added, of its `Message Sent` line.
    read_unix_ns: u64,
    /// `read_unix_ns` in µs, in chat sessions: t2 of the four timestamps, on
    /// the reply and on the relays of the message.
    read_us: i64,
    /// The client was told its current line is too long while it was still
    /// arriving; its end needs no second error.
    warned_long: bool,
    /// Reused buffer for plain replies: no allocation per reply.
    reply_buf: String,
}

impl Session {
    pub(in crate::server) fn new(sh: Arc<Shared>, conn: Arc<Conn>) -> Session {
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
            read_unix_ns: 0,
            read_us: 0,
            reply_buf: String::new(),
        }
    }

    pub(in crate::server) fn run(mut self) {
        if !self.tls_handshake() {
            return;
        }
        let mut framer = LineFramer::new(self.sh.config.max_line);
        let mut buf = vec![0u8; READ_BUF];
        let mut frames = Vec::new();
        let mut last_input = Instant::now();
        let mut clock = LineClock::new(self.sh.line_deadline(), last_input);
        // The socket's receive timeout as last set. Blocking reads with
        // SO_RCVTIMEO instead of poll-then-read save a syscall per message;
        // the timeout changes only when the session's state does. Between
        // lines none is set: the idle timeout is the idle sweep's
        // (`server::idle`), as a timer armed by every read cost the kernel
        // more than the rest of the read.
        let mut armed: Option<Duration> = None;
        loop {
            // The seed's no-newline messages exist only in plain mode; a chat
            // line split across TCP segments must wait for its newline.
            let waiting_partial =
                framer.pending() > 0 && !framer.is_discarding() && self.flushes_partial(&framer);
            // An overlong line whose bytes stopped coming: warn about it.
            let long_pause = framer.is_discarding() && !self.warned_long;
            let want = (waiting_partial || long_pause).then_some(self.sh.config.partial_line_delay);
            // Whatever the session waits for, the read ends by the line's
            // deadline (issue 11).
            let want = clock.cap(want, armed, Instant::now);
            if want != armed {
                let t = want.map(|d| d.max(MIN_READ_TIMEOUT));
                if let Err(e) = self.conn.stream.socket().set_read_timeout(t) {
                    self.conn
                        .close(DisconnectReason::ReadTimeout(e.to_string()));
                    return;
                }
                armed = want;
            }
            let read = self.conn.stream.read(&mut buf);
            if matches!(read, Ok(0) | Err(_)) && self.expired_idle() {
                return;
            }
            let n = match read {
                Ok(0) => {
                    // EOF. A half-closed peer may still wait for the reply to
                    // its last unterminated message (`send` then `shutdown(WR)`);
                    // one the server closed (evicted) gets nothing more.
                    if self.conn.reason().is_none()
                        && let Some(f) = framer.flush()
                    {
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
                    if let Some(e) = clock.expired(Instant::now()) {
                        self.deadline_passed(e);
                        return;
                    }
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
                    continue;
                }
                Err(e) => {
                    self.conn.close(DisconnectReason::read_failure(&e));
                    return;
                }
            };
            last_input = Instant::now();
            self.conn.heard_at(last_input);
            self.sh.counters.traffic.read(n as u64);
            framer.push(&buf[..n], &mut frames);
            if clock.after_read(&buf[..n], !frames.is_empty(), last_input)
                && self.sh.line_deadline().is_some()
                && !self.sh.waiting.first_line(self.conn.id)
            {
                // Evicted for a newcomer just before its first line came.
                return;
            }
            for (i, f) in frames.drain(..).enumerate() {
                // The read's own clock reading serves its first frame: one
                // clock read less per message.
                let at = if i == 0 { last_input } else { Instant::now() };
                if !self.handle_at(f, at) {
                    return;
                }
            }
            // A trickle keeps the read returning before any timeout: the
            // deadline is checked after each read too.
            if let Some(e) = clock.expired(last_input) {
                self.deadline_passed(e);
                return;
            }
            // A line that outgrew the limit gets its error while it is still
            // coming (when it pauses, or once it is far too long), not at a
            // newline that may never come.
            if framer.is_discarding()
                && !self.warned_long
                && framer.pending() / LONG_LINE_WARN_FACTOR >= self.sh.config.max_line
                && !self.warn_long(&framer)
            {
                return;
            }
        }
    }

    /// Whether the idle sweep ended this session's reading (the read that
    /// just returned saw the end or an error because of it); if so, tells
    /// the client why and closes.
    fn expired_idle(&self) -> bool {
        let Some(reason @ DisconnectReason::Idle(_)) = self.conn.reason() else {
            return false;
        };
        self.send_error(&format!("{reason}, closing"));
        self.conn.close(reason);
        true
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

    /// Closes a session whose line (or first line) did not come in time,
    /// telling it why and logging it with its address.
    fn deadline_passed(&mut self, expired: Expired) {
        let (reason, kind) = match expired {
            Expired::Line(t) => (DisconnectReason::LineTimeout(t), ErrorKind::LineTimeout),
            Expired::Hello(t) => (DisconnectReason::HelloTimeout(t), ErrorKind::HelloTimeout),
        };
        let what = format!("{reason}, closing");
        self.sh.error_as(kind, &self.who, &what);
        self.send_error(&what);
        self.conn.close(reason);
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

    /// Handles one frame taken up now; `false` ends the session.
    fn handle(&mut self, frame: Frame) -> bool {
        self.handle_at(frame, Instant::now())
    }

    /// Handles one frame taken up at `at`; `false` ends the session.
    fn handle_at(&mut self, frame: Frame, at: Instant) -> bool {
        self.handling_since = at;
        self.read_unix_ns = crate::eventlog::clock::unix_nanos_at(at);
        self.read_us = (self.read_unix_ns / 1000) as i64;
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

    /// Counts and logs a message (`id` in chat sessions) and, when it was
    /// written, its reply (`reply`, without its newline): both lines in one
    /// append, after the reply, so that no other client's line comes between
    /// them. `Message Received` is stamped when the message was taken up,
    /// `Message Sent` that plus the reply time the histogram counts: the
    /// log's response time is the histogram's, to the microsecond.
    fn log_exchange(&self, id: Option<u64>, text: &str, reply: Option<&str>) {
        use crate::eventlog::{EventKind, LogMessage, clock};
        let received = LogMessage::ServerReceived {
            who: &self.who,
            id,
            text,
        };
        let at = clock::local_unix_nanos(self.read_unix_ns);
        let Some(reply) = reply else {
            self.sh
                .log
                .record_at(EventKind::MessageReceived, at, &received);
            return;
        };
        let took = self.handling_since.elapsed();
        self.sh.counters.traffic.replied(took);
        let done = self.read_unix_ns.saturating_add(took.as_nanos() as u64);
        self.sh.log.record_pair_at(
            (EventKind::MessageReceived, at, &received),
            (
                EventKind::MessageSent,
                clock::local_unix_nanos(done),
                &LogMessage::ServerReplied {
                    who: &self.who,
                    id,
                    text: reply,
                },
            ),
        );
    }

    fn write_plain(&self, bytes: &[u8]) -> bool {
        match self.conn.write_line(bytes) {
            Ok(()) => {
                self.sh.counters.traffic.wrote(bytes.len() as u64);
                true
            }
            Err(e) => {
                self.conn.close(DisconnectReason::write_failure(&e));
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
}
