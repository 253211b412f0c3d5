//! `protocol::decode` on any bytes: never panics, never overflows the stack
//! (nesting is refused before serde sees it), and whatever decodes as a
//! client message encodes back to one line that decodes to the same value.
#![no_main]

use chatmon::protocol::{self, ClientMsg, ServerMsg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = protocol::looks_like_hello(data);
    let _ = protocol::is_chat_before_hello(data);
    let _ = protocol::decode::<ServerMsg>(data);
    if let Ok(msg) = protocol::decode::<ClientMsg>(data) {
        let line = protocol::encode(&msg);
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1, "encoded message spans lines");
        let back: ClientMsg =
            protocol::decode(line.trim_end_matches('\n').as_bytes()).expect("re-decodes");
        assert_eq!(back, msg);
    }
});
