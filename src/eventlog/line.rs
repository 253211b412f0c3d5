//! One log line, `Event_Type: YYYY-MM-DD HH:MM:SS[.ffffff] - Message`: its
//! kinds, its one writer ([`format_line`], [`format_line_args`]) and its one
//! parser ([`parse_line`]).
//!
//! Times are local. The parser also takes the seed's `YYYY-MM-DD HH:MM:SS`
//! without a fraction. The message is escaped on the way out and unescaped on
//! the way in ([`super::escape`](mod@super::escape)); what it says is
//! [`super::message`]'s business.

use std::borrow::Cow;
use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use super::escape::{any_escape, escape_into, unescape};
use super::message::LogMessage;

/// Between the kind and the time.
const KIND_END: &str = ": ";
/// Between the time and the message.
const TIME_END: &str = " - ";
/// Length of `YYYY-MM-DD HH:MM:SS`, the part of the time every line has.
const SECONDS_LEN: usize = 19;
/// Digits of the fraction this log writes (microseconds).
const FRACTION_DIGITS: usize = 6;
/// Most fraction digits the parser keeps (nanoseconds); more are read and ignored.
const MAX_FRACTION_DIGITS: usize = 9;
/// Room for a typical line, so that formatting one rarely reallocates.
pub(crate) const LINE_CAPACITY: usize = 256;

/// Kinds of event. The first ones are the seed's; the rest are chatmon's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    Connection,
    MessageSent,
    MessageReceived,
    Disconnection,
    Error,
    ServerStart,
    ServerStop,
    /// A chat session introduced itself (hello) or changed its name.
    Join,
    /// Periodic server figures.
    Stats,
    /// The cluster link and the other nodes: link up or down, a node joined,
    /// lost or left (`serve --cluster`).
    Cluster,
    /// A chat client's latency probes: their figures every 10 s, and the
    /// marker the user's `/reset` leaves.
    Probe,
    /// Anything else a log may hold; kept so that foreign logs still parse.
    Other(String),
}

impl EventKind {
    /// Every kind chatmon writes, for whoever must list or match them all.
    pub const KNOWN: [EventKind; 11] = [
        EventKind::Connection,
        EventKind::MessageSent,
        EventKind::MessageReceived,
        EventKind::Disconnection,
        EventKind::Error,
        EventKind::ServerStart,
        EventKind::ServerStop,
        EventKind::Join,
        EventKind::Stats,
        EventKind::Cluster,
        EventKind::Probe,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Connection => "Connection",
            EventKind::MessageSent => "Message Sent",
            EventKind::MessageReceived => "Message Received",
            EventKind::Disconnection => "Disconnection",
            EventKind::Error => "Error",
            EventKind::ServerStart => "Server Start",
            EventKind::ServerStop => "Server Stop",
            EventKind::Join => "Join",
            EventKind::Stats => "Stats",
            EventKind::Cluster => "Cluster",
            EventKind::Probe => "Probe",
            EventKind::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> EventKind {
        EventKind::known(s).unwrap_or_else(|| EventKind::Other(s.to_string()))
    }

    /// The kind named `s` if chatmon writes it; no allocation, for readers
    /// that go through every line of a large log.
    pub fn known(s: &str) -> Option<EventKind> {
        Some(match s {
            "Connection" => EventKind::Connection,
            "Message Sent" => EventKind::MessageSent,
            "Message Received" => EventKind::MessageReceived,
            "Disconnection" => EventKind::Disconnection,
            "Error" => EventKind::Error,
            "Server Start" => EventKind::ServerStart,
            "Server Stop" => EventKind::ServerStop,
            "Join" => EventKind::Join,
            "Stats" => EventKind::Stats,
            "Cluster" => EventKind::Cluster,
            "Probe" => EventKind::Probe,
            _ => return None,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed log line. `message` is unescaped; `precise` says whether the
/// time carried a fraction of a second (seed logs do not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub kind: &'a str,
    pub time: NaiveDateTime,
    pub precise: bool,
    pub message: Cow<'a, str>,
}

impl Event<'_> {
    pub fn kind(&self) -> EventKind {
        EventKind::parse(self.kind)
    }

    /// What the message says, typed; lines chatmon did not write (the seed's,
    /// unknown text) are [`LogMessage::Other`].
    pub fn log_message(&self) -> LogMessage<'_> {
        LogMessage::parse(&self.kind(), &self.message)
    }
}

/// Why a line is not an event line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no `Event_Type: ` prefix")]
    NoKind,
    #[error("timestamp is not `YYYY-MM-DD HH:MM:SS[.ffffff]`")]
    BadTime,
    #[error("no ` - ` between timestamp and message")]
    NoSeparator,
    #[error("bad escape sequence in message")]
    BadEscape,
}

/// Formats one log line, newline included. The only writer of the format.
pub fn format_line(kind: &EventKind, time: NaiveDateTime, message: &str) -> String {
    format_line_args(kind, time, format_args!("{message}"))
}

/// [`format_line`] for a message given as format arguments: the message is
/// written straight into the line, saving an allocation and a copy per event
/// on the server's per-message path.
pub fn format_line_args(
    kind: &EventKind,
    time: NaiveDateTime,
    message: fmt::Arguments<'_>,
) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(LINE_CAPACITY);
    format_line_with(&mut s, kind, time, |s| {
        let _ = s.write_fmt(message);
    });
    s
}

/// The one writer of a line, appended to `s` (the log writer's callers reuse
/// theirs from line to line): `message` appends the message part, which is
/// then escaped if it needs to be. Taking a writer rather
/// than format arguments lets the typed messages write their parts with
/// plain string copies (`core::fmt` was a fifth of a log line's cost on the
/// server's per-message path).
pub(crate) fn format_line_with(
    s: &mut String,
    kind: &EventKind,
    time: NaiveDateTime,
    message: impl FnOnce(&mut String),
) {
    s.push_str(kind.as_str());
    s.push_str(KIND_END);
    push_time(s, time);
    s.push_str(TIME_END);
    let start = s.len();
    message(s);
    if any_escape(&s[start..]) {
        let raw = s.split_off(start);
        escape_into(s, &raw);
    }
    s.push('\n');
}

/// Formats a timestamp as `YYYY-MM-DD HH:MM:SS.ffffff`.
pub fn format_time(time: NaiveDateTime) -> String {
    let mut s = String::with_capacity(SECONDS_LEN + 1 + FRACTION_DIGITS);
    push_time(&mut s, time);
    s
}

/// Formats the time of day to the millisecond, `HH:MM:SS.mmm`, for views too
/// narrow for the whole timestamp (the TUI's log panel).
pub fn format_clock(time: NaiveDateTime) -> String {
    let mut s = String::with_capacity(12);
    push_num(&mut s, time.hour(), 2);
    s.push(':');
    push_num(&mut s, time.minute(), 2);
    s.push(':');
    push_num(&mut s, time.second(), 2);
    s.push('.');
    push_num(&mut s, (time.nanosecond() / 1_000_000).min(999), 3);
    s
}

/// Appends `v` as exactly `width` decimal digits (`width` at most 10).
/// Hand-rolled: chrono's strftime machinery costs more than the whole rest of
/// a log line, and this runs once per message on the server.
fn push_num(s: &mut String, mut v: u32, width: usize) {
    let mut buf = [b'0'; 10];
    for i in (0..width).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    // ASCII digits: one copy rather than a capacity check per digit.
    s.push_str(std::str::from_utf8(&buf[..width]).unwrap_or_default());
}

thread_local! {
    /// The last second this thread formatted, and its text
    /// (`YYYY-MM-DD HH:MM:SS.`): a server thread logs many lines a second,
    /// and only the microseconds differ.
    static LAST_SECOND: std::cell::RefCell<(Option<(NaiveDate, u32)>, String)> =
        const { std::cell::RefCell::new((None, String::new())) };
}

fn push_time(s: &mut String, t: NaiveDateTime) {
    let key = Some((t.date(), t.num_seconds_from_midnight()));
    let cached = LAST_SECOND.try_with(|cell| {
        let Ok(mut cell) = cell.try_borrow_mut() else {
            return false;
        };
        let (at, text) = &mut *cell;
        if *at != key {
            text.clear();
            push_second_prefix(text, t);
            *at = key;
        }
        s.push_str(text);
        true
    });
    if cached != Ok(true) {
        push_second_prefix(s, t);
    }
    // A leap second shows up as nanosecond >= 1e9; clamp rather than print 7 digits.
    push_num(s, (t.nanosecond() / 1000).min(999_999), FRACTION_DIGITS);
}

/// Appends `YYYY-MM-DD HH:MM:SS.` of `t`.
fn push_second_prefix(s: &mut String, t: NaiveDateTime) {
    let year = t.year().clamp(0, 9999) as u32;
    push_num(s, year, 4);
    s.push('-');
    push_num(s, t.month(), 2);
    s.push('-');
    push_num(s, t.day(), 2);
    s.push(' ');
    push_num(s, t.hour(), 2);
    s.push(':');
    push_num(s, t.minute(), 2);
    s.push(':');
    push_num(s, t.second(), 2);
    s.push('.');
}

/// Parses one line (with or without its newline). The only parser.
pub fn parse_line(line: &str) -> Result<Event<'_>, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    // The kind may hold spaces ("Message Sent") but no colon; the first ": "
    // ends it.
    let colon = line.find(KIND_END).ok_or(ParseError::NoKind)?;
    let kind = &line[..colon];
    if kind.is_empty()
        || !kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'_' || b == b'-')
    {
        return Err(ParseError::NoKind);
    }
    let rest = &line[colon + KIND_END.len()..];
    let (time, precise, used) = parse_time(rest.as_bytes()).ok_or(ParseError::BadTime)?;
    let rest = &rest[used..];
    let message = if let Some(m) = rest.strip_prefix(TIME_END) {
        m
    } else if rest == TIME_END.trim_end() || rest.is_empty() {
        ""
    } else {
        return Err(ParseError::NoSeparator);
    };
    Ok(Event {
        kind,
        time,
        precise,
        message: unescape(message)?,
    })
}

fn parse_time(b: &[u8]) -> Option<(NaiveDateTime, bool, usize)> {
    if b.len() < SECONDS_LEN {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut v = 0u32;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut used = SECONDS_LEN;
    let mut nanos = 0u32;
    let mut precise = false;
    if b.len() > SECONDS_LEN + 1 && b[SECONDS_LEN] == b'.' && b[SECONDS_LEN + 1].is_ascii_digit() {
        let mut digits = 0;
        used = SECONDS_LEN + 1;
        while used < b.len() && b[used].is_ascii_digit() {
            if digits < MAX_FRACTION_DIGITS {
                nanos = nanos * 10 + u32::from(b[used] - b'0');
                digits += 1;
            }
            used += 1;
        }
        for _ in digits..MAX_FRACTION_DIGITS {
            nanos *= 10;
        }
        precise = true;
    }
    let date = NaiveDate::from_ymd_opt(y as i32, mo, d)?;
    let time = date.and_hms_nano_opt(h, mi, s, nanos)?;
    Some((time, precise, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").expect("valid test time")
    }

    #[test]
    fn formats_the_seed_layout_with_micros() {
        let line = format_line(
            &EventKind::MessageReceived,
            t("2024-10-13 14:35:24.000123"),
            "hi",
        );
        assert_eq!(line, "Message Received: 2024-10-13 14:35:24.000123 - hi\n");
    }

    #[test]
    fn times_in_the_same_second_and_across_seconds_format_right() {
        // The per-thread second cache must never leak one second's text
        // into another's line, whatever the order.
        for (a, b) in [
            ("2026-01-02 03:04:05.000001", "2026-01-02 03:04:05.999999"),
            ("2026-01-02 03:04:05.5", "2026-01-02 03:04:06.5"),
            ("2026-01-02 03:04:05.5", "2026-01-03 03:04:05.5"),
            ("2026-12-31 23:59:59.999999", "2027-01-01 00:00:00.000000"),
            ("2027-01-01 00:00:00.1", "2026-12-31 23:59:59.1"),
        ] {
            for s in [a, b, a, a, b] {
                assert_eq!(format_time(t(s)), format_time_uncached(t(s)), "{s}");
                assert!(format_time(t(s)).starts_with(&s[..19]), "{s}");
            }
        }
    }

    fn format_time_uncached(t: NaiveDateTime) -> String {
        format!("{}", t.format("%Y-%m-%d %H:%M:%S%.6f"))
    }

    #[test]
    fn parses_seed_lines() {
        let e = parse_line("Connection: 2024-10-13 14:35:24 - Client connected").expect("parses");
        assert_eq!(e.kind(), EventKind::Connection);
        assert_eq!(e.time, t("2024-10-13 14:35:24.0"));
        assert!(!e.precise);
        assert_eq!(e.message, "Client connected");
    }

    #[test]
    fn round_trips_hostile_text() {
        let msg = "a\nforged: 2024-01-01 00:00:00 - x\r\u{1b}[2J\\u{41} \u{202e}rtl \t🎉";
        let line = format_line(&EventKind::Error, t("2026-01-02 03:04:05.678901"), msg);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(!line.contains('\u{1b}'));
        let e = parse_line(&line).expect("parses");
        assert_eq!(e.message, msg);
        assert_eq!(e.kind(), EventKind::Error);
        assert!(e.precise);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_line("hello"), Err(ParseError::NoKind));
        assert_eq!(
            parse_line("Connection: yesterday - x"),
            Err(ParseError::BadTime)
        );
        assert_eq!(
            parse_line("Connection: 2024-13-13 14:35:24 - x"),
            Err(ParseError::BadTime)
        );
        assert_eq!(
            parse_line("Connection: 2024-10-13 14:35:24 x"),
            Err(ParseError::NoSeparator)
        );
    }

    #[test]
    fn kinds_round_trip_by_name() {
        for k in EventKind::KNOWN {
            assert_eq!(EventKind::parse(k.as_str()), k);
        }
        assert_eq!(
            EventKind::parse("Custom"),
            EventKind::Other("Custom".into())
        );
    }

    #[test]
    fn clock_is_the_time_of_day_to_the_millisecond() {
        assert_eq!(
            format_clock(t("2026-01-02 03:04:05.678901")),
            "03:04:05.678"
        );
        assert_eq!(format_clock(t("2026-01-02 23:59:59.0")), "23:59:59.000");
        assert_eq!(
            format_time(t("2026-01-02 03:04:05.678901")),
            "2026-01-02 03:04:05.678901"
        );
    }

    #[test]
    fn fractions_past_nanoseconds_are_read_and_ignored() {
        let e = parse_line("Stats: 2026-01-02 03:04:05.1234567891 - x").expect("parses");
        assert_eq!(e.time, t("2026-01-02 03:04:05.123456789"));
        assert_eq!(e.message, "x");
        let e = parse_line("Stats: 2026-01-02 03:04:05 -").expect("parses");
        assert_eq!(e.message, "");
    }

    #[test]
    fn event_gives_its_typed_message() {
        let e =
            parse_line("Connection: 2026-01-02 03:04:05.000001 - server: 127.0.0.1:5000 connected")
                .expect("parses");
        assert_eq!(
            e.log_message(),
            LogMessage::ServerConnected {
                peer: "127.0.0.1:5000"
            }
        );
    }
}
