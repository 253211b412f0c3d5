//! Splitting a byte stream into lines, bounded and without I/O, so that the
//! blocking server, the async client, the bench and the fuzz tests share one.

/// One unit of input split off a byte stream by [`LineFramer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete line without its `\n` (and without a trailing `\r`).
    Line(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded. `len` is how
    /// many bytes it had (the newline not counted).
    TooLong { len: usize },
}

/// Splits a byte stream into lines with a hard limit on line length, without
/// ever holding more than `max_line` bytes of one line in memory. Sans-IO so
/// that the blocking server and the async client share it.
#[derive(Debug)]
pub struct LineFramer {
    buf: Vec<u8>,
    max_line: usize,
    /// Bytes of an oversized line seen so far, while skipping to its end.
    discarding: Option<usize>,
    /// Whether the last byte skipped was `\r`: it is not part of the line's
    /// length if the `\n` comes next, however the bytes were chunked.
    discard_cr: bool,
}

impl LineFramer {
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_line,
            discarding: None,
            discard_cr: false,
        }
    }

    /// Feeds bytes and appends every frame they complete to `out`.
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Frame>) {
        while !data.is_empty() {
            let nl = data.iter().position(|&b| b == b'\n');
            if let Some(skipped) = self.discarding.as_mut() {
                match nl {
                    Some(i) => {
                        let ends_cr = if i > 0 {
                            data[i - 1] == b'\r'
                        } else {
                            self.discard_cr
                        };
                        let len = *skipped + i - usize::from(ends_cr);
                        self.discarding = None;
                        out.push(Frame::TooLong { len });
                        data = &data[i + 1..];
                    }
                    None => {
                        *skipped += data.len();
                        self.discard_cr = data.last() == Some(&b'\r');
                        return;
                    }
                }
                continue;
            }
            match nl {
                Some(i) => {
                    let total = self.buf.len() + i;
                    // A trailing \r is not part of the message, so a line of
                    // exactly max_line bytes followed by \r\n still fits.
                    let ends_cr = if i > 0 {
                        data[i - 1] == b'\r'
                    } else {
                        self.buf.last() == Some(&b'\r')
                    };
                    let content = total - usize::from(ends_cr);
                    if content > self.max_line {
                        self.buf.clear();
                        out.push(Frame::TooLong { len: content });
                    } else {
                        self.buf.extend_from_slice(&data[..i]);
                        let mut line = std::mem::take(&mut self.buf);
                        if ends_cr {
                            line.pop();
                        }
                        out.push(Frame::Line(line));
                    }
                    data = &data[i + 1..];
                }
                None => {
                    // Allow one extra byte for a possible \r before the \n.
                    if self.buf.len() + data.len() > self.max_line.saturating_add(1) {
                        self.discarding = Some(self.buf.len() + data.len());
                        self.discard_cr = data.last() == Some(&b'\r');
                        self.buf = Vec::new();
                    } else {
                        self.buf.extend_from_slice(data);
                    }
                    return;
                }
            }
        }
    }

    /// Bytes waiting for their newline.
    pub fn pending(&self) -> usize {
        self.buf.len() + self.discarding.unwrap_or(0)
    }

    /// The bytes of the line waiting for its newline.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Whether an oversized line is being skipped.
    pub fn is_discarding(&self) -> bool {
        self.discarding.is_some()
    }

    /// Ends the current partial line as if a newline had come: used for the
    /// seed's clients, which send a message without a newline and wait.
    pub fn flush(&mut self) -> Option<Frame> {
        if let Some(len) = self.discarding.take() {
            return Some(Frame::TooLong {
                len: len - usize::from(self.discard_cr),
            });
        }
        if self.buf.is_empty() {
            return None;
        }
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.len() > self.max_line {
            return Some(Frame::TooLong { len: line.len() });
        }
        Some(Frame::Line(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out);
        }
        out
    }

    #[test]
    fn splits_lines_across_chunks_and_drops_cr() {
        let out = frames(100, &[b"hel", b"lo\r\nwor", b"ld\n\n"]);
        assert_eq!(
            out,
            vec![
                Frame::Line(b"hello".to_vec()),
                Frame::Line(b"world".to_vec()),
                Frame::Line(Vec::new())
            ]
        );
    }

    #[test]
    fn oversized_line_is_reported_and_next_line_survives() {
        let out = frames(4, &[b"abcdefgh", b"ij\nok\n"]);
        assert_eq!(
            out,
            vec![Frame::TooLong { len: 10 }, Frame::Line(b"ok".to_vec())]
        );
        let out = frames(4, &[b"abcdefgh\nok\n"]);
        assert_eq!(
            out,
            vec![Frame::TooLong { len: 8 }, Frame::Line(b"ok".to_vec())]
        );
        // The length never counts the \r of a \r\n, however it is chunked.
        for chunks in [
            &[&b"abcdef\r\n"[..]][..],
            &[b"abcdef", b"\r\n"],
            &[b"abcdef\r", b"\n"],
            &[b"abc", b"def\r", b"\n"],
        ] {
            assert_eq!(
                frames(4, chunks),
                vec![Frame::TooLong { len: 6 }],
                "{chunks:?}"
            );
        }
    }

    #[test]
    fn exact_limit_fits_with_crlf() {
        let out = frames(4, &[b"abcd\r", b"\n"]);
        assert_eq!(out, vec![Frame::Line(b"abcd".to_vec())]);
        let out = frames(4, &[b"abcde\n"]);
        assert_eq!(out, vec![Frame::TooLong { len: 5 }]);
    }

    #[test]
    fn flush_ends_a_partial_line() {
        let mut f = LineFramer::new(100);
        let mut out = Vec::new();
        f.push(b"Hello, Server!", &mut out);
        assert!(out.is_empty());
        assert_eq!(f.pending(), 14);
        assert_eq!(f.flush(), Some(Frame::Line(b"Hello, Server!".to_vec())));
        assert_eq!(f.flush(), None);
    }
}
