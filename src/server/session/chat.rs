//! The JSON chat protocol of one session: the `hello` that makes it a room
//! member, then messages (answered with a `reply`, relayed to the room as
//! `chat`), `nick`, `subscribe`, `ping` and `probe` (answered with a
//! `probe_reply` at once, not relayed, not logged).

use std::sync::Arc;
use std::thread;

use crate::cluster::RoomEvent;
use crate::eventlog::{self, EventKind, LogMessage};
use crate::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};
use crate::timing;

use super::super::conn::DisconnectReason;
use super::super::outbox::{Outbox, writer_loop};
use super::super::stats::ErrorKind;
use super::{Mode, Session};

/// Stack for a chat client's writer thread, which only copies bytes.
const WRITER_STACK: usize = 64 * 1024;

/// The sender's stamps on a `msg`, passed on untouched in its relay: the
/// server does not interpret another machine's clock.
struct SenderStamps {
    /// The sender's wall clock at its write, µs since the Unix epoch.
    sent_us: Option<i64>,
    /// The sender's clock offset to this server, and its bound, µs.
    offset_us: Option<i64>,
    bound_us: Option<u64>,
}

impl Session {
    pub(super) fn hello(&mut self, line: &[u8]) -> bool {
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
                self.conn.close(DisconnectReason::MalformedHello);
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
            self.conn.close(DisconnectReason::UnsupportedVersion);
            return false;
        }
        if let Err(why) = protocol::validate_name(&wanted) {
            let msg = format!("invalid name: {why}");
            self.sh.error_as(ErrorKind::InvalidName, &self.who, &msg);
            let _ = self.write_msg(&ServerMsg::Error { message: msg });
            self.conn.close(DisconnectReason::InvalidName);
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
        let sh = self.sh.clone();
        let (name, users, before) = self
            .sh
            .hub
            .join(&self.conn, &wanted, &outbox, &|n| sh.taken_remotely(n));
        // The claim on the name is stamped now, as close to the check as
        // can be: the cluster's clash rule compares these times.
        self.sh.to_cluster(RoomEvent::Join { name: name.clone() });
        let users = self.sh.with_remote_names(users);
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
            server: protocol::server_description(self.sh.config.embedded),
            embedded: self.sh.config.embedded,
        }) {
            return false;
        }
        if let Some(notice) = self.sh.cluster_notice()
            && !self.write_msg(&notice)
        {
            return false;
        }
        let c = self.conn.clone();
        let ob = outbox.clone();
        let sh = self.sh.clone();
        // The server's stop waits for this thread too.
        let tracked = self.sh.shutdown.track();
        let spawned = thread::Builder::new()
            .name(format!("client-{}-out", self.conn.id))
            .stack_size(WRITER_STACK)
            .spawn(move || {
                let _tracked = tracked;
                sh.slice.apply();
                writer_loop(sh, c, ob);
            });
        if let Err(e) = spawned {
            self.sh.error_as(
                ErrorKind::Thread,
                &self.who,
                &format!("cannot start a writer thread: {e}"),
            );
            self.send_error("server cannot take more chat clients right now");
            self.conn.close(DisconnectReason::NoThread);
            return false;
        }
        self.sh.log.record(
            EventKind::Join,
            &LogMessage::ServerJoined {
                peer: &self.conn.peer.to_string(),
                name: &name,
            },
        );
        self.sh.relay_where(
            protocol::encode(&ServerMsg::Join {
                name,
                users: n_users,
            })
            .into(),
            |id| before.contains(&id),
        );
        self.sh.hub.announced(self.conn.id);
        true
    }

    fn set_subscribed(&self, on: bool, outbox: &Arc<Outbox>) {
        // A new subscriber sees the server's figures at once rather than at
        // the next stats interval (or never, with stats off). Built before
        // taking the subscribers lock: the snapshot takes the members lock.
        let figures = on.then(|| self.sh.stats_msg());
        self.sh
            .hub
            .set_subscribed(self.conn.id, on, outbox, figures);
    }

    pub(super) fn chat(&mut self, line: &[u8]) -> bool {
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
            ClientMsg::Msg {
                id,
                text,
                sent_us,
                offset_us,
                bound_us,
            } => self.chat_msg(
                id,
                text,
                SenderStamps {
                    sent_us,
                    offset_us,
                    bound_us,
                },
            ),
            ClientMsg::Nick { name } => self.nick(name),
            ClientMsg::Subscribe { on } => {
                let outbox = self
                    .sh
                    .hub
                    .members()
                    .get(&self.conn.id)
                    .map(|m| m.outbox.clone());
                if let Some(ob) = outbox {
                    self.set_subscribed(on, &ob);
                }
                true
            }
            ClientMsg::Ping { id: None } => true,
            // A clock probe: answered at once, stamped like a reply.
            ClientMsg::Ping { id: Some(id) } => self.write_msg(&ServerMsg::Pong {
                id,
                read_us: self.read_us,
                write_us: timing::wall_micros(),
            }),
            // Answered at once on this thread, before anything else queued
            // for us: a probe measures the connection and this session,
            // never the relay. Not logged one by one (a probe a second would
            // drown the log); the client logs their figures.
            ClientMsg::Probe { id } => self.write_msg(&ServerMsg::ProbeReply {
                id,
                read_us: Some(self.read_us),
                write_us: Some(timing::wall_micros()),
            }),
            ClientMsg::Hello { .. } => {
                self.sh
                    .error_as(ErrorKind::Malformed, &self.who, "second hello refused");
                self.send_error("already said hello")
            }
        }
    }

    fn chat_msg(&mut self, id: u64, text: String, stamps: SenderStamps) -> bool {
        self.follow_cluster_rename();
        let Mode::Chat { name } = &self.mode else {
            return true;
        };
        if let Err(e) = protocol::check_text(&text) {
            let msg = format!("message #{id} refused: {e}");
            self.sh.error_as(ErrorKind::Malformed, &self.who, &msg);
            return self.send_error(&msg);
        }
        self.sh.counters.traffic.received();
        // Stamped as late as the encoding allows: t3 of the four timestamps.
        let reply = ServerMsg::Reply {
            id,
            text: protocol::reply_text(&text),
            read_us: Some(self.read_us),
            write_us: Some(timing::wall_micros()),
        };
        if !self.write_msg(&reply) {
            self.log_exchange(Some(id), &text, None);
            return false;
        }
        // The reply's own text, for the log line, without a copy.
        if let ServerMsg::Reply {
            text: reply_text, ..
        } = &reply
        {
            self.log_exchange(Some(id), &text, Some(reply_text));
        }
        if self.sh.cluster.is_some() {
            self.sh.to_cluster(RoomEvent::Chat {
                from: name.clone(),
                text: text.clone(),
                order: id,
            });
        }
        // Alone in the room: no relay line to build.
        if self.sh.hub.members_len() > 1 {
            let line = protocol::encode(&ServerMsg::Chat {
                from: name.clone(),
                text,
                ts: eventlog::format_time(eventlog::clock::local_unix_nanos(self.read_unix_ns)),
                read_us: Some(self.read_us),
                sent_us: stamps.sent_us,
                offset_us: stamps.offset_us,
                bound_us: stamps.bound_us,
            });
            self.sh.relay(line.into(), Some(self.conn.id));
        }
        true
    }

    fn nick(&mut self, wanted: String) -> bool {
        self.follow_cluster_rename();
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
        let sh = self.sh.clone();
        let new = self
            .sh
            .hub
            .rename(self.conn.id, &wanted, &|n| sh.taken_remotely(n));
        if new == old {
            return true;
        }
        self.mode = Mode::Chat { name: new.clone() };
        self.who = format!("{new}@{}", self.conn.peer);
        self.sh.log.record(
            EventKind::Join,
            &LogMessage::ServerRenamed {
                old: &old,
                peer: &self.conn.peer.to_string(),
                new: &new,
            },
        );
        self.sh.to_cluster(RoomEvent::Nick {
            old: old.clone(),
            new: new.clone(),
        });
        // Everyone, the renamed client included, learns the new name.
        self.sh
            .relay(protocol::encode(&ServerMsg::Nick { old, new }).into(), None);
        true
    }

    /// The cluster may have renamed this member (it lost a name clash to
    /// another node): take the hub's name as ours before using it.
    fn follow_cluster_rename(&mut self) {
        if self.sh.cluster.is_none() {
            return;
        }
        let Mode::Chat { name } = &self.mode else {
            return;
        };
        // Cloned only when it changed: this runs for every message.
        let renamed = self
            .sh
            .hub
            .members()
            .get(&self.conn.id)
            .filter(|m| m.name != *name)
            .map(|m| m.name.clone());
        if let Some(current) = renamed {
            self.who = format!("{current}@{}", self.conn.peer);
            self.mode = Mode::Chat { name: current };
        }
    }
}
