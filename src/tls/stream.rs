//! The blocking server side of one TLS connection, made for the
//! thread-per-client server: one socket descriptor per client, one rustls
//! [`ServerConnection`], shared by the session's reader thread and its writer
//! thread through `&self` methods. It knows nothing of lines or the chat.
//!
//! # How the reader and the writer share one rustls connection
//!
//! rustls is a state machine without I/O: ciphertext goes in with `read_tls`
//! and `process_new_packets`, plaintext comes out of `reader()`; plaintext
//! goes in with `writer()` and ciphertext comes out of `write_tls`. The state
//! machine sits behind one mutex (`session`), which is only ever held for
//! that in-memory work, never across a system call that can block:
//!
//! - The **reader** first takes any plaintext already decrypted. If there is
//!   none, it releases the lock, blocks in `read(2)` on the socket (honouring
//!   the socket's read timeout, as a plain session does), and then locks again
//!   to hand the raw bytes to rustls and take the plaintext out. Raw bytes that
//!   rustls does not take at once wait in the session for the next call.
//! - A **writer** takes the output lock (`out`) first, then the session lock,
//!   encrypts its bytes and moves the ciphertext into the output buffer,
//!   releases the session lock, and writes the ciphertext to the socket with
//!   only the output lock held. The output lock is taken before the session
//!   lock is released, so records reach the socket in the order their
//!   sequence numbers were given; the session lock is never held in a blocking
//!   write, so a writer stuck on a slow client never stops the reader from
//!   decrypting.
//! - What rustls wants to send by itself (the handshake, a TLS 1.3 key update
//!   answer, an alert, `close_notify`) goes out through the same path: only
//!   then does the reader wait for the output lock, behind a writer that may
//!   be blocked, which is rare and bounded by the socket's write timeout.
//!
//! Lock order is always output, then session, so the two cannot deadlock.
//! A write that failed half-way leaves a torn record on the wire: the stream
//! is then marked broken and every later write fails at once.
//!
//! The handshake ([`TlsStream::handshake`]) runs before the writer thread
//! exists and has a deadline. Its first bytes are checked before rustls sees
//! them: a plain TCP client (text, an HTTP request, a chatmon hello in clear)
//! or garbage gets no TLS alert and no bytes at all, only an error in words
//! for the server's `Error` log line.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

/// Output buffers that grew past this (a huge write) are shrunk back after
/// use, so one burst does not pin memory for the rest of a long session.
const OUT_KEEP: usize = 64 * 1024;

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// A client without TLS: its first bytes are text.
    #[error("not a TLS client: it sent {what}")]
    PlainText {
        /// What the text looks like ("an HTTP request ...").
        what: &'static str,
    },
    /// Binary garbage instead of a ClientHello.
    #[error("not a TLS client: its first bytes ({hex}) are not a TLS ClientHello")]
    NotTls {
        /// The first few bytes, in hex (never text: it could be a secret).
        hex: String,
    },
    /// The handshake did not finish in time (a stalled or half-open client).
    #[error("TLS handshake not finished within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The client hung up before the handshake finished.
    #[error("the client closed the connection during the TLS handshake")]
    ClosedByPeer,
    /// rustls refused the handshake (no common version, bad message, the
    /// client rejected our certificate...).
    #[error("TLS handshake failed: {}", describe_server(.0))]
    Tls(rustls::Error),
    /// The socket failed.
    #[error("TLS handshake failed: {0}")]
    Io(#[source] io::Error),
}

impl HandshakeError {
    /// Whether the peer looks like a plain TCP client that did not speak TLS
    /// at all (for the `Error` log line and its counter).
    pub fn is_plain_tcp(&self) -> bool {
        matches!(self, HandshakeError::PlainText { .. })
    }

    /// Whether the peer is not a TLS client at all (text or garbage).
    pub fn is_not_tls(&self) -> bool {
        matches!(
            self,
            HandshakeError::PlainText { .. } | HandshakeError::NotTls { .. }
        )
    }
}

/// A rustls error on the server's side, in words.
fn describe_server(err: &rustls::Error) -> String {
    use rustls::{AlertDescription, Error};
    match err {
        Error::AlertReceived(
            a @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired),
        ) => format!(
            "the client does not accept this server's certificate (it sent the TLS alert {a:?})"
        ),
        Error::InvalidMessage(why) => format!("the client sent data that is not TLS ({why:?})"),
        other => super::describe_common(other),
    }
}

/// What the first bytes of a connection say about the client.
#[derive(Debug, PartialEq, Eq)]
enum FirstBytes {
    /// A TLS handshake record: hand it to rustls.
    Tls,
    /// Too few bytes to tell.
    NeedMore,
    /// Text: a client without TLS.
    Plain(&'static str),
    /// Neither TLS nor text.
    Garbage,
}

fn classify(b: &[u8]) -> FirstBytes {
    match b {
        [] | [0x16] | [0x16, 0x03] => FirstBytes::NeedMore,
        // A handshake record of TLS 1.0 to 1.3 (a ClientHello's record
        // version is 3.1 for compatibility; 3.0 and 3.4 are tolerated so that
        // rustls, not this check, says what is wrong with them).
        [0x16, 0x03, 0x00..=0x04, ..] => FirstBytes::Tls,
        [first, ..] if first.is_ascii_graphic() || first.is_ascii_whitespace() => {
            FirstBytes::Plain(looks_like(b))
        }
        _ => FirstBytes::Garbage,
    }
}

fn looks_like(b: &[u8]) -> &'static str {
    const HTTP: [&[u8]; 7] = [
        b"GET ",
        b"HEAD ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
    ];
    if HTTP.iter().any(|m| b.starts_with(m)) {
        "an HTTP request (http:// instead of https://?)"
    } else if b.trim_ascii_start().starts_with(b"{") {
        "a chatmon hello in clear text (a client without --tls?)"
    } else {
        "plain text (a client without TLS?)"
    }
}

fn hex_prefix(b: &[u8]) -> String {
    b.iter()
        .take(8)
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rustls state machine and the ciphertext waiting to go into it.
struct Session {
    conn: ServerConnection,
    /// Ciphertext read from the socket that rustls has not taken yet: it
    /// takes one buffer's worth per call and we stop feeding it once it has
    /// plaintext for the caller, so the rest waits here.
    pending: Vec<u8>,
    /// How much of `pending` rustls has taken.
    pos: usize,
    /// The socket reached end of file.
    eof: bool,
    /// The first fatal TLS error, in words: every later read gets it again
    /// instead of blocking on a connection rustls has given up on.
    failed: Option<String>,
}

impl Session {
    /// Hands pending ciphertext to rustls until it is all taken or rustls
    /// has plaintext (or a close) for the caller.
    fn feed(&mut self) -> Result<(), rustls::Error> {
        while self.pos < self.pending.len() {
            let mut rest = &self.pending[self.pos..];
            let n = self
                .conn
                .read_tls(&mut rest)
                .map_err(|e| rustls::Error::General(format!("TLS input refused: {e}")))?;
            if n == 0 {
                // rustls takes nothing more after the peer's close_notify.
                self.pos = self.pending.len();
                break;
            }
            self.pos += n;
            let state = self.conn.process_new_packets()?;
            if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
                break;
            }
        }
        if self.pos == self.pending.len() {
            self.pending.clear();
            self.pos = 0;
        }
        Ok(())
    }

    /// Plaintext for `buf` if there is any to be had without reading the
    /// socket: `Some(Ok(0))` at the end of the stream, `None` when the
    /// caller must read more ciphertext.
    fn take_plaintext(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        if let Some(why) = &self.failed {
            return Some(Err(io::Error::new(io::ErrorKind::InvalidData, why.clone())));
        }
        loop {
            match self.conn.reader().read(buf) {
                // 0: the peer sent close_notify.
                Ok(n) => return Some(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(Err(e)),
            }
            if self.pos < self.pending.len() {
                if let Err(e) = self.feed() {
                    let why = format!("TLS: {}", describe_server(&e));
                    self.failed = Some(why.clone());
                    return Some(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
                }
                continue;
            }
            // A peer that hangs up without close_notify (most clients that
            // just exit, `openssl s_client` included) is an end of stream
            // like a plain client's FIN, not an error.
            return self.eof.then_some(Ok(0));
        }
    }

    /// Moves everything rustls wants to send into `out`.
    fn drain(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(out)?;
        }
        Ok(())
    }
}

/// One client's TLS connection over its one TCP socket, shared by `&self`
/// between the thread that reads and the threads that write (see the module
/// documentation for how).
pub struct TlsStream {
    /// The client's socket: read without any lock held, written under `out`,
    /// shut down from anywhere to wake both.
    sock: TcpStream,
    /// The rustls state; held only for in-memory work.
    session: Mutex<Session>,
    /// The output lock and its reused ciphertext buffer: held from taking
    /// ciphertext out of the session until it is on the socket, so records
    /// go out in order.
    out: Mutex<Vec<u8>>,
    /// A write failed part-way: the peer has a torn record and no later
    /// record can be decrypted, so later writes fail at once.
    broken: AtomicBool,
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("peer", &self.sock.peer_addr().ok())
            .field("broken", &self.broken.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TlsStream {
    /// Wraps an accepted socket; nothing is read or written until
    /// [`handshake`](Self::handshake).
    pub fn new(sock: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
        // Writers drain the ciphertext right after encrypting, so rustls
        // need not bound its buffers (a bound would make writes partial).
        conn.set_buffer_limit(None);
        Ok(TlsStream {
            sock,
            session: Mutex::new(Session {
                conn,
                pending: Vec::new(),
                pos: 0,
                eof: false,
                failed: None,
            }),
            out: Mutex::new(Vec::new()),
            broken: AtomicBool::new(false),
        })
    }

    /// Accepts a TLS client on `sock`: [`new`](Self::new), then
    /// [`handshake`](Self::handshake).
    pub fn accept(
        sock: TcpStream,
        config: Arc<ServerConfig>,
        timeout: Duration,
    ) -> Result<TlsStream, HandshakeError> {
        let s = TlsStream::new(sock, config).map_err(HandshakeError::Io)?;
        s.handshake(timeout)?;
        Ok(s)
    }

    /// Runs the server side of the handshake, giving up after `timeout`.
    /// Garbage or plain text instead of a ClientHello ends it at once without
    /// a byte sent back. Call it once, before any read or write; it leaves
    /// the socket with no read timeout.
    pub fn handshake(&self, timeout: Duration) -> Result<(), HandshakeError> {
        let deadline = Instant::now() + timeout;
        let r = self.handshake_until(deadline, timeout);
        let _ = self.sock.set_read_timeout(None);
        r
    }

    fn handshake_until(&self, deadline: Instant, timeout: Duration) -> Result<(), HandshakeError> {
        let mut buf = vec![0u8; 4096];
        let mut checked = false;
        loop {
            if checked {
                let (progress, flush) = {
                    let mut s = self.lock_session();
                    let progress = s.feed().map(|()| !s.conn.is_handshaking());
                    (progress, s.conn.wants_write())
                };
                if flush {
                    // On an error this sends rustls's alert; a failure to
                    // send it matters less than the error itself.
                    let sent = self.flush();
                    if progress.is_ok() {
                        sent.map_err(HandshakeError::Io)?;
                    }
                }
                match progress {
                    Ok(true) => return Ok(()),
                    Ok(false) => {}
                    Err(e) => {
                        self.lock_session().failed = Some(describe_server(&e));
                        return Err(HandshakeError::Tls(e));
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HandshakeError::Timeout(timeout));
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(HandshakeError::Io)?;
            let n = match (&self.sock).read(&mut buf) {
                Ok(0) => return Err(HandshakeError::ClosedByPeer),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(HandshakeError::Timeout(timeout));
                }
                Err(e) => return Err(HandshakeError::Io(e)),
            };
            let mut s = self.lock_session();
            s.pending.extend_from_slice(&buf[..n]);
            if !checked {
                match classify(&s.pending) {
                    FirstBytes::Tls => checked = true,
                    FirstBytes::NeedMore => {}
                    FirstBytes::Plain(what) => return Err(HandshakeError::PlainText { what }),
                    FirstBytes::Garbage => {
                        return Err(HandshakeError::NotTls {
                            hex: hex_prefix(&s.pending),
                        });
                    }
                }
            }
        }
    }

    /// Reads decrypted bytes, blocking like [`TcpStream::read`] and with its
    /// errors (a read timeout set on [`socket`](Self::socket) gives
    /// `WouldBlock`/`TimedOut`). `Ok(0)` is the end of the stream.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let (got, flush) = {
                let mut s = self.lock_session();
                let got = s.take_plaintext(buf);
                (got, s.conn.wants_write())
            };
            if flush {
                // A key update answer or an alert. If it cannot be sent the
                // stream is broken and the next write says so.
                let sent = self.flush();
                if got.is_none() {
                    sent?;
                }
            }
            if let Some(r) = got {
                return r;
            }
            // Nothing decrypted: wait for ciphertext with no lock held. The
            // caller's buffer holds it until it is copied into the session.
            let n = (&self.sock).read(buf)?;
            let mut s = self.lock_session();
            if n == 0 {
                s.eof = true;
            } else {
                s.pending.extend_from_slice(&buf[..n]);
            }
        }
    }

    /// Encrypts `data` and writes all of it, as [`Write::write_all`] on the
    /// socket would (with its write timeout). Safe to call from several
    /// threads: each call's bytes go out whole and in order.
    pub fn write_all(&self, data: &[u8]) -> io::Result<()> {
        let mut out = self.lock_out();
        {
            let mut s = self.lock_session();
            s.conn.writer().write_all(data)?;
            s.drain(&mut out)?;
        }
        self.send(&mut out)
    }

    /// Sends TLS's `close_notify`, so that the client can tell our close from
    /// a cut connection. Bounded by the socket's write timeout.
    pub fn close_notify(&self) -> io::Result<()> {
        let mut out = self.lock_out();
        {
            let mut s = self.lock_session();
            s.conn.send_close_notify();
            s.drain(&mut out)?;
        }
        self.send(&mut out)
    }

    /// [`close_notify`](Self::close_notify) unless a writer is busy (then the
    /// close goes without it rather than waiting behind a stuck write) or
    /// there is no established session to close.
    /// Returns whether it was sent.
    pub fn try_close_notify(&self) -> bool {
        let Ok(mut out) = self.out.try_lock() else {
            return false;
        };
        {
            let mut s = self.lock_session();
            // Before the handshake there is no session to close, and a
            // plain client must get no bytes at all.
            if s.conn.is_handshaking() || s.failed.is_some() {
                return false;
            }
            s.conn.send_close_notify();
            if s.drain(&mut out).is_err() {
                return false;
            }
        }
        self.send(&mut out).is_ok()
    }

    /// Sends whatever rustls has queued by itself.
    fn flush(&self) -> io::Result<()> {
        let mut out = self.lock_out();
        self.lock_session().drain(&mut out)?;
        self.send(&mut out)
    }

    /// Writes the output buffer to the socket; called with the output lock
    /// held and the session lock released.
    fn send(&self, out: &mut Vec<u8>) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        let r = if self.broken.load(Ordering::Relaxed) {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "an earlier write to this TLS connection failed part-way",
            ))
        } else {
            (&self.sock).write_all(out)
        };
        if r.is_err() {
            self.broken.store(true, Ordering::Relaxed);
        }
        out.clear();
        if out.capacity() > OUT_KEEP {
            out.shrink_to(OUT_KEEP);
        }
        r
    }

    /// The underlying socket, for timeouts, addresses and `shutdown`. Reading
    /// or writing it directly would corrupt the TLS stream.
    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// Shuts the socket down, waking a blocked reader and writer.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.sock.shutdown(how)
    }

    /// The negotiated protocol version and cipher suite, e.g.
    /// `TLS 1.3 TLS13_AES_256_GCM_SHA384`, once the handshake is done.
    pub fn negotiated(&self) -> Option<String> {
        let s = self.lock_session();
        let version = match s.conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_string(),
            other => format!("{other:?}"),
        };
        let suite = s.conn.negotiated_cipher_suite()?;
        Some(format!("{version} {:?}", suite.suite()))
    }

    fn lock_session(&self) -> MutexGuard<'_, Session> {
        // A panic in another thread mid-call leaves rustls as it was between
        // calls; the connection is closed soon anyway.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_out(&self) -> MutexGuard<'_, Vec<u8>> {
        self.out.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Read for &TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TlsStream::read(self, buf)
    }
}

impl Write for &TlsStream {
    /// Writes all of `buf` (a TLS record cannot be half-written and resumed
    /// by the caller, so partial writes are never reported).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        TlsStream::write_all(self, buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A server connection's byte stream, plain or TLS, with the `&self`
/// methods a session's reader and writer threads share. The plain variant is
/// the bare socket, so a server without TLS pays nothing for this.
#[derive(Debug)]
pub enum ServerStream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl ServerStream {
    /// Reads bytes (decrypted ones, with TLS), as [`TcpStream::read`].
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ServerStream::Plain(s) => (&*s).read(buf),
            ServerStream::Tls(s) => s.read(buf),
        }
    }

    /// Writes all of `data`, as [`Write::write_all`] on the socket.
    pub fn write_all(&self, data: &[u8]) -> io::Result<()> {
        match self {
            ServerStream::Plain(s) => (&*s).write_all(data),
            ServerStream::Tls(s) => s.write_all(data),
        }
    }

    /// The socket, for timeouts, options and addresses. Reading or writing
    /// it directly would corrupt a TLS stream.
    pub fn socket(&self) -> &TcpStream {
        match self {
            ServerStream::Plain(s) => s,
            ServerStream::Tls(s) => s.socket(),
        }
    }

    /// Shuts the socket down, waking a blocked reader and writer.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket().shutdown(how)
    }

    /// Whether this connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, ServerStream::Tls(_))
    }

    /// The TLS side, if any (for the handshake and `close_notify`).
    pub fn tls(&self) -> Option<&TlsStream> {
        match self {
            ServerStream::Plain(_) => None,
            ServerStream::Tls(s) => Some(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_support::TestPki;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::thread;

    /// A blocking rustls client connection to `addr`, trusting `pki`'s CA.
    fn client(
        pki: &TestPki,
        addr: std::net::SocketAddr,
    ) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn =
            rustls::ClientConnection::new(pki.client_config(), "localhost".try_into().unwrap())
                .unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }

    fn listener() -> (TcpListener, std::net::SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    #[test]
    fn classify_first_bytes() {
        assert_eq!(classify(b""), FirstBytes::NeedMore);
        assert_eq!(classify(&[0x16, 0x03]), FirstBytes::NeedMore);
        assert_eq!(classify(&[0x16, 0x03, 0x01, 0x02, 0x00]), FirstBytes::Tls);
        assert_eq!(classify(&[0x16, 0x07, 0x01]), FirstBytes::Garbage);
        assert_eq!(classify(&[0x00, 0xff]), FirstBytes::Garbage);
        assert!(
            matches!(classify(b"hello\n"), FirstBytes::Plain(w) if w.starts_with("plain text"))
        );
        assert!(
            matches!(classify(b"GET /metrics HTTP/1.1\r\n"), FirstBytes::Plain(w) if w.contains("HTTP"))
        );
        assert!(
            matches!(classify(b"{\"type\":\"hello\"}"), FirstBytes::Plain(w) if w.contains("hello in clear"))
        );
    }

    #[test]
    fn echo_with_concurrent_reader_and_writer_threads() {
        let pki = TestPki::new();
        let (l, addr) = listener();
        let config = pki.server_config();
        const TICKS: usize = 500;
        const LINES: usize = 300;
        let server = thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            let s = Arc::new(TlsStream::accept(sock, config, Duration::from_secs(10)).unwrap());
            assert!(s.negotiated().unwrap().starts_with("TLS 1.3"));
            // The writer thread: relays, while the reader below replies.
            let w = s.clone();
            let writer = thread::spawn(move || {
                for i in 0..TICKS {
                    w.write_all(format!("tick {i}\n").as_bytes()).unwrap();
                }
            });
            let mut r = BufReader::new(&*s);
            let mut line = String::new();
            let mut n = 0;
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                s.write_all(format!("Server received: {line}").as_bytes())
                    .unwrap();
                n += 1;
            }
            writer.join().unwrap();
            n
        });
        let mut c = client(&pki, addr);
        for i in 0..LINES {
            c.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        c.flush().unwrap();
        let mut ticks = 0;
        let mut replies = 0;
        let mut r = BufReader::new(&mut c);
        let mut line = String::new();
        while ticks < TICKS || replies < LINES {
            line.clear();
            assert!(r.read_line(&mut line).unwrap() > 0, "stream ended early");
            if let Some(t) = line.strip_prefix("tick ") {
                assert_eq!(t.trim_end(), ticks.to_string(), "ticks out of order");
                ticks += 1;
            } else {
                assert_eq!(line, format!("Server received: line {replies}\n"));
                replies += 1;
            }
        }
        c.conn.send_close_notify();
        c.flush().unwrap();
        assert_eq!(server.join().unwrap(), LINES);
    }

    #[test]
    fn a_reader_blocked_in_read_does_not_block_the_writer() {
        let pki = TestPki::new();
        let (l, addr) = listener();
        let config = pki.server_config();
        let server = thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            let s = Arc::new(TlsStream::accept(sock, config, Duration::from_secs(10)).unwrap());
            let r = s.clone();
            // Blocks in read(2): the client sends nothing for now.
            let reader = thread::spawn(move || {
                let mut buf = [0u8; 64];
                let n = r.read(&mut buf).unwrap();
                buf[..n].to_vec()
            });
            thread::sleep(Duration::from_millis(100));
            for i in 0..50 {
                s.write_all(format!("relay {i}\n").as_bytes()).unwrap();
            }
            reader.join().unwrap()
        });
        let mut c = client(&pki, addr);
        let started = Instant::now();
        let mut r = BufReader::new(&mut c);
        let mut line = String::new();
        for i in 0..50 {
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(line, format!("relay {i}\n"));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        c.write_all(b"wake\n").unwrap();
        c.flush().unwrap();
        assert_eq!(server.join().unwrap(), b"wake\n");
    }

    #[test]
    fn large_writes_from_the_client_arrive_whole() {
        // More plaintext than rustls buffers at once (16 KiB): the pending
        // ciphertext must wait in the session, not be refused.
        let pki = TestPki::new();
        let (l, addr) = listener();
        let config = pki.server_config();
        let server = thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            let s = TlsStream::accept(sock, config, Duration::from_secs(10)).unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 100_000];
            loop {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut c = client(&pki, addr);
        c.write_all(&payload).unwrap();
        c.conn.send_close_notify();
        c.flush().unwrap();
        assert_eq!(server.join().unwrap(), payload);
    }

    #[test]
    fn read_timeout_on_the_socket_behaves_as_on_plain_tcp() {
        let pki = TestPki::new();
        let (l, addr) = listener();
        let config = pki.server_config();
        let server = thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            let s = TlsStream::accept(sock, config, Duration::from_secs(10)).unwrap();
            s.socket()
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut buf = [0u8; 16];
            let e = s.read(&mut buf).unwrap_err();
            assert!(matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ));
            s.socket().set_read_timeout(None).unwrap();
            let n = s.read(&mut buf).unwrap();
            // No writer is busy, so the close_notify goes out.
            assert!(s.try_close_notify());
            buf[..n].to_vec()
        });
        let mut c = client(&pki, addr);
        // Finish the handshake, then stay quiet past the server's timeout.
        c.flush().unwrap();
        while c.conn.is_handshaking() {
            c.conn.complete_io(&mut c.sock).unwrap();
        }
        thread::sleep(Duration::from_millis(200));
        c.write_all(b"late").unwrap();
        c.flush().unwrap();
        assert_eq!(server.join().unwrap(), b"late");
        // The server's close_notify ends the client's stream cleanly.
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    fn handshake_error(send: &[u8], timeout: Duration) -> (HandshakeError, Vec<u8>) {
        let pki = TestPki::new();
        let (l, addr) = listener();
        let config = pki.server_config();
        let server = thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            TlsStream::accept(sock, config, timeout).unwrap_err()
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(send).unwrap();
        let e = server.join().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        (e, got)
    }

    #[test]
    fn plain_text_client_gets_nothing_and_a_worded_error() {
        let (e, got) = handshake_error(b"hello\n", Duration::from_secs(5));
        assert!(e.is_plain_tcp(), "{e:?}");
        assert_eq!(
            e.to_string(),
            "not a TLS client: it sent plain text (a client without TLS?)"
        );
        assert!(got.is_empty(), "a plain client must get nothing: {got:?}");
    }

    #[test]
    fn garbage_instead_of_a_client_hello_is_not_tls() {
        let (e, got) = handshake_error(&[0x00, 0x01, 0xfe, 0xff], Duration::from_secs(5));
        assert!(matches!(e, HandshakeError::NotTls { .. }), "{e:?}");
        assert!(e.is_not_tls() && !e.is_plain_tcp());
        assert_eq!(
            e.to_string(),
            "not a TLS client: its first bytes (00 01 fe ff) are not a TLS ClientHello"
        );
        assert!(got.is_empty());
    }

    #[test]
    fn a_broken_client_hello_is_refused_by_rustls() {
        // A handshake record header, then nonsense.
        let mut bad = vec![0x16, 0x03, 0x01, 0x00, 0x05];
        bad.extend_from_slice(&[0xff; 5]);
        let (e, _) = handshake_error(&bad, Duration::from_secs(5));
        assert!(matches!(e, HandshakeError::Tls(_)), "{e:?}");
        assert!(e.to_string().starts_with("TLS handshake failed: "), "{e}");
    }

    #[test]
    fn a_handshake_that_never_finishes_times_out() {
        for send in [&b""[..], &[0x16, 0x03, 0x01, 0x01, 0x00, 0x01][..]] {
            let started = Instant::now();
            let (e, _) = handshake_error(send, Duration::from_millis(300));
            let took = started.elapsed();
            assert!(matches!(e, HandshakeError::Timeout(_)), "{e:?}");
            assert_eq!(e.to_string(), "TLS handshake not finished within 300ms");
            assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5));
        }
    }

    #[test]
    fn client_that_hangs_up_mid_handshake() {
        let pki = TestPki::new();
        let (l, addr) = listener();
        let config = pki.server_config();
        let server = thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            TlsStream::accept(sock, config, Duration::from_secs(5)).unwrap_err()
        });
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&[0x16, 0x03, 0x01]).unwrap();
        drop(c);
        let e = server.join().unwrap();
        assert!(matches!(e, HandshakeError::ClosedByPeer), "{e:?}");
    }

    #[test]
    fn a_client_that_distrusts_the_certificate_is_worded_on_the_server() {
        let pki = TestPki::new();
        let other = TestPki::new();
        let (l, addr) = listener();
        let config = pki.server_config();
        let server = thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            TlsStream::accept(sock, config, Duration::from_secs(5)).unwrap_err()
        });
        // This client trusts another CA.
        let mut c = client(&other, addr);
        assert!(c.write_all(b"x").and_then(|_| c.flush()).is_err());
        let e = server.join().unwrap();
        let text = e.to_string();
        assert!(
            text.contains("does not accept this server's certificate"),
            "{text}"
        );
    }

    #[test]
    fn writes_after_a_failed_write_fail_at_once() {
        let pki = TestPki::new();
        let (l, addr) = listener();
        let config = pki.server_config();
        let server = thread::spawn(move || {
            let (sock, _) = l.accept().unwrap();
            let s = TlsStream::accept(sock, config, Duration::from_secs(10)).unwrap();
            s.socket()
                .set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            // The client never reads: the socket buffers fill up.
            let big = vec![b'x'; 1 << 20];
            let mut failed = false;
            for _ in 0..64 {
                if s.write_all(&big).is_err() {
                    failed = true;
                    break;
                }
            }
            assert!(failed, "writes to a client that never reads must time out");
            let e = s.write_all(b"more\n").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        });
        let mut c = client(&pki, addr);
        c.flush().unwrap();
        while c.conn.is_handshaking() {
            c.conn.complete_io(&mut c.sock).unwrap();
        }
        server.join().unwrap();
    }
}
