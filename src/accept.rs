//! The accept loop shared by the chat listener and the metrics endpoint:
//! shutdown-aware, and it treats `accept` failures (EMFILE, ENFILE,
//! ECONNABORTED, EINTR...) as transient, backing off instead of dying
//! (tiny_http died of each: #283, #195). It knows nothing of what is served.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::shutdown::Shutdown;
use crate::sys;

/// How long one wait for a connection lasts before the loop looks at the
/// shutdown signal again: std cannot interrupt a blocked `accept`.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// First pause after a failed `accept`; it doubles per failure in a row.
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_millis(5);
/// Longest pause between failed `accept`s.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What a listener does with what the loop accepts.
pub(crate) trait Accept {
    /// Called before each wait for a connection; it may block (a full
    /// endpoint waits for a free slot), and should return soon after the
    /// shutdown signal.
    fn ready(&mut self, _shutdown: &Shutdown) {}

    /// A new connection.
    fn accepted(&mut self, stream: TcpStream, peer: SocketAddr);

    /// `accept` failed; `first` is true for the first failure of a burst (so
    /// that it is reported once, not once per retry).
    fn failed(&mut self, _error: &io::Error, _first: bool) {}
}

/// Accepts until `shutdown` is triggered.
pub(crate) fn run(listener: &TcpListener, shutdown: &Shutdown, handler: &mut impl Accept) {
    let mut backoff = BACKOFF_FIRST;
    let mut in_error_burst = false;
    while !shutdown.is_triggered() {
        handler.ready(shutdown);
        if shutdown.is_triggered() {
            break;
        }
        // Poll with a timeout so that shutdown never waits on a blocked accept.
        match sys::wait_readable(listener, Some(POLL)) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => {
                shutdown.wait_timeout(backoff);
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                in_error_burst = false;
                backoff = BACKOFF_FIRST;
                handler.accepted(stream, peer);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => {
                handler.failed(&e, !in_error_burst);
                in_error_burst = true;
                shutdown.wait_timeout(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}
