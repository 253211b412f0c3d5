//! `protocol::LineFramer` on any bytes, cut into chunks at the places the
//! input chooses: the frames are the same as for one whole push, and the
//! framer never holds more than one line (plus its `\r`) in memory.
#![no_main]

use chatmon::protocol::LineFramer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let max = usize::from(first % 64) + 1;
    // Each byte of the input that is 0xff ends a chunk (and is kept).
    let mut chunked = LineFramer::new(max);
    let mut a = Vec::new();
    for chunk in rest.split_inclusive(|&b| b == 0xff) {
        chunked.push(chunk, &mut a);
        if !chunked.is_discarding() {
            assert!(
                chunked.pending() <= max + 1,
                "holds {} bytes",
                chunked.pending()
            );
        }
    }
    let mut whole = LineFramer::new(max);
    let mut b = Vec::new();
    whole.push(rest, &mut b);
    assert_eq!(a, b);
    assert_eq!(chunked.flush(), whole.flush());
});
