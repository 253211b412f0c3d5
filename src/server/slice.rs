//! The scheduler slice of the threads that answer clients (`serve
//! --sched-slice`): short, so that a woken session is not kept waiting for
//! its reply behind a thread that runs out a default slice.
//!
//! A session runs for 10-20 µs per message and then blocks. Under Linux's
//! EEVDF scheduler a thread woken on a core where another one is running
//! (a load generator, a build, a busy neighbour) may wait for that one's
//! whole slice, 1.4 ms on two cores. With a shorter slice the woken session
//! gets an earlier deadline and runs first. Its share of the CPU is
//! unchanged: the slice says how long a thread runs at a stretch, not how
//! much. What that is worth depends on the load, so the default is the
//! kernel's own (README, "Sixth round"): 500 µs cut the CPU per message by
//! 15 % at one client on loopback (the woken session runs at once, on the
//! waker's warm core) and, on a slow host where the 10-client p99 was one
//! default slice, brought that p99 below the bare server's; but with the
//! cores saturated by 10 busy clients on a fast host it cost 5-10 % of CPU
//! per message and 3-8 % of throughput in preemptions, with no better tail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::sys;

/// The slice asked for, and whether the kernel took it.
#[derive(Debug)]
pub(super) struct Slice {
    want: Option<Duration>,
    /// Set at the first refusal: later threads do not ask again.
    refused: AtomicBool,
    /// Whether a refusal is told on stderr (not under a TUI's screen).
    loud: bool,
}

impl Slice {
    pub(super) fn new(want: Option<Duration>, loud: bool) -> Slice {
        Slice {
            want: want.filter(|d| !d.is_zero()),
            refused: AtomicBool::new(false),
            loud,
        }
    }

    /// Gives the calling thread the slice. The first refusal (an old kernel,
    /// a sandbox that forbids `sched_setattr`) is told once and turns the
    /// request off for the threads that follow; nothing else changes.
    pub(super) fn apply(&self) {
        let Some(want) = self.want else { return };
        if self.refused.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = sys::set_sched_slice(want)
            && !self.refused.swap(true, Ordering::Relaxed)
            && self.loud
        {
            sys::warn(format_args!(
                "chatmon: cannot run client threads in {}µs scheduler slices ({e}); \
                 replies may wait longer on a busy machine (--sched-slice 0 turns this off)",
                want.as_micros()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_or_none_asks_for_nothing() {
        for want in [None, Some(Duration::ZERO)] {
            let s = Slice::new(want, false);
            assert!(s.want.is_none());
            s.apply();
            assert!(!s.refused.load(Ordering::Relaxed));
        }
    }
}
