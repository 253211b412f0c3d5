//! The one shutdown contract every long-lived thread follows: a [`Shutdown`]
//! signal it observes (sleeping on it rather than polling a flag), and a
//! count of [`Tracked`] guards so that the stopper can wait until the
//! threads it told to stop are gone. std threads cannot be cancelled, so a
//! thread blocked in I/O must still be woken by its owner (a socket
//! `shutdown`, a poll timeout); this module only says *when* to stop.
//!
//! Modelled on mini-redis's `shutdown.rs`, with a `Mutex` and a `Condvar`
//! in place of a broadcast channel.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A stop signal shared by a server and its threads, and a count of the
/// threads still running. Cheap to clone; every clone is the same signal.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    /// Woken when the signal is triggered and whenever a guard drops.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Set once by [`Shutdown::trigger`], never cleared.
    triggered: bool,
    /// Live [`Tracked`] guards.
    live: usize,
}

/// Counts one running thread (or request) until dropped, however that
/// thread ends, so that [`Shutdown::wait_idle`] cannot miss it.
#[derive(Debug)]
pub struct Tracked {
    inner: Arc<Inner>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut s = lock(&self.inner.state);
        s.live = s.live.saturating_sub(1);
        drop(s);
        self.inner.changed.notify_all();
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Tells every observer to stop. Returns whether this call did it (a
    /// second call is a no-op that returns `false`).
    pub fn trigger(&self) -> bool {
        let mut s = lock(&self.inner.state);
        let first = !std::mem::replace(&mut s.triggered, true);
        drop(s);
        self.inner.changed.notify_all();
        first
    }

    pub fn is_triggered(&self) -> bool {
        lock(&self.inner.state).triggered
    }

    /// Sleeps up to `timeout`, waking at once when the signal is triggered.
    /// Returns whether it was.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_while(timeout, |s| !s.triggered).is_some()
    }

    /// A guard counted until it drops.
    pub fn track(&self) -> Tracked {
        lock(&self.inner.state).live += 1;
        Tracked {
            inner: self.inner.clone(),
        }
    }

    /// Guards alive now.
    #[cfg(test)]
    fn live(&self) -> usize {
        lock(&self.inner.state).live
    }

    /// Waits up to `timeout` for fewer than `limit` guards to be alive, or
    /// for the signal. Returns whether there is room.
    pub fn wait_below(&self, limit: usize, timeout: Duration) -> bool {
        self.wait_while(timeout, |s| s.live >= limit && !s.triggered)
            .is_some_and(|s| s.live < limit)
    }

    /// Waits up to `timeout` for every guard to drop. Returns whether they all
    /// did.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.wait_while(timeout, |s| s.live > 0).is_some()
    }

    /// Waits up to `timeout` while `busy` holds (woken by every change of the
    /// state); the state once it no longer does, `None` at the deadline.
    fn wait_while(
        &self,
        timeout: Duration,
        busy: impl Fn(&State) -> bool,
    ) -> Option<MutexGuard<'_, State>> {
        let deadline = Instant::now() + timeout;
        let mut s = lock(&self.inner.state);
        while busy(&s) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            s = self
                .inner
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn trigger_wakes_a_sleeper_at_once() {
        let s = Shutdown::new();
        let s2 = s.clone();
        let t = thread::spawn(move || s2.wait_timeout(Duration::from_secs(60)));
        assert!(s.trigger());
        assert!(!s.trigger(), "a second trigger is a no-op");
        assert!(t.join().expect("thread"));
        assert!(s.is_triggered());
        assert!(s.wait_timeout(Duration::from_secs(60)));
    }

    #[test]
    fn untriggered_wait_times_out() {
        let s = Shutdown::new();
        assert!(!s.wait_timeout(Duration::from_millis(1)));
    }

    #[test]
    fn wait_idle_ends_when_guards_drop() {
        let s = Shutdown::new();
        let g = s.track();
        let g2 = s.track();
        assert_eq!(s.live(), 2);
        assert!(!s.wait_idle(Duration::from_millis(1)));
        assert!(!s.wait_below(2, Duration::from_millis(1)));
        drop(g);
        assert!(s.wait_below(2, Duration::from_millis(1)));
        let t = thread::spawn(move || drop(g2));
        assert!(s.wait_idle(Duration::from_secs(60)));
        t.join().expect("thread");
        assert_eq!(s.live(), 0);
    }
}
