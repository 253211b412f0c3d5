//! Escaping of message text, so that neither a line break nor a terminal
//! escape sequence from a peer can forge a log line or garble a terminal that
//! shows the log. Knows nothing of the line around the text.

use std::borrow::Cow;
use std::fmt;

use super::line::ParseError;

/// Most hex digits in a `\u{...}` escape: enough for any `char`.
const MAX_HEX_DIGITS: usize = 6;

fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        // Bidi overrides and isolates can reorder what a terminal shows.
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether any character of `text` needs escaping. Printable ASCII without
/// a backslash, by far the common case, is decided on bytes alone.
pub(crate) fn any_escape(text: &str) -> bool {
    !plain_ascii(text.as_bytes()) && text.chars().any(needs_escape)
}

/// Whether `bytes` are all printable ASCII but the backslash. Decided 16
/// bytes at a time without an early exit inside a block, which the compiler
/// turns into vector compares: this runs over every log line's message.
fn plain_ascii(bytes: &[u8]) -> bool {
    let bad = |b: &u8| !(0x20..0x7f).contains(b) || *b == b'\\';
    let mut blocks = bytes.chunks_exact(16);
    for block in blocks.by_ref() {
        if block.iter().fold(false, |any, b| any | bad(b)) {
            return false;
        }
    }
    !blocks.remainder().iter().any(bad)
}

/// Escapes text so that it fits on one line and holds no control characters.
pub fn escape_into(out: &mut String, text: &str) {
    if !any_escape(text) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                use fmt::Write as _;
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Escapes text (see [`escape_into`]).
pub fn escape(text: &str) -> Cow<'_, str> {
    if any_escape(text) {
        let mut s = String::with_capacity(text.len() + 8);
        escape_into(&mut s, text);
        Cow::Owned(s)
    } else {
        Cow::Borrowed(text)
    }
}

/// Reverses [`escape`]. Lines from foreign logs that hold a lone backslash
/// keep it as it is, since the seed never escaped anything.
pub fn unescape(text: &str) -> Result<Cow<'_, str>, ParseError> {
    if !text.contains('\\') {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                if chars.next() != Some('{') {
                    return Err(ParseError::BadEscape);
                }
                let mut v = 0u32;
                let mut n = 0;
                loop {
                    match chars.next() {
                        Some('}') if n > 0 => break,
                        Some(h) if n < MAX_HEX_DIGITS => match h.to_digit(16) {
                            Some(d) => {
                                v = v * 16 + d;
                                n += 1;
                            }
                            None => return Err(ParseError::BadEscape),
                        },
                        _ => return Err(ParseError::BadEscape),
                    }
                }
                out.push(char::from_u32(v).ok_or(ParseError::BadEscape)?);
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_scan_finds_a_bad_byte_anywhere() {
        // Each escapable byte at every position of texts around the block
        // size, in the block part and in the remainder alike.
        for len in [0usize, 1, 15, 16, 17, 31, 32, 33, 80] {
            let clean = "a".repeat(len);
            assert!(!any_escape(&clean), "{len}");
            for at in 0..len {
                for bad in ["\\", "\n", "\u{1b}", "\u{7f}", "\u{202e}"] {
                    let text = format!("{}{bad}{}", &clean[..at], &clean[at + 1..]);
                    assert!(any_escape(&text), "{len} {at} {bad:?}");
                }
                let text = format!("{}é{}", &clean[..at], &clean[at + 1..]);
                assert!(!any_escape(&text), "non-ASCII letters need no escape");
            }
        }
    }

    #[test]
    fn plain_text_is_borrowed_both_ways() {
        assert!(matches!(escape("hello, world"), Cow::Borrowed(_)));
        assert!(matches!(unescape("hello, world"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn controls_and_bidi_round_trip() {
        let raw = "a\\b\nc\rd\te\u{1b}[2J\u{202e}f\u{7f}";
        let esc = escape(raw);
        assert_eq!(esc, "a\\\\b\\nc\\rd\\te\\u{1b}[2J\\u{202e}f\\u{7f}");
        assert_eq!(unescape(&esc).expect("valid"), raw);
    }

    #[test]
    fn foreign_backslashes_are_kept_and_bad_escapes_refused() {
        assert_eq!(unescape("C:\\dir\\").expect("kept"), "C:\\dir\\");
        assert_eq!(unescape("\\u{zz}"), Err(ParseError::BadEscape));
        assert_eq!(unescape("\\u{1234567}"), Err(ParseError::BadEscape));
        assert_eq!(unescape("\\u{d800}"), Err(ParseError::BadEscape));
        assert_eq!(unescape("\\u41"), Err(ParseError::BadEscape));
    }
}
