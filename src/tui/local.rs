//! When this chat TUI runs the server itself: at launch when nothing listens
//! at the loopback address it was given, and later when the embedded server
//! it used (in another TUI) went away. It owns that server and stops it; it
//! knows nothing of the screen (the run loop turns its outcomes into
//! notices).

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::eventlog::EventLog;
use crate::server::{Server, ServerConfig};

/// How long a probe of the address may take before "something listens".
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the server may take to stop when the TUI quits.
const STOP_WAIT: Duration = Duration::from_secs(1);
/// The status bar's note while this process runs the server.
pub(crate) const NOTE: &str = "local server (in this process)";

/// The server this process may run, and the policy for starting it.
pub(crate) struct LocalServer {
    /// The address the user gave; the server binds it when it is loopback.
    addr: String,
    /// The TUI's log, which the server writes too.
    log: EventLog,
    /// `--no-auto-server` turns all of this off.
    enabled: bool,
    running: Option<Server>,
}

/// A start that was tried.
pub(crate) enum Started {
    Yes,
    /// It was tried and failed; the error is for the user.
    Failed(io::Error),
}

impl LocalServer {
    pub(crate) fn new(addr: &str, log: &EventLog, enabled: bool) -> LocalServer {
        LocalServer {
            addr: addr.to_string(),
            log: log.clone(),
            enabled,
            running: None,
        }
    }

    #[cfg(test)]
    fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// At launch: starts a server when nothing listens at a loopback
    /// address. `None` when no start was tried.
    pub(crate) fn start_if_nothing_listens(&mut self) -> Option<Started> {
        if !self.enabled || !nothing_listens(&self.addr) {
            return None;
        }
        Some(self.start())
    }

    /// The server we used went away because the TUI that ran it quit: if we
    /// may, take over on the same loopback address. Not when a `chatmon
    /// serve` went away (`embedded` false): its address stays free for its
    /// restart. `None` when no start was tried; a start that lost the race
    /// to another TUI is not a failure (we connect to that one).
    pub(crate) fn take_over(&mut self, refused: bool, embedded: bool) -> Option<Started> {
        if !self.enabled || !embedded || self.running.is_some() || !refused {
            return None;
        }
        match self.start() {
            Started::Failed(e) if e.kind() == ErrorKind::AddrInUse => None,
            s => Some(s),
        }
    }

    fn start(&mut self) -> Started {
        let started = loopback_addr(&self.addr)
            .ok_or_else(|| io::Error::other("not a loopback address"))
            .and_then(|bind| {
                Server::start(
                    ServerConfig {
                        bind,
                        embedded: true,
                        ..ServerConfig::default()
                    },
                    self.log.clone(),
                )
            });
        match started {
            Ok(s) => {
                self.running = Some(s);
                Started::Yes
            }
            Err(e) => Started::Failed(e),
        }
    }

    /// Stops the server if this process runs one.
    pub(crate) fn stop(self) {
        if let Some(s) = self.running {
            s.shutdown(STOP_WAIT);
        }
    }
}

/// Whether `addr` is a loopback address where nothing accepts connections.
fn nothing_listens(addr: &str) -> bool {
    let Some(sa) = loopback_addr(addr) else {
        return false;
    };
    matches!(
        TcpStream::connect_timeout(&sa, PROBE_TIMEOUT),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

fn loopback_addr(addr: &str) -> Option<SocketAddr> {
    let sa = addr.to_socket_addrs().ok()?.next()?;
    sa.ip().is_loopback().then_some(sa)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn only_a_free_loopback_address_counts_as_nothing_listening() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = l.local_addr().unwrap().to_string();
        assert!(!nothing_listens(&busy));
        drop(l);
        assert!(nothing_listens(&busy));
        assert!(loopback_addr("192.0.2.1:7878").is_none());
        assert!(!nothing_listens("192.0.2.1:7878"));
    }

    #[test]
    fn a_start_that_fails_says_why() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let mut local = LocalServer::new(&addr, &EventLog::null(), true);
        // At launch the address is taken: nothing is tried.
        assert!(local.start_if_nothing_listens().is_none());
        // A failure other than a lost race is reported.
        let mut remote = LocalServer::new("192.0.2.1:7878", &EventLog::null(), true);
        match remote.start() {
            Started::Failed(e) => assert!(e.to_string().contains("loopback"), "{e}"),
            Started::Yes => panic!("started on a remote address"),
        }
        // A takeover that lost the race to another TUI is not a failure.
        assert!(local.take_over(true, true).is_none());
        assert!(!local.is_running());
        local.stop();
    }

    #[test]
    fn takeover_only_after_an_embedded_server_refused() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let mut local = LocalServer::new(&addr, &EventLog::null(), true);
        assert!(local.take_over(true, false).is_none(), "a chatmon serve");
        assert!(local.take_over(false, true).is_none(), "not refused");
        assert!(matches!(local.take_over(true, true), Some(Started::Yes)));
        assert!(local.is_running());
        assert!(!nothing_listens(&addr));
        assert!(local.take_over(true, true).is_none(), "already running");
        local.stop();
        let mut off = LocalServer::new(&addr, &EventLog::null(), false);
        assert!(off.take_over(true, true).is_none());
    }
}
