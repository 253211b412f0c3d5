//! Where the time of a message goes: the arithmetic behind the server time,
//! network time, clock offset and one-way relay delay that the client shows
//! for each message ([`clock`]), and the matching of a seed-style server's
//! replies for the plain-session fallback ([`plain`]), and the figures over a
//! whole log ([`summary`]). All are pure: the
//! only clock read in this module is [`wall_micros`], for callers to stamp with.

pub mod clock;
pub mod plain;
pub mod summary;

pub use clock::{
    ClockFilter, Flaw, Offset, OneWay, RelayTiming, Sample, Stamps, relay_delay, since_server_read,
};
pub use plain::{PlainMatcher, PlainReply};

/// Now on this machine's wall clock, in µs since the Unix epoch: the unit of
/// every timestamp on the wire. A clock set before 1970 reads as negative.
pub fn wall_micros() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |v| -v),
    }
}
