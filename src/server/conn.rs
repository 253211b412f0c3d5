//! One connection as its reader, its writer and the hub share it: the socket,
//! whole-line writes that never interleave, and why the server closed it
//! ([`DisconnectReason`], the words in the `Disconnection` log line and in
//! the room's `leave` notice).

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::tls::stream::ServerStream;

/// Why a session ended. Its `Display` is the text users see in the log and in
/// `leave` notices, so it must not change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DisconnectReason {
    #[error("server stopping")]
    ServerStopping,
    /// The peer closed (or the session ended without another reason).
    #[error("closed by peer")]
    ClosedByPeer,
    #[error("no thread for it")]
    NoThread,
    #[error("authentication failed")]
    AuthFailed,
    #[error("malformed hello")]
    MalformedHello,
    #[error("unsupported protocol version")]
    UnsupportedVersion,
    #[error("invalid name")]
    InvalidName,
    /// Silent for longer than the idle timeout.
    #[error("idle for {}", humantime::format_duration(*.0))]
    Idle(Duration),
    /// A line (begun, or a first line owed since the accept) was not
    /// finished within the line timeout.
    #[error("line not finished within {}", humantime::format_duration(*.0))]
    LineTimeout(Duration),
    /// Connected and sent nothing within the line timeout.
    #[error("no line within {} of connecting", humantime::format_duration(*.0))]
    HelloTimeout(Duration),
    /// Closed to make room for a newcomer while the server was full: it had
    /// waited this long without a complete first line.
    #[error("evicted to make room: no complete line after {:.1}s", .0.as_secs_f64())]
    Evicted(Duration),
    /// Its outbox of this many lines filled up.
    #[error("too slow: {0} lines waiting to be sent")]
    TooSlow(usize),
    #[error("not reading: a write made no progress before the timeout")]
    NotReading,
    #[error("connection reset by peer")]
    Reset,
    #[error("write failed: {0}")]
    WriteFailed(String),
    #[error("read failed: {0}")]
    ReadFailed(String),
    #[error("cannot set a read timeout: {0}")]
    ReadTimeout(String),
    /// The TLS handshake failed; the words say how.
    #[error("{0}")]
    Tls(String),
}

impl DisconnectReason {
    /// The reason for a failed write.
    pub(crate) fn write_failure(e: &io::Error) -> DisconnectReason {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => DisconnectReason::NotReading,
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => DisconnectReason::Reset,
            _ => DisconnectReason::WriteFailed(e.to_string()),
        }
    }

    /// The reason for a failed read.
    pub(crate) fn read_failure(e: &io::Error) -> DisconnectReason {
        match e.kind() {
            io::ErrorKind::ConnectionReset => DisconnectReason::Reset,
            _ => DisconnectReason::ReadFailed(e.to_string()),
        }
    }
}

/// One connection, shared by its reader thread, its writer thread and the hub.
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    /// The socket, bare or with its TLS session (one descriptor either way).
    pub(crate) stream: ServerStream,
    /// Serialises whole-line writes from the reader (replies) and the writer
    /// (relays) so that lines never interleave on the socket.
    pub(crate) write_lock: Mutex<()>,
    /// Why the server closed this connection, if it did.
    close_reason: Mutex<Option<DisconnectReason>>,
    /// When the connection was accepted: the origin of `last_input_ms`.
    born: Instant,
    /// When its reader last read a byte, in ms since `born`: for the idle
    /// sweep (`server::idle`). Written only by the reader, next to the write
    /// lock its replies take anyway, so that a read costs a plain store.
    last_input_ms: AtomicU64,
}

impl Conn {
    pub(crate) fn new(id: u64, peer: SocketAddr, stream: ServerStream) -> Conn {
        Conn {
            id,
            peer,
            stream,
            write_lock: Mutex::new(()),
            close_reason: Mutex::new(None),
            born: Instant::now(),
            last_input_ms: AtomicU64::new(0),
        }
    }

    /// Notes that the reader read something at `at`.
    pub(crate) fn heard_at(&self, at: Instant) {
        // Rounded up: a truncated time would make the silence look up to a
        // millisecond longer than it is, and the sweep close that early.
        let ns = at.saturating_duration_since(self.born).as_nanos();
        let ms = ns.div_ceil(1_000_000) as u64;
        self.last_input_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has been silent at `now` (since its accept
    /// when it never spoke), to the millisecond.
    pub(crate) fn quiet_for(&self, now: Instant) -> Duration {
        let last = self.born + Duration::from_millis(self.last_input_ms.load(Ordering::Relaxed));
        now.saturating_duration_since(last)
    }

    /// Ends the connection's reading for `reason` (first reason wins) and
    /// wakes its reader, which sees the reason and says goodbye itself: the
    /// caller never writes to the socket, so it never waits on the peer.
    pub(crate) fn expire(&self, reason: DisconnectReason) {
        {
            let mut r = self.close_reason.lock().unwrap_or_else(|p| p.into_inner());
            if r.is_some() {
                return;
            }
            *r = Some(reason);
        }
        let _ = self.stream.shutdown(Shutdown::Read);
    }

    pub(crate) fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let _g = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.stream.write_all(line)
    }

    /// Closes the socket (waking its reader) and records why, first reason wins.
    pub(crate) fn close(&self, reason: DisconnectReason) {
        {
            let mut r = self.close_reason.lock().unwrap_or_else(|p| p.into_inner());
            if r.is_none() {
                *r = Some(reason);
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    pub(crate) fn reason(&self) -> Option<DisconnectReason> {
        self.close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_never_overstated() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let s = std::net::TcpStream::connect(addr).expect("connect");
        let conn = Conn::new(1, addr, ServerStream::Plain(s));
        let at = conn.born + Duration::from_micros(2_500);
        conn.heard_at(at);
        // Stored as 3 ms, not 2: at most a millisecond short, never long.
        let quiet = conn.quiet_for(at + Duration::from_millis(300));
        assert!(quiet <= Duration::from_millis(300), "{quiet:?}");
        assert!(quiet >= Duration::from_millis(299), "{quiet:?}");
    }

    #[test]
    fn reasons_read_as_before() {
        assert_eq!(
            DisconnectReason::Idle(Duration::from_secs(90)).to_string(),
            "idle for 1m 30s"
        );
        assert_eq!(
            DisconnectReason::TooSlow(4096).to_string(),
            "too slow: 4096 lines waiting to be sent"
        );
        assert_eq!(
            DisconnectReason::LineTimeout(Duration::from_secs(10)).to_string(),
            "line not finished within 10s"
        );
        assert_eq!(
            DisconnectReason::HelloTimeout(Duration::from_millis(2500)).to_string(),
            "no line within 2s 500ms of connecting"
        );
        assert_eq!(
            DisconnectReason::Evicted(Duration::from_millis(640)).to_string(),
            "evicted to make room: no complete line after 0.6s"
        );
        let e = io::Error::new(io::ErrorKind::TimedOut, "x");
        assert_eq!(
            DisconnectReason::write_failure(&e).to_string(),
            "not reading: a write made no progress before the timeout"
        );
        let e = io::Error::new(io::ErrorKind::BrokenPipe, "x");
        assert_eq!(DisconnectReason::write_failure(&e), DisconnectReason::Reset);
    }
}
