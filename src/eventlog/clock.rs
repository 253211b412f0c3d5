//! The local time the log records, with the UTC offset cached so that asking
//! for it costs a clock read, not a time zone lookup. Knows nothing of lines.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{Local, NaiveDateTime, TimeZone};

/// Seconds in the unit the offset cache is valid for: offsets change (DST)
/// only on whole minutes.
const CACHE_SECS: i64 = 60;

/// The current local time, as the log records it.
///
/// The UTC offset is looked up once a minute and cached process-wide:
/// chrono's per-thread zone lookup was a few percent of the server's CPU at
/// high message rates. Offsets change (DST) only on whole minutes, so the
/// cache is refreshed at each minute boundary and is never stale.
pub fn now() -> NaiveDateTime {
    // One word holds both halves of the cache, so that no reader can pair the
    // validity of one lookup with the offset of another (two atomics could,
    // around a DST change): the high 32 bits are the first minute (since the
    // epoch, UTC) for which the offset must be looked up again, 0 meaning
    // never looked up; the low 32 bits are the offset in seconds.
    static CACHE: AtomicU64 = AtomicU64::new(0);
    let utc = chrono::Utc::now();
    let minute = utc.timestamp().div_euclid(CACHE_SECS);
    // Minutes outside u32 (before 1970, after the year 10000) are not cached:
    // they cannot be packed, and no real clock shows them.
    let cacheable = (0..i64::from(u32::MAX)).contains(&minute);
    let packed = CACHE.load(Ordering::Acquire);
    let offset = if cacheable && minute < (packed >> 32) as i64 {
        packed as u32 as i32
    } else {
        let off = Local
            .offset_from_utc_datetime(&utc.naive_utc())
            .local_minus_utc();
        if cacheable {
            let valid_until = (minute + 1) as u64;
            let new = (valid_until << 32) | u64::from(off as u32);
            // Only ever move forward: a thread that looked up an older minute
            // and stores late must not replace a newer offset with its own.
            let mut cur = packed;
            while cur >> 32 < valid_until {
                match CACHE.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
        }
        off
    };
    utc.naive_utc() + chrono::TimeDelta::seconds(i64::from(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn cached_now_matches_chrono_local() {
        let a = Local::now().naive_local();
        let ours = now();
        let b = Local::now().naive_local();
        assert!(a <= ours && ours <= b, "{a} {ours} {b}");
    }

    #[test]
    fn cached_now_agrees_across_threads() {
        // Many threads refreshing and reading the one-word cache at once
        // all agree with chrono.
        let hs: Vec<_> = (0..8)
            .map(|_| {
                thread::spawn(|| {
                    for _ in 0..1000 {
                        let a = Local::now().naive_local();
                        let ours = now();
                        let b = Local::now().naive_local();
                        assert!(a <= ours && ours <= b, "{a} {ours} {b}");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread");
        }
    }
}
