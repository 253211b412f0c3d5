//! A chat client's bounded outbound queue ([`Outbox`]) and the writer thread
//! that drains it to the socket. Relays only ever queue here, so a slow
//! client never blocks the thread that relays to it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::protocol::{self, ServerMsg};

use super::Shared;
use super::conn::{Conn, DisconnectReason};

/// Most bytes of chat lines the writer takes in one batch (one write).
const MAX_BATCH: usize = 256 * 1024;
/// Initial capacity of the writer's batch buffer.
const BATCH_CAPACITY: usize = 4096;

/// Outbound lines of one chat client. Chat lines must all arrive, so when
/// they overflow the client is evicted; event lines (monitoring) may be lost,
/// so the oldest are dropped and counted instead.
pub(super) struct Outbox {
    inner: Mutex<OutboxInner>,
    /// Wakes the writer when a line arrives or the outbox closes.
    cv: Condvar,
    /// Chat lines held before the client counts as too slow.
    cap: usize,
    /// Event lines held before the oldest are dropped.
    event_cap: usize,
}

#[derive(Default)]
struct OutboxInner {
    /// Chat lines (replies go straight to the socket, not here).
    lines: VecDeque<Arc<str>>,
    /// Event-stream lines, sent before chat lines.
    events: VecDeque<Arc<str>>,
    /// Events dropped since the writer last ran, told to the client as one
    /// `dropped` message.
    dropped_events: u64,
    /// No more lines are taken; the writer ends once it has sent the rest.
    closed: bool,
}

impl Outbox {
    pub(super) fn new(cap: usize, event_cap: usize) -> Self {
        Outbox {
            inner: Mutex::new(OutboxInner::default()),
            cv: Condvar::new(),
            cap,
            event_cap,
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutboxInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a chat line, unless the outbox is full (the client is too slow:
    /// [`Push::Full`]) or closed ([`Push::Closed`]).
    pub(super) fn push(&self, line: Arc<str>) -> Push {
        let mut g = self.lock();
        if g.closed {
            return Push::Closed;
        }
        if g.lines.len() >= self.cap {
            return Push::Full;
        }
        g.lines.push_back(line);
        drop(g);
        self.cv.notify_one();
        Push::Queued
    }

    /// Queues an event line, dropping the oldest when full. Returns whether
    /// one was dropped.
    pub(super) fn push_event(&self, line: Arc<str>) -> bool {
        let mut g = self.lock();
        if g.closed {
            return false;
        }
        let mut dropped = false;
        if g.events.len() >= self.event_cap {
            g.events.pop_front();
            g.dropped_events += 1;
            dropped = true;
        }
        g.events.push_back(line);
        drop(g);
        self.cv.notify_one();
        dropped
    }

    /// Queues a last line (even past the cap) and closes the outbox.
    /// Returns whether it was open.
    pub(super) fn close_with(&self, last: Option<Arc<str>>) -> bool {
        let mut g = self.lock();
        if let Some(l) = last {
            g.lines.push_back(l);
        }
        let was_open = !std::mem::replace(&mut g.closed, true);
        drop(g);
        self.cv.notify_all();
        was_open
    }

    /// Waits for lines and moves them into `out` as one batch of bytes.
    /// Returns `false` once closed and drained.
    pub(super) fn take(&self, out: &mut Vec<u8>) -> bool {
        let mut g = self.lock();
        while g.lines.is_empty() && g.events.is_empty() && g.dropped_events == 0 && !g.closed {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        if g.lines.is_empty() && g.events.is_empty() && g.dropped_events == 0 {
            return false;
        }
        if g.dropped_events > 0 {
            let n = std::mem::take(&mut g.dropped_events);
            out.extend_from_slice(protocol::encode(&ServerMsg::Dropped { count: n }).as_bytes());
        }
        while let Some(l) = g.events.pop_front() {
            out.extend_from_slice(l.as_bytes());
        }
        while out.len() < MAX_BATCH {
            match g.lines.pop_front() {
                Some(l) => out.extend_from_slice(l.as_bytes()),
                None => break,
            }
        }
        true
    }
}

/// What became of a line offered to an [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Push {
    Queued,
    /// The client is too slow: its outbox is full.
    Full,
    /// The client is leaving; the line is discarded.
    Closed,
}

/// The `client-N-out` thread: writes what the outbox holds until it closes.
pub(super) fn writer_loop(sh: Arc<Shared>, conn: Arc<Conn>, outbox: Arc<Outbox>) {
    let mut batch = Vec::with_capacity(BATCH_CAPACITY);
    while outbox.take(&mut batch) {
        match conn.write_line(&batch) {
            Ok(()) => {
                sh.counters.traffic.wrote(batch.len() as u64);
                batch.clear();
            }
            Err(e) => {
                conn.close(DisconnectReason::write_failure(&e));
                return;
            }
        }
    }
    // Closed and drained: if this was the shutdown notice, end the session.
    if sh.shutdown.is_triggered() {
        conn.close(DisconnectReason::ServerStopping);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_evicts_chat_but_drops_events() {
        let ob = Outbox::new(2, 2);
        assert_eq!(ob.push("a\n".into()), Push::Queued);
        assert_eq!(ob.push("b\n".into()), Push::Queued);
        assert_eq!(ob.push("c\n".into()), Push::Full);
        assert!(!ob.push_event("e1\n".into()));
        assert!(!ob.push_event("e2\n".into()));
        assert!(ob.push_event("e3\n".into()));
        let mut out = Vec::new();
        assert!(ob.take(&mut out));
        let s = String::from_utf8(out).expect("utf8");
        assert!(s.starts_with("{\"type\":\"dropped\",\"count\":1}\n"), "{s}");
        assert!(s.ends_with("e2\ne3\na\nb\n"), "{s}");
        assert!(ob.close_with(None));
        assert!(!ob.close_with(None), "closing twice reports it was closed");
        assert_eq!(ob.push("late\n".into()), Push::Closed);
        let mut out = Vec::new();
        assert!(!ob.take(&mut out));
    }
}
