//! Plain mode's payload and what counts as its answer, for chatmon's server
//! and the seed's alike. Pure byte logic: no sockets, no timing.

use crate::protocol;

/// What plain payloads are made of: printable, no newline, and no run of it
/// can spell the reply prefix (it has no capitals, spaces or colon).
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A plain-mode payload of `size` bytes: printable, no newline, and nothing
/// that could pass for the reply prefix.
pub(crate) fn plain_payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| ALPHABET[i % ALPHABET.len()]).collect()
}

/// Whether `line` answers `payload`. chatmon answers `Server received: T\n`;
/// the seed's Python server answers every `recv(1024)` chunk with the prefix
/// and the chunk as it came, so a long payload comes back with the prefix
/// repeated inside it, and two payloads read at once come back as one prefix
/// and two lines. Both hold exactly the payload's bytes once the prefixes are
/// taken out. A line without any prefix counts only once the server has shown
/// that it prefixes (so a plain echo server is not mistaken for one).
pub fn plain_reply_matches(line: &[u8], payload: &[u8], seen_prefix: &mut bool) -> bool {
    let prefix = protocol::REPLY_PREFIX.as_bytes();
    // Fast path: one prefix, then the payload.
    if let Some(rest) = line.strip_prefix(prefix)
        && rest == payload
    {
        *seen_prefix = true;
        return true;
    }
    let mut stripped = Vec::with_capacity(line.len());
    let mut had_prefix = false;
    let mut i = 0;
    while i < line.len() {
        if line[i..].starts_with(prefix) {
            had_prefix = true;
            i += prefix.len();
        } else {
            stripped.push(line[i]);
            i += 1;
        }
    }
    if stripped != payload {
        return false;
    }
    if had_prefix {
        *seen_prefix = true;
    }
    had_prefix || *seen_prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_matching_takes_both_server_styles() {
        let payload = b"abc";
        let mut seen = false;
        assert!(plain_reply_matches(
            b"Server received: abc",
            payload,
            &mut seen
        ));
        assert!(seen);
        // The seed's server, a payload read in two chunks.
        let mut seen = false;
        assert!(plain_reply_matches(
            b"Server received: abServer received: c",
            payload,
            &mut seen
        ));
        // Two payloads read at once: the second line has no prefix.
        assert!(plain_reply_matches(b"abc", payload, &mut seen));
        // An echo server never prefixed: not a match.
        let mut seen = false;
        assert!(!plain_reply_matches(b"abc", payload, &mut seen));
        assert!(!plain_reply_matches(b"Error: too long", payload, &mut seen));
        assert!(!plain_reply_matches(
            b"Server received: abd",
            payload,
            &mut seen
        ));
    }

    #[test]
    fn payload_has_no_newline_or_prefix() {
        let p = plain_payload(100);
        assert_eq!(p.len(), 100);
        assert!(!p.contains(&b'\n'));
        assert!(!p.windows(8).any(|w| w == b"Server r"));
    }
}
