//! Round-trip properties (issue 4), checked with proptest on every
//! `cargo test`: encode then decode is the identity for every message; format
//! then parse is the identity for every log line; the line framer gives the
//! same frames however the bytes are chunked, and never holds more than one
//! line's worth of them. The fuzz targets in `fuzz/` check the same things
//! with coverage guidance.

use chatmon::eventlog::{self, EventKind};
use chatmon::protocol::{self, ClientMsg, Frame, LineFramer, ServerMsg};
use chrono::{NaiveDate, NaiveDateTime};
use proptest::prelude::*;

/// Any text at all: control characters, escapes, quotes, backslashes,
/// non-BMP characters, bidi overrides, and sometimes long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\\\\"\\n\\r\\t\u{0}\u{1b}\u{7}\u{202e}a-z🎉{}\\[\\]: -]{0,40}",
        ".{0,300}",
    ]
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        (
            any::<u32>(),
            text(),
            proptest::option::of(text()),
            any::<bool>()
        )
            .prop_map(|(v, name, token, subscribe)| ClientMsg::Hello {
                v,
                name,
                token,
                subscribe,
            }),
        (
            any::<u64>(),
            text(),
            any::<Option<i64>>(),
            any::<Option<i64>>(),
            any::<Option<u64>>()
        )
            .prop_map(|(id, text, sent_us, offset_us, bound_us)| ClientMsg::Msg {
                id,
                text,
                sent_us,
                offset_us,
                bound_us
            }),
        text().prop_map(|name| ClientMsg::Nick { name }),
        any::<bool>().prop_map(|on| ClientMsg::Subscribe { on }),
        any::<Option<u64>>().prop_map(|id| ClientMsg::Ping { id }),
    ]
}

fn server_msg() -> impl Strategy<Value = ServerMsg> {
    let names = || proptest::collection::vec(text(), 0..5);
    prop_oneof![
        (text(), names(), text()).prop_map(|(name, users, server)| ServerMsg::Welcome {
            name,
            users,
            embedded: server.ends_with(protocol::EMBEDDED_MARK),
            server,
        }),
        (
            any::<u64>(),
            text(),
            any::<Option<i64>>(),
            any::<Option<i64>>()
        )
            .prop_map(|(id, text, read_us, write_us)| ServerMsg::Reply {
                id,
                text,
                read_us,
                write_us
            }),
        (any::<u64>(), any::<i64>(), any::<i64>()).prop_map(|(id, read_us, write_us)| {
            ServerMsg::Pong {
                id,
                read_us,
                write_us,
            }
        }),
        (
            (text(), text(), text()),
            any::<(Option<i64>, Option<i64>, Option<i64>, Option<u64>)>()
        )
            .prop_map(
                |((from, text, ts), (read_us, sent_us, offset_us, bound_us))| ServerMsg::Chat {
                    from,
                    text,
                    ts,
                    read_us,
                    sent_us,
                    offset_us,
                    bound_us
                }
            ),
        (text(), any::<usize>()).prop_map(|(name, users)| ServerMsg::Join { name, users }),
        (text(), any::<usize>(), text()).prop_map(|(name, users, reason)| ServerMsg::Leave {
            name,
            users,
            reason
        }),
        (text(), text()).prop_map(|(old, new)| ServerMsg::Nick { old, new }),
        text().prop_map(|message| ServerMsg::Error { message }),
        text().prop_map(|message| ServerMsg::Shutdown { message }),
        text().prop_map(|line| ServerMsg::Event { line }),
        any::<u64>().prop_map(|count| ServerMsg::Dropped { count }),
        (
            any::<usize>(),
            names(),
            // JSON has no NaN or infinity; the server never sends them.
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            any::<u64>()
        )
            .prop_map(|(clients, names, msgs_per_sec, uptime_secs)| {
                ServerMsg::Stats {
                    clients,
                    names,
                    msgs_per_sec,
                    uptime_secs,
                }
            }),
    ]
}

/// The encoded line is one line: the framer must see it whole.
fn assert_one_line(line: &str) -> Result<(), TestCaseError> {
    prop_assert!(line.ends_with('\n'));
    prop_assert_eq!(line.matches('\n').count(), 1);
    prop_assert!(!line.contains('\r'));
    Ok(())
}

fn kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::Connection),
        Just(EventKind::MessageSent),
        Just(EventKind::MessageReceived),
        Just(EventKind::Disconnection),
        Just(EventKind::Error),
        Just(EventKind::ServerStart),
        Just(EventKind::ServerStop),
        Just(EventKind::Join),
        Just(EventKind::Stats),
        "[A-Za-z0-9_-][A-Za-z0-9 _-]{0,20}".prop_map(EventKind::Other),
    ]
}

/// Any time the format can hold, to the microsecond (its precision).
fn time() -> impl Strategy<Value = NaiveDateTime> {
    (
        0i32..=9999,
        1u32..=12,
        1u32..=31,
        0u32..24,
        0u32..60,
        0u32..60,
        0u32..1_000_000,
    )
        .prop_filter_map("a real date", |(y, mo, d, h, mi, s, us)| {
            NaiveDate::from_ymd_opt(y, mo, d)?.and_hms_micro_opt(h, mi, s, us)
        })
}

/// What the framer should produce for `input`: every complete line, without
/// its `\n` and one trailing `\r`, or its length if over `max`.
fn model_frames(input: &[u8], max: usize) -> Vec<Frame> {
    let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    parts.pop(); // after the last \n: not a line yet
    parts
        .into_iter()
        .map(|l| {
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            if l.len() > max {
                Frame::TooLong { len: l.len() }
            } else {
                Frame::Line(l.to_vec())
            }
        })
        .collect()
}

/// Bytes that are mostly lines of varied length, with `\r`s and junk.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            4 => Just(b'a'),
            1 => Just(b'\n'),
            1 => Just(b'\r'),
            1 => any::<u8>(),
        ],
        0..400,
    )
}

proptest! {
    // No failure files written into the source tree: a failure prints its
    // minimal input, which is enough to make a unit test of it.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn client_messages_round_trip(msg in client_msg()) {
        let line = protocol::encode(&msg);
        assert_one_line(&line)?;
        let back: ClientMsg = protocol::decode(line.trim_end_matches('\n').as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn server_messages_round_trip(msg in server_msg()) {
        let line = protocol::encode(&msg);
        assert_one_line(&line)?;
        let back: ServerMsg = protocol::decode(line.trim_end_matches('\n').as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
        match (&back, &msg) {
            // serde_json reads floats back to within one unit in the last
            // place (exact only with its `float_roundtrip` feature); a
            // msgs/s figure does not need more.
            (
                ServerMsg::Stats { msgs_per_sec: a, clients: c1, names: n1, uptime_secs: u1 },
                ServerMsg::Stats { msgs_per_sec: b, clients: c2, names: n2, uptime_secs: u2 },
            ) => {
                prop_assert!((a - b).abs() <= b.abs() * 1e-15, "{} != {}", a, b);
                prop_assert_eq!((c1, n1, u1), (c2, n2, u2));
            }
            _ => prop_assert_eq!(back, msg),
        }
    }

    #[test]
    fn log_lines_round_trip(kind in kind(), time in time(), message in text()) {
        let line = eventlog::format_line(&kind, time, &message);
        prop_assert!(line.ends_with('\n'));
        prop_assert_eq!(line.matches('\n').count(), 1, "one line: {:?}", line);
        prop_assert!(!line.chars().any(|c| c.is_control() && c != '\n'), "{:?}", line);
        let e = eventlog::parse_line(&line)
            .map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
        prop_assert_eq!(e.kind, kind.as_str());
        prop_assert_eq!(e.time, time);
        prop_assert!(e.precise);
        prop_assert_eq!(e.message.as_ref(), message.as_str());
    }

    #[test]
    fn parse_line_never_panics(line in any::<String>()) {
        // And what it accepts holds together: without escapes to undo, the
        // message is the very end of the line.
        if let Ok(e) = eventlog::parse_line(&line) {
            let bare = line.strip_suffix('\n').unwrap_or(&line);
            let bare = bare.strip_suffix('\r').unwrap_or(bare);
            if !bare.contains('\\') {
                prop_assert!(bare.ends_with(e.message.as_ref()), "{:?}", e);
            }
        }
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        // And whatever it accepts is a message that survives a round trip.
        if let Ok(m) = protocol::decode::<ClientMsg>(&bytes) {
            let again = protocol::encode(&m);
            prop_assert_eq!(protocol::decode::<ClientMsg>(again.trim_end().as_bytes()).ok(), Some(m));
        }
        // (A server message may carry a float, which reads back to within
        // one unit in the last place: it must read back, not to the bit.)
        if let Ok(m) = protocol::decode::<ServerMsg>(&bytes) {
            let again = protocol::encode(&m);
            prop_assert!(protocol::decode::<ServerMsg>(again.trim_end().as_bytes()).is_ok());
        }
        let _ = protocol::looks_like_hello(&bytes);
        let _ = protocol::is_chat_before_hello(&bytes);
    }

    #[test]
    fn framer_is_chunking_invariant_and_bounded(
        input in stream(),
        max in 1usize..40,
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        at.sort_unstable();
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain([input.len()]) {
            f.push(&input[from..to], &mut out);
            from = to;
            if !f.is_discarding() {
                // Never more than one line (and its \r) in memory.
                prop_assert!(f.pending() <= max + 1, "holds {} bytes", f.pending());
            }
        }
        prop_assert_eq!(out, model_frames(&input, max));
        // What is left after the last \n comes out of flush, same rules.
        let tail = input.rsplit(|&b| b == b'\n').next().unwrap_or(&[]);
        let want = if input.contains(&b'\n') || !input.is_empty() {
            let t = tail.strip_suffix(b"\r").unwrap_or(tail);
            if tail.is_empty() {
                None
            } else if t.len() > max {
                Some(Frame::TooLong { len: t.len() })
            } else {
                Some(Frame::Line(t.to_vec()))
            }
        } else {
            None
        };
        prop_assert_eq!(f.flush(), want);
    }
}
