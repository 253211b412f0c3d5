//! The TLS handshake at the start of a session on a TLS port: it runs on the
//! session's own thread (never the accept thread), within the server's
//! handshake deadline, and a client that fails it is closed with an `Error`
//! line naming its address and saying what went wrong.

use super::Session;
use crate::server::conn::DisconnectReason;
use crate::server::stats::ErrorKind;

impl Session {
    /// Completes the TLS handshake if this connection is TLS; `false` ends
    /// the session (the client got nothing served).
    pub(super) fn tls_handshake(&mut self) -> bool {
        let Some(tls) = self.conn.stream.tls() else {
            return true;
        };
        match tls.handshake(self.sh.config.tls_handshake_timeout) {
            Ok(()) => true,
            Err(e) => {
                let what = e.to_string();
                self.sh.error_as(ErrorKind::Tls, &self.who, &what);
                self.conn.close(DisconnectReason::Tls(what));
                false
            }
        }
    }
}
