//! The token check a session passes first when the server has a token: a
//! chat client's `hello` carries it, a plain client sends `AUTH <token>`.

use crate::protocol::{self, ClientMsg, PLAIN_AUTH_PREFIX, ServerMsg};

use super::super::conn::DisconnectReason;
use super::super::stats::ErrorKind;
use super::{Mode, Session};

impl Session {
    pub(super) fn authenticate(&mut self, line: &[u8]) -> bool {
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
        self.conn.close(DisconnectReason::AuthFailed);
        false
    }
}

/// Compares secrets in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
