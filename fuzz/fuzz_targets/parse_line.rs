//! `eventlog::parse_line` on any text: never panics, and a line it accepts
//! formats back to a line that parses to the same event (format then parse
//! is the identity from then on).
#![no_main]

use chatmon::eventlog::{self, EventKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(e) = eventlog::parse_line(text) else {
        return;
    };
    let kind = EventKind::parse(e.kind);
    let once = eventlog::format_line(&kind, e.time, &e.message);
    assert_eq!(once.matches('\n').count(), 1, "formatted event spans lines");
    let again = eventlog::parse_line(&once).expect("a formatted line parses");
    assert_eq!(again.kind, kind.as_str());
    assert_eq!(again.message, e.message);
    let twice = eventlog::format_line(&again.kind(), again.time, &again.message);
    assert_eq!(twice, once);
});
