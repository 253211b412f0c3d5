//! The plain session: the fallback for a seed-style server (one that answers
//! the hello with `Server received: ...`), or every session under `--plain`.
//! Each message goes out as the seed's `nc` users send it, one line `T\n`;
//! replies are matched to messages in order by [`PlainMatcher`] (the seed's
//! server answers each `recv(1024)` with no newline of its own, so replies
//! come coalesced or split), and each gets its round trip. There is no room,
//! no names and no server time here.

use std::collections::HashMap;
use std::time::Instant;

use crate::tls::client::{ClientStream, ClientWriter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::eventlog::{self, EventKind, LogMessage};
use crate::protocol;
use crate::timing::{PlainMatcher, PlainReply};

use super::{ClientEvent, Command, ConnError, EXPIRY_TICK, READ_BUF, SessionEnd, Task, send_bytes};

/// What the status bar says of a plain server.
pub const PLAIN_SERVER: &str = "plain server (no chat)";
/// chatmon's plain-mode answer to `AUTH <token>`: not a reply to a message.
const AUTHENTICATED: &str = "Authenticated.";

impl Task {
    pub(super) async fn plain_session(&mut self, stream: ClientStream) -> SessionEnd {
        self.clock.reset();
        let (mut rd, mut wr) = stream.into_split();
        if let Some(token) = &self.config.token {
            let line = format!("{}{token}\n", protocol::PLAIN_AUTH_PREFIX);
            if let Err(e) = send_bytes(&mut wr, line.as_bytes()).await {
                return SessionEnd::Ended(ConnError::Hello {
                    server: self.peer().to_string(),
                    error: e,
                });
            }
        }
        self.log.record(
            EventKind::Connection,
            &LogMessage::ClientConnected {
                name: &self.name,
                server: self.peer(),
                users: 0,
            },
        );
        self.emit(ClientEvent::Connected {
            name: self.name.clone(),
            users: Vec::new(),
            server: PLAIN_SERVER.to_string(),
            embedded: false,
            plain: true,
        });
        let mut matcher = PlainMatcher::new();
        // The text of each message in flight, for its reply's text.
        let mut texts: HashMap<u64, String> = HashMap::new();
        let mut replies = Vec::new();
        let mut buf = vec![0u8; READ_BUF];
        while let Some((id, text)) = self.queued.pop_front() {
            if let Err(e) = self
                .send_plain(&mut wr, &mut matcher, &mut texts, id, text)
                .await
            {
                return self.lost(e);
            }
        }
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = rd.read(&mut buf) => {
                    let n = match r {
                        Ok(0) => return self.lost(ConnError::Closed),
                        Ok(n) => n,
                        Err(e) => return self.lost(ConnError::Io(e)),
                    };
                    let now = Instant::now();
                    matcher.push(&buf[..n], &mut replies);
                    for r in replies.drain(..) {
                        self.plain_reply(r, &mut texts, now);
                    }
                }
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(Command::Quit) => {
                        self.quitting();
                        let _ = wr.shutdown().await;
                        return SessionEnd::Quit;
                    }
                    Some(Command::Send { id, text }) => {
                        if let Err(e) = self.send_plain(&mut wr, &mut matcher, &mut texts, id, text).await {
                            return self.lost(e);
                        }
                    }
                    Some(Command::Nick(_)) => self.emit(ClientEvent::ServerError(
                        "a plain server knows no names: /nick does nothing here".into(),
                    )),
                    Some(Command::Subscribe(on)) => self.subscribe = on,
                },
                _ = tick.tick() => {
                    for id in self.rtt.expire(Instant::now(), self.config.reply_timeout) {
                        self.emit(ClientEvent::TimedOut { id });
                    }
                }
            }
        }
    }

    async fn send_plain(
        &mut self,
        wr: &mut ClientWriter,
        matcher: &mut PlainMatcher,
        texts: &mut HashMap<u64, String>,
        id: u64,
        text: String,
    ) -> Result<(), ConnError> {
        let mut line = text.clone().into_bytes();
        line.push(b'\n');
        let at = Instant::now();
        let sent_us = crate::timing::wall_micros();
        let wall = eventlog::now();
        if let Err(e) = send_bytes(wr, &line).await {
            self.queued.push_front((id, text));
            self.emit(ClientEvent::Queued { id });
            return Err(ConnError::Io(e));
        }
        matcher.sent(id, &line);
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
        texts.insert(id, text);
        self.emit(ClientEvent::Sent { id });
        Ok(())
    }

    fn plain_reply(&mut self, r: PlainReply, texts: &mut HashMap<u64, String>, now: Instant) {
        match r {
            PlainReply::Answered { id } => {
                let text = protocol::reply_text(&texts.remove(&id).unwrap_or_default());
                let Some((rtt, _)) = self.rtt.replied(id, now) else {
                    return;
                };
                self.replied(id, rtt, None, None, text);
            }
            PlainReply::Other { id: Some(id), line } => {
                texts.remove(&id);
                let _ = self.rtt.replied(id, now);
                self.log.record(
                    EventKind::Error,
                    &LogMessage::ClientServerError {
                        name: &self.name,
                        server: self.peer(),
                        message: &line,
                    },
                );
                self.emit(ClientEvent::Undelivered {
                    id,
                    reason: format!("the server answered: {line}"),
                });
            }
            PlainReply::Other { id: None, line } => {
                if line != AUTHENTICATED && !line.is_empty() {
                    self.error(&format!("the server said: {line}"));
                }
            }
        }
    }
}
