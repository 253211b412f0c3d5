//! The connection task's handling of what the server sends: replies and
//! probe replies timed and logged, relayed chat with its one-way delay,
//! presence, errors and the server's own events, each turned into a
//! [`ClientEvent`].

use std::time::{Duration, Instant};

use crate::eventlog::{EventKind, LogMessage, OneWayDelay};
use crate::protocol::ServerMsg;
use crate::timing::{Offset, RelayTiming, Sample};

use super::{ConnError, SessionEnd, Task};
use crate::client::ClientEvent;
use crate::client::clock::RelayStamps;

impl Task {
    /// Logs a reply's round trip (with the server's time, the network's and
    /// the clock offset when the reply was stamped) and tells the UI.
    pub(super) fn replied(
        &self,
        id: u64,
        rtt: Duration,
        split: Option<Sample>,
        offset: Option<Offset>,
        text: String,
    ) {
        self.log.record(
            EventKind::MessageReceived,
            &LogMessage::ClientReply {
                name: &self.name,
                server: self.peer(),
                id,
                rtt,
                server_time: split.map(|s| Duration::from_micros(s.server_us)),
                net: split.map(|s| Duration::from_micros(s.network_us)),
                offset: offset.map(|o| OneWayDelay {
                    delay: chrono::TimeDelta::microseconds(o.offset_us),
                    bound: Duration::from_micros(o.bound_us),
                }),
                text: &text,
            },
        );
        self.emit(ClientEvent::Reply {
            id,
            text,
            rtt,
            split,
        });
    }

    /// Handles a line read at `now` (monotonic) and `wall` (µs since the
    /// Unix epoch: t4 for a reply).
    pub(super) fn on_message(
        &mut self,
        msg: ServerMsg,
        now: Instant,
        wall: i64,
    ) -> Option<SessionEnd> {
        match msg {
            ServerMsg::ProbeReply {
                id,
                read_us,
                write_us,
            } => {
                if let Some((rtt, t1)) = self.probes.as_mut().and_then(|p| p.replied(id, now)) {
                    self.emit(ClientEvent::Probe { id, rtt });
                    // A stamped probe is a clock sample too: once a second,
                    // the offset stays fresh without anyone typing.
                    if let (Some(t2), Some(t3)) = (read_us, write_us) {
                        self.clock.round_trip(rtt, t1, (t2, t3), wall, now);
                        self.clock_changed(now);
                    }
                }
            }
            ServerMsg::Reply {
                id,
                text,
                read_us,
                write_us,
            } => {
                let Some((rtt, t1)) = self.rtt.replied(id, now) else {
                    // A reply to something we no longer track (already given
                    // up on after a reconnect): nothing to measure.
                    return None;
                };
                let split = match (read_us, write_us) {
                    (Some(t2), Some(t3)) => {
                        Some(self.clock.round_trip(rtt, t1, (t2, t3), wall, now))
                    }
                    _ => None,
                };
                let offset = split.and_then(|_| self.clock_changed(now));
                self.replied(id, rtt, split, offset, text);
            }
            ServerMsg::Pong {
                id,
                read_us,
                write_us,
            } => {
                if self
                    .clock
                    .pong(id, (read_us, write_us), wall, now)
                    .is_some()
                {
                    self.clock_changed(now);
                }
            }
            ServerMsg::Chat {
                from,
                text,
                ts,
                read_us,
                sent_us,
                offset_us,
                bound_us,
            } => {
                let timing = self.clock.relay(
                    now,
                    wall,
                    RelayStamps {
                        read_us,
                        sent_us,
                        offset_us,
                        bound_us,
                    },
                );
                // The log's delay= is the whole one-way trip only.
                let delay = match timing {
                    Some(RelayTiming::OneWay(d)) => Some(OneWayDelay {
                        delay: chrono::TimeDelta::microseconds(d.delay_us),
                        bound: Duration::from_micros(d.bound_us),
                    }),
                    _ => None,
                };
                self.log.record(
                    EventKind::MessageReceived,
                    &LogMessage::ClientRelay {
                        name: &self.name,
                        from: &from,
                        server: self.peer(),
                        delay,
                        text: &text,
                    },
                );
                self.emit(ClientEvent::Chat {
                    from,
                    text,
                    ts,
                    timing,
                });
            }
            ServerMsg::Join { name, users } => self.emit(ClientEvent::Join { name, users }),
            ServerMsg::Leave {
                name,
                users,
                reason,
            } => self.emit(ClientEvent::Leave {
                name,
                users,
                reason,
            }),
            ServerMsg::Nick { old, new } => {
                if old == self.name {
                    self.name = new.clone();
                }
                self.emit(ClientEvent::Nick { old, new });
            }
            ServerMsg::Error { message } if self.refuses_probes(&message) => {
                self.probes_refused = true;
                if let Some(p) = self.probes.as_mut() {
                    p.forget();
                }
                self.error("the server does not answer latency probes (a chatmon from before them?): no probes until the next connection");
            }
            ServerMsg::Error { message } => {
                self.log.record(
                    EventKind::Error,
                    &LogMessage::ClientServerError {
                        name: &self.name,
                        server: self.peer(),
                        message: &message,
                    },
                );
                self.emit(ClientEvent::ServerError(message));
            }
            ServerMsg::Shutdown { message } => {
                return Some(self.lost(ConnError::Stopping(message)));
            }
            ServerMsg::Event { line } => self.emit(ClientEvent::ServerEvent(line)),
            ServerMsg::Dropped { count } => self.emit(ClientEvent::EventsDropped(count)),
            ServerMsg::Stats {
                clients,
                names,
                msgs_per_sec,
                uptime_secs,
            } => self.emit(ClientEvent::ServerStats {
                clients,
                names,
                msgs_per_sec,
                uptime_secs,
            }),
            ServerMsg::Cluster { up, node } => self.emit(ClientEvent::ClusterLink { up, node }),
            ServerMsg::Welcome { .. } => {}
        }
        None
    }
}
