//! The idle timeout (`serve --idle-timeout`): one thread finds connections
//! silent for too long and wakes their readers to close them.
//!
//! Sessions used to block in `read` with `SO_RCVTIMEO` set to the idle
//! timeout. Every such read arms and cancels a kernel timer, which cost
//! 0.1-0.5 µs of system CPU per message under 10 busy clients; a sweep of
//! every connection's last-input time a few times per timeout costs nothing
//! per message. A session still arms a read timeout while it waits for the
//! rest of a line or its first line (`session/deadline.rs`), which busy
//! clients rarely do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::conn::{Conn, DisconnectReason};

/// Sweeps per idle timeout: a silent connection is closed at most a
/// timeout / this late.
const SWEEPS_PER_TIMEOUT: u32 = 8;
/// Bounds of the sweep period: often enough for short test timeouts,
/// rarely enough to be free for 10,000 connections.
const MIN_SWEEP: Duration = Duration::from_millis(10);
const MAX_SWEEP: Duration = Duration::from_secs(1);

/// How often the connections are swept for a given idle timeout.
fn sweep_every(idle: Duration) -> Duration {
    (idle / SWEEPS_PER_TIMEOUT).clamp(MIN_SWEEP, MAX_SWEEP)
}

/// Runs until the server stops: every sweep period, closes (through its
/// reader) each connection silent for `idle` or longer.
pub(super) fn idle_loop(sh: Arc<Shared>, idle: Duration) {
    let every = sweep_every(idle);
    let mut silent: Vec<Arc<Conn>> = Vec::new();
    while !sh.shutdown.wait_timeout(every) {
        let now = Instant::now();
        silent.extend(
            sh.lock_conns()
                .values()
                .filter(|c| c.quiet_for(now) >= idle)
                .cloned(),
        );
        // Outside the lock: waking a reader is a syscall per connection.
        for c in silent.drain(..) {
            c.expire(DisconnectReason::Idle(idle));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_scale_with_the_timeout_within_bounds() {
        assert_eq!(
            sweep_every(Duration::from_millis(300)),
            Duration::from_micros(37_500)
        );
        assert_eq!(sweep_every(Duration::from_millis(20)), MIN_SWEEP);
        assert_eq!(sweep_every(Duration::from_secs(600)), MAX_SWEEP);
    }
}
