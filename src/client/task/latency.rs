//! The connection task's timing traffic: latency probes (sent, expired,
//! refused by an older server, lost with the connection), keepalive pings
//! that are clock probes too, and telling the UI of a new clock offset.

use std::time::Instant;

use crate::eventlog::{EventKind, LogMessage};
use crate::protocol::ClientMsg;
use crate::timing::{self, Offset};
use crate::tls::client::ClientWriter;

use super::{ConnError, PROBE_REFUSED, Task, write_msg};
use crate::client::ClientEvent;

impl Task {
    /// Writes one probe; every [`crate::client::probe::LOG_EVERY`] logs the figures
    /// of the probes before it.
    pub(super) async fn send_probe(&mut self, wr: &mut ClientWriter) -> Result<(), ConnError> {
        let Some(p) = self.probes.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        let due = p.due_log(now);
        let id = p.sent(now, timing::wall_micros());
        if let Some(f) = due {
            self.log.record(
                EventKind::Probe,
                &LogMessage::ClientProbes {
                    name: &self.name,
                    server: self.peer(),
                    count: f.count,
                    lost: f.lost,
                    p50: f.p50,
                    p99: f.p99,
                    jitter: f.jitter.unwrap_or_default(),
                },
            );
        }
        write_msg(wr, &ClientMsg::Probe { id }).await
    }

    /// Whether a server error is an older server's refusal of our probe.
    pub(super) fn refuses_probes(&self, message: &str) -> bool {
        !self.probes_refused && self.probes.is_some() && message.contains(PROBE_REFUSED)
    }

    pub(super) fn expire_probes(&mut self, now: Instant) {
        let lost = self.probes.as_mut().map(|p| p.expire(now));
        for id in lost.into_iter().flatten() {
            self.emit(ClientEvent::ProbeLost { id });
        }
    }

    pub(super) fn probes_lost_with_connection(&mut self) {
        let lost = self.probes.as_mut().map(|p| p.drain(Instant::now()));
        for id in lost.into_iter().flatten() {
            self.emit(ClientEvent::ProbeLost { id });
        }
    }

    /// Writes a keepalive ping that is also a clock probe.
    pub(super) async fn ping(&mut self, wr: &mut ClientWriter) -> Result<(), ConnError> {
        let id = self.clock.probe(Instant::now(), timing::wall_micros());
        write_msg(wr, &ClientMsg::Ping { id }).await
    }

    /// Tells the UI the offset after a round trip that fed the filter.
    pub(super) fn clock_changed(&self, now: Instant) -> Option<Offset> {
        let o = self.clock.estimate(now)?;
        self.emit(ClientEvent::Clock(o));
        Some(o)
    }
}
