//! The local time the log records, with the UTC offset and the current second
//! cached so that asking for it costs a clock read, not a time zone lookup;
//! and the wall time of a monotonic reading, without a second clock read.
//! Knows nothing of lines.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike};

/// Seconds in the unit the offset cache is valid for: offsets change (DST)
/// only on whole minutes.
const CACHE_SECS: i64 = 60;

thread_local! {
    /// The last second (since the epoch, UTC) this thread turned into local
    /// time, and the local date and second of the day it is: a server thread
    /// asks many times a second, and within one second only the fraction
    /// differs. It lives within one minute, so it is as fresh as the
    /// minute's offset it was made from.
    static LAST_SECOND: Cell<Option<(u64, NaiveDate, u32)>> = const { Cell::new(None) };
}

/// How long one pairing of the monotonic clock with the wall clock serves
/// [`unix_nanos_at`] before the wall clock is read again.
const PAIRING_LIFE: Duration = Duration::from_millis(100);

thread_local! {
    /// A monotonic reading and the wall clock (ns since the Unix epoch) read
    /// together, for [`unix_nanos_at`].
    static PAIRING: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
}

/// Nanoseconds since the Unix epoch of `t` (0 for a clock set before 1970,
/// which no real clock shows; saturated in the year 2554).
fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The wall clock, in ns since the Unix epoch, at which the monotonic clock
/// read `at`, without reading the wall clock each time: a session stamps its
/// log lines from the monotonic reading it takes anyway for its reply time,
/// which saves a clock read per message (clock reads and their arithmetic
/// were a sixth of a session's own CPU). Plain integers, so that a stamp
/// and a stamp plus the reply time cost an addition, not time arithmetic.
///
/// The two clocks differ by an amount that changes only when the wall clock
/// is set (a step): NTP's slewing speeds or slows both alike. The wall clock
/// is read again when the pairing is `PAIRING_LIFE` old, so a step shows
/// in the stamps within that time.
pub fn unix_nanos_at(at: Instant) -> u64 {
    let paired = PAIRING.try_with(Cell::get).ok().flatten();
    if let Some((mono, wall)) = paired
        && let Some(since) = at.checked_duration_since(mono)
        && since < PAIRING_LIFE
    {
        return wall.saturating_add(since.as_nanos() as u64);
    }
    let (mono, wall) = (Instant::now(), unix_nanos(SystemTime::now()));
    let _ = PAIRING.try_with(|c| c.set(Some((mono, wall))));
    match mono.checked_duration_since(at) {
        Some(before) => wall.saturating_sub(u64::try_from(before.as_nanos()).unwrap_or(u64::MAX)),
        None => wall
            .saturating_add(u64::try_from(at.duration_since(mono).as_nanos()).unwrap_or(u64::MAX)),
    }
}

/// The current local time, as the log records it.
pub fn now() -> NaiveDateTime {
    local(SystemTime::now())
}

/// `t` in local time, as the log records it.
pub fn local(t: SystemTime) -> NaiveDateTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => local_unix_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        // A clock before 1970: no real one shows it; chrono handles it.
        Err(_) => slow_local(DateTime::<chrono::Utc>::from(t).naive_utc()),
    }
}

/// The time `ns` nanoseconds after the Unix epoch, in local time: the time
/// of a line stamped when a read was taken up, or that plus the monotonic
/// time the reply took (so that the log's response time and the server's
/// reply-time histogram are one measurement).
///
/// Cheap: within a second already seen by this thread it is a division and
/// a comparison. The UTC offset is looked up once a minute and cached
/// process-wide (chrono's per-thread zone lookup was a few percent of the
/// server's CPU at high message rates, and its date arithmetic another few).
pub fn local_unix_nanos(ns: u64) -> NaiveDateTime {
    let (sec, nanos) = (ns / 1_000_000_000, (ns % 1_000_000_000) as u32);
    let cached = LAST_SECOND.try_with(Cell::get).ok().flatten();
    let (date, sod) = match cached {
        Some((s, date, sod)) if s == sec => (date, sod),
        _ => {
            // `sec` < 2^64 / 1e9, well inside i64 and chrono's range.
            let whole = DateTime::from_timestamp(sec as i64, 0).unwrap_or_default();
            let local = slow_local(whole.naive_utc());
            let (date, sod) = (local.date(), local.time().num_seconds_from_midnight());
            let _ = LAST_SECOND.try_with(|c| c.set(Some((sec, date, sod))));
            (date, sod)
        }
    };
    NaiveDateTime::new(
        date,
        NaiveTime::from_num_seconds_from_midnight_opt(sod, nanos).unwrap_or_default(),
    )
}

/// UTC `utc` in local time, through the process-wide offset cache.
fn slow_local(utc: NaiveDateTime) -> NaiveDateTime {
    // One word holds both halves of the cache, so that no reader can pair the
    // validity of one lookup with the offset of another (two atomics could,
    // around a DST change): the high 32 bits are the first minute (since the
    // epoch, UTC) for which the offset must be looked up again, 0 meaning
    // never looked up; the low 32 bits are the offset in seconds.
    static CACHE: AtomicU64 = AtomicU64::new(0);
    let minute = utc.and_utc().timestamp().div_euclid(CACHE_SECS);
    // Minutes outside u32 (before 1970, after the year 10000) are not cached:
    // they cannot be packed, and no real clock shows them.
    let cacheable = (0..i64::from(u32::MAX)).contains(&minute);
    let packed = CACHE.load(Ordering::Acquire);
    let offset = if cacheable && minute < (packed >> 32) as i64 {
        packed as u32 as i32
    } else {
        let off = Local.offset_from_utc_datetime(&utc).local_minus_utc();
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
    utc + chrono::TimeDelta::seconds(i64::from(offset))
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
    fn local_keeps_the_fraction_and_follows_seconds() {
        // Within one cached second and across the next: the same as chrono,
        // to the nanosecond.
        let base = SystemTime::now();
        for ms in [0u64, 1, 999, 1000, 1001, 61_000, 3_600_000] {
            let t =
                base + std::time::Duration::from_millis(ms) + std::time::Duration::from_nanos(789);
            let want = DateTime::<Local>::from(t).naive_local();
            assert_eq!(local(t), want, "+{ms} ms");
        }
        // Before the epoch: no cache, still right.
        let t = UNIX_EPOCH - std::time::Duration::from_secs(86_400 * 400 + 5);
        assert_eq!(local(t), DateTime::<Local>::from(t).naive_local());
    }

    #[test]
    fn unix_nanos_at_tracks_the_wall_clock() {
        // Fresh, reused and renewed pairings, and a reading from before the
        // pairing was made: within a few ms of a direct read (the test
        // machine's scheduler, not the pairing, sets the bound).
        let slack = 20_000_000u64;
        let close = |a: u64, b: u64| a.abs_diff(b) < slack;
        let early = Instant::now();
        for _ in 0..3 {
            let at = Instant::now();
            let direct = unix_nanos(SystemTime::now());
            assert!(close(unix_nanos_at(at), direct));
            std::thread::sleep(PAIRING_LIFE / 2);
        }
        let direct = unix_nanos(SystemTime::now() - early.elapsed());
        assert!(close(unix_nanos_at(early), direct));
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
