//! The plain (seed) protocol: each line `T` is answered with
//! `Server received: T`, and relayed to the chat room as a chat line.

use crate::cluster::RoomEvent;
use crate::eventlog;
use crate::protocol::{self, ServerMsg};

use super::super::stats::ErrorKind;
use super::Session;

impl Session {
    pub(super) fn plain(&mut self, line: &[u8]) -> bool {
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
        self.sh.counters.traffic.received();
        let mut reply = std::mem::take(&mut self.reply_buf);
        reply.clear();
        reply.push_str(protocol::REPLY_PREFIX);
        reply.push_str(text);
        reply.push('\n');
        let written = self.write_plain(reply.as_bytes());
        self.log_exchange(None, text, written.then_some(&reply[..reply.len() - 1]));
        self.reply_buf = reply;
        if !written {
            return false;
        }
        if self.sh.cluster.is_some() {
            self.sh.to_cluster(RoomEvent::Plain {
                from: self.who.clone(),
                text: text.to_string(),
            });
        }
        if self.sh.hub.members_len() > 0 {
            let line = protocol::encode(&ServerMsg::chat(
                self.who.clone(),
                text,
                eventlog::format_time(eventlog::clock::local_unix_nanos(self.read_unix_ns)),
            ));
            self.sh.relay(line.into(), Some(self.conn.id));
        }
        true
    }
}
