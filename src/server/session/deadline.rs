//! One session's line deadline (issue 11): a line must end within
//! `line_timeout` of its first byte, and a connection's first line within
//! `line_timeout` of its start, so that neither bytes trickled without a
//! newline (each of which resets the idle timer) nor silence can hold a slot.
//!
//! The session blocks in `read` with `SO_RCVTIMEO`, set only when its state
//! changes. [`LineClock::cap`] keeps that timeout from outlasting the
//! deadline while changing it at most about [`SLACK_DIVISOR`] times per
//! line, and only for lines that span several reads: a line that arrives in
//! one read costs nothing but a few comparisons. Knows nothing of sockets.

use std::time::{Duration, Instant};

/// A read may outlast the deadline by at most `line_timeout` / this; in
/// exchange the read timeout is re-armed at most about this many times in
/// one line's life, however many reads it takes.
pub(super) const SLACK_DIVISOR: u32 = 8;

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    /// A line was begun (the first one included) and not finished in time.
    Line(Duration),
    /// Nothing at all came within the deadline of the start.
    Hello(Duration),
}

/// The deadline of the line a session is waiting for.
#[derive(Debug)]
pub(super) struct LineClock {
    /// `None`: no deadline (`--line-timeout 0`).
    timeout: Option<Duration>,
    /// When the open line's time began: the session's start for the first
    /// line, the read that brought its first byte for later ones. `None`:
    /// no line open (the last byte read was a newline).
    since: Option<Instant>,
    /// No line has been completed yet.
    first: bool,
    /// Some byte has come: the first line's expiry is then a line that was
    /// not finished, not a silent peer.
    heard: bool,
}

impl LineClock {
    /// A clock for a session that starts `now`, owing its first line.
    pub(super) fn new(timeout: Option<Duration>, now: Instant) -> LineClock {
        let timeout = timeout.filter(|t| !t.is_zero());
        LineClock {
            timeout,
            since: timeout.map(|_| now),
            first: true,
            heard: false,
        }
    }

    /// Takes note of a read of `bytes` at `now`; `ended` says whether they
    /// completed at least one line (a newline, not a pause). Returns whether
    /// this read completed the session's first line.
    ///
    /// A plain session's pause-ended message (the seed's `recv(1024)` style)
    /// does not end the line's time: only a newline does, or a trickle of
    /// one byte a second would be a stream of messages and never expire.
    pub(super) fn after_read(&mut self, bytes: &[u8], ended: bool, now: Instant) -> bool {
        self.heard = true;
        if !ended {
            if self.since.is_none() && self.timeout.is_some() {
                self.since = Some(now);
            }
            return false;
        }
        let was_first = std::mem::replace(&mut self.first, false);
        // Bytes after the read's last newline open the next line now.
        self.since = (self.timeout.is_some() && bytes.last() != Some(&b'\n')).then_some(now);
        was_first
    }

    /// Whether the open line's deadline has passed at `now`.
    pub(super) fn expired(&self, now: Instant) -> Option<Expired> {
        let (t, since) = (self.timeout?, self.since?);
        if now.saturating_duration_since(since) < t {
            return None;
        }
        Some(if self.first && !self.heard {
            Expired::Hello(t)
        } else {
            Expired::Line(t)
        })
    }

    /// The read timeout to arm, given the one the session wants for its own
    /// reasons (`want`: idle timeout, partial-line delay) and the one armed
    /// now: `want` if it ends before the deadline; else the armed one if it
    /// ends within the slack of the deadline; else the time left. `now` is
    /// asked only while a line is open.
    pub(super) fn cap(
        &self,
        want: Option<Duration>,
        armed: Option<Duration>,
        now: impl FnOnce() -> Instant,
    ) -> Option<Duration> {
        let (Some(t), Some(since)) = (self.timeout, self.since) else {
            return want;
        };
        let left = (since + t).saturating_duration_since(now());
        if want.is_some_and(|w| w <= left) {
            return want;
        }
        let slack = t / SLACK_DIVISOR;
        match armed {
            Some(a) if a <= left + slack && a + slack >= left => armed,
            _ => Some(left),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(8);

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn silence_is_a_hello_timeout_and_a_begun_line_a_line_timeout() {
        let t0 = Instant::now();
        let c = LineClock::new(Some(T), t0);
        assert_eq!(c.expired(at(t0, 7_999)), None);
        assert_eq!(c.expired(at(t0, 8_000)), Some(Expired::Hello(T)));

        // The first line's time runs from the start, not from its first byte.
        let mut c = LineClock::new(Some(T), t0);
        assert!(!c.after_read(b"{\"type\":", false, at(t0, 5_000)));
        assert_eq!(c.expired(at(t0, 8_000)), Some(Expired::Line(T)));
    }

    #[test]
    fn a_newline_ends_the_line_and_bytes_after_it_open_the_next() {
        let t0 = Instant::now();
        let mut c = LineClock::new(Some(T), t0);
        assert!(c.after_read(b"hello\n", true, at(t0, 100)));
        // No line open: no deadline, however long the quiet.
        assert_eq!(c.expired(at(t0, 100_000)), None);
        assert!(!c.after_read(b"a", false, at(t0, 200_000)));
        assert_eq!(c.expired(at(t0, 207_999)), None);
        // Trickled bytes do not move the line's start.
        assert!(!c.after_read(b"b", false, at(t0, 207_000)));
        assert_eq!(c.expired(at(t0, 208_000)), Some(Expired::Line(T)));
        // A newline with the start of the next line in the same read.
        assert!(!c.after_read(b"c\nd", true, at(t0, 208_100)));
        assert_eq!(c.expired(at(t0, 216_099)), None);
        assert_eq!(c.expired(at(t0, 216_100)), Some(Expired::Line(T)));
    }

    #[test]
    fn off_means_never() {
        let t0 = Instant::now();
        for off in [None, Some(Duration::ZERO)] {
            let mut c = LineClock::new(off, t0);
            assert_eq!(c.expired(at(t0, 1_000_000)), None);
            assert!(!c.after_read(b"x", false, at(t0, 1)));
            assert_eq!(c.expired(at(t0, 1_000_000)), None);
            let idle = Some(Duration::from_secs(600));
            assert_eq!(c.cap(idle, None, || at(t0, 5)), idle);
        }
    }

    #[test]
    fn cap_never_outlasts_the_deadline_and_rearms_rarely() {
        let t0 = Instant::now();
        let mut c = LineClock::new(Some(T), t0);
        let idle = Some(Duration::from_secs(600));
        // A short wish (the partial-line delay) stands.
        let short = Some(Duration::from_millis(20));
        assert_eq!(c.cap(short, None, || t0), short);
        // The idle timeout would outlast the hello deadline: the time left.
        assert_eq!(c.cap(idle, None, || t0), Some(T));
        // A line trickled one byte every 10 ms for its whole life: every
        // read's timeout ends by the deadline plus the slack, and it is
        // re-armed a handful of times, not once per read.
        c.after_read(b"x\n", true, t0);
        let mut armed = c.cap(idle, None, || t0);
        let mut rearms = 0;
        for ms in (10..8_000).step_by(10) {
            let now = at(t0, ms);
            c.after_read(b"x", false, now);
            let want = c.cap(idle, armed, || now);
            if want != armed {
                rearms += 1;
                armed = want;
            }
            let wake = now + armed.expect("armed");
            assert!(wake <= at(t0, 10) + T + T / SLACK_DIVISOR, "at {ms} ms");
        }
        assert!(rearms <= SLACK_DIVISOR as usize + 1, "{rearms} re-arms");
    }
}
