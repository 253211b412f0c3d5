//! Matching a seed-style server's replies to the messages a plain session
//! sent, in order, sans-IO. Such a server answers `Server received: T`, but
//! not always one reply per message: the seed's Python server answers every
//! `recv(1024)` with the prefix and the chunk exactly as it came (no newline
//! of its own), so two messages read at once come back under one prefix and a
//! message longer than 1024 bytes comes back under several; chatmon's plain
//! mode answers each line with `Server received: T\n`. The reply stream can
//! also arrive split anywhere, the prefix included.
//!
//! What holds in every case: with the prefixes taken out, the reply stream
//! holds the bytes that were sent, in order. So the matcher counts bytes: a
//! message is answered when its last byte has come back. Where a byte could
//! be either the next byte of a message or the start of a new prefix (a
//! message holding the text `Server received: `, split by the server right
//! there), the matcher follows both readings, a small set of hypotheses
//! (position in the sent bytes, prefix bytes seen), until one dies; a message
//! counts as answered as soon as one live reading has all of it. Anything
//! that no reading explains (chatmon's `Error: …` lines, `Authenticated.`, a
//! mangled echo) is handed back as a line of its own and answers the oldest
//! waiting message, since a plain server answers each message with either.
//! A server that strips the lines it reads (drops the newline) is matched
//! too: a message counts as answered once all but its final newline came
//! back.

use std::collections::VecDeque;

use crate::protocol::REPLY_PREFIX;

/// Longest stray line kept before it is handed back anyway: a server that
/// never sends a newline must not grow the buffer without end.
pub const MAX_OTHER: usize = 1024;

/// Most readings followed at once. Only messages that repeat the prefix text
/// many times over keep more than two alive; past this the readings furthest
/// behind are dropped.
const MAX_READINGS: usize = 32;

/// What the reply stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainReply {
    /// The last byte of message `id` came back: it is answered.
    Answered { id: u64 },
    /// A line that is not an echo (chatmon's `Error: …`, a greeting, a
    /// mangled echo). `id` is the waiting message it answers instead, if any:
    /// that message is given up on, so the ones after it still match.
    Other { id: Option<u64>, line: String },
}

/// One message sent, placed in the stream of all bytes sent.
#[derive(Debug, Clone, Copy)]
struct Sent {
    id: u64,
    /// Position of its first byte in all the bytes sent.
    start: u64,
    /// Position just past its last byte.
    end: u64,
    /// Whether its last byte is a newline: a server that drops newlines
    /// (strips each line it read) never sends that one back, so the message
    /// counts as answered without it.
    nl: bool,
    answered: bool,
}

/// One reading of the reply stream so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Reading {
    /// How many sent bytes have come back, in this reading.
    pos: u64,
    /// `None`: inside echoed bytes (where a new prefix may also start).
    /// `Some(k)`: `k` bytes of a prefix seen; `Some(0)` is the start of a
    /// line, where only a prefix may come.
    prefix: Option<usize>,
}

/// Matches a plain server's replies to the messages sent, in order.
#[derive(Debug)]
pub struct PlainMatcher {
    /// Sent bytes from position `base` on (those some reading may still need).
    bytes: VecDeque<u8>,
    base: u64,
    /// Messages from the oldest one a reading may still be inside, in order.
    sent: VecDeque<Sent>,
    readings: Vec<Reading>,
    /// Scratch for the next byte's readings.
    next: Vec<Reading>,
    /// The current line so far (up to [`MAX_OTHER`] bytes), so that a stray
    /// or mangled line is shown whole.
    line: Vec<u8>,
    /// While no reading explains the current line: the bytes taken since it
    /// was last handed back, and whether it answered a message already (a
    /// long line handed back in pieces answers only one).
    stray: Option<(usize, bool)>,
}

impl Default for PlainMatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl PlainMatcher {
    pub fn new() -> Self {
        PlainMatcher {
            bytes: VecDeque::new(),
            base: 0,
            sent: VecDeque::new(),
            readings: vec![Reading {
                pos: 0,
                prefix: Some(0),
            }],
            next: Vec::new(),
            line: Vec::new(),
            stray: None,
        }
    }

    fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// Records that message `id` was written as exactly `bytes`.
    pub fn sent(&mut self, id: u64, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = self.end();
        self.bytes.extend(bytes);
        self.sent.push_back(Sent {
            id,
            start,
            end: self.end(),
            nl: bytes.last() == Some(&b'\n'),
            answered: false,
        });
    }

    /// Messages still waiting for (the rest of) their echo.
    pub fn waiting(&self) -> usize {
        self.sent.iter().filter(|s| !s.answered).count()
    }

    /// Ids of the messages waiting, oldest first.
    pub fn waiting_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.sent.iter().filter(|s| !s.answered).map(|s| s.id)
    }

    /// Forgets everything (the connection is gone) and returns the ids that
    /// were waiting, oldest first.
    pub fn drain(&mut self) -> Vec<u64> {
        let ids = self.waiting_ids().collect();
        *self = Self::new();
        ids
    }

    /// Feeds reply bytes; appends what they complete to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<PlainReply>) {
        for &b in data {
            if self.line.len() < MAX_OTHER {
                self.line.push(b);
            }
            if self.stray.is_some() {
                self.stray_byte(b, out);
            } else {
                self.step(b, out);
            }
            if b == b'\n' {
                self.line.clear();
            }
        }
    }

    /// Advances every reading by one byte.
    fn step(&mut self, b: u8, out: &mut Vec<PlainReply>) {
        let prefix = REPLY_PREFIX.as_bytes();
        let mut next = std::mem::take(&mut self.next);
        next.clear();
        for r in &self.readings {
            match r.prefix {
                None => {
                    if self.byte_at(r.pos) == Some(b) {
                        next.push(Reading {
                            pos: r.pos + 1,
                            prefix: None,
                        });
                    }
                    if b == prefix[0] {
                        next.push(Reading {
                            pos: r.pos,
                            prefix: Some(1),
                        });
                    }
                    // A server that drops newlines: go on as if the last
                    // newline of a message had come back.
                    if b != b'\n'
                        && self.byte_at(r.pos) == Some(b'\n')
                        && self.sent.iter().any(|s| s.end == r.pos + 1)
                    {
                        let skip = r.pos + 1;
                        if self.byte_at(skip) == Some(b) {
                            next.push(Reading {
                                pos: skip + 1,
                                prefix: None,
                            });
                        }
                        if b == prefix[0] {
                            next.push(Reading {
                                pos: skip,
                                prefix: Some(1),
                            });
                        }
                    }
                    // chatmon's own newline after the echo of a message that
                    // was sent without one.
                    if b == b'\n' && self.is_boundary(r.pos) {
                        next.push(Reading {
                            pos: r.pos,
                            prefix: Some(0),
                        });
                    }
                }
                Some(k) if b == prefix[k] => next.push(Reading {
                    pos: r.pos,
                    prefix: (k + 1 < prefix.len()).then_some(k + 1),
                }),
                Some(_) => {}
            }
        }
        next.sort_unstable_by(|a, b| b.cmp(a));
        next.dedup();
        next.truncate(MAX_READINGS);
        if next.is_empty() {
            // No reading explains this byte: a line of the server's own.
            self.next = next;
            self.stray = Some((0, false));
            self.stray_byte(b, out);
            return;
        }
        self.next = std::mem::replace(&mut self.readings, next);
        let furthest = self.readings[0].pos;
        for s in self.sent.iter_mut() {
            if s.end - u64::from(s.nl) > furthest {
                break;
            }
            if !s.answered {
                s.answered = true;
                out.push(PlainReply::Answered { id: s.id });
            }
        }
        self.trim();
    }

    fn byte_at(&self, pos: u64) -> Option<u8> {
        let i = usize::try_from(pos.checked_sub(self.base)?).ok()?;
        self.bytes.get(i).copied()
    }

    /// Whether `pos` is where one message ends and the next begins.
    fn is_boundary(&self, pos: u64) -> bool {
        self.sent.iter().any(|s| s.start == pos || s.end == pos)
    }

    /// Drops the bytes and messages no reading can reach any more.
    fn trim(&mut self) {
        let Some(behind) = self.readings.iter().map(|r| r.pos).min() else {
            return;
        };
        while let Some(s) = self.sent.front() {
            if !s.answered || s.end >= behind {
                break;
            }
            self.sent.pop_front();
        }
        let drop = usize::try_from(behind.saturating_sub(self.base)).unwrap_or(0);
        let drop = drop.min(self.bytes.len());
        self.bytes.drain(..drop);
        self.base += drop as u64;
    }

    /// A byte of a line that no reading explains.
    fn stray_byte(&mut self, b: u8, out: &mut Vec<PlainReply>) {
        let Some((len, answered)) = self.stray.as_mut() else {
            return;
        };
        *len += 1;
        if b != b'\n' && *len < MAX_OTHER {
            return;
        }
        let first = !*answered;
        *answered = true;
        *len = 0;
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        // A plain server answers each message with an echo or a line of its
        // own: a stray line answers the oldest waiting message, even one
        // half echoed and then mangled.
        let id = if first {
            let oldest = self.sent.iter_mut().find(|s| !s.answered);
            oldest.map(|s| {
                s.answered = true;
                s.id
            })
        } else {
            None
        };
        out.push(PlainReply::Other {
            id,
            line: String::from_utf8_lossy(&line).into_owned(),
        });
        if b == b'\n' {
            // Start again at the oldest message still waiting, at a line
            // start.
            let pos = self
                .sent
                .iter()
                .find(|s| !s.answered)
                .map_or(self.end(), |s| s.start);
            self.readings.clear();
            self.readings.push(Reading {
                pos,
                prefix: Some(0),
            });
            self.stray = None;
            self.trim();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sent: &[(u64, &[u8])], chunks: &[&[u8]]) -> (Vec<PlainReply>, usize) {
        let mut m = PlainMatcher::new();
        for (id, b) in sent {
            m.sent(*id, b);
        }
        let mut out = Vec::new();
        for c in chunks {
            m.push(c, &mut out);
        }
        (out, m.waiting())
    }

    fn answered(ids: &[u64]) -> Vec<PlainReply> {
        ids.iter().map(|&id| PlainReply::Answered { id }).collect()
    }

    #[test]
    fn chatmon_style_one_reply_per_line() {
        let (out, left) = run(
            &[(1, b"hi\n"), (2, b"yo\n")],
            &[b"Server received: hi\nServer received: yo\n"],
        );
        assert_eq!(out, answered(&[1, 2]));
        assert_eq!(left, 0);
    }

    #[test]
    fn every_split_of_the_stream_gives_the_same_answers() {
        let stream = b"Server received: hi\nServer received: yo\n";
        for cut in 0..=stream.len() {
            let (out, left) = run(
                &[(1, b"hi\n"), (2, b"yo\n")],
                &[&stream[..cut], &stream[cut..]],
            );
            assert_eq!(out, answered(&[1, 2]), "cut at {cut}");
            assert_eq!(left, 0);
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let (out, _) = run(&[(1, b"hi\n"), (2, b"yo\n")], &bytes);
        assert_eq!(out, answered(&[1, 2]));
    }

    #[test]
    fn seed_server_coalesced_messages_under_one_prefix() {
        // recv(1024) read both messages at once: one prefix, no newline of
        // its own.
        let (out, left) = run(
            &[(1, b"hi\n"), (2, b"yo\n")],
            &[b"Server received: hi\nyo\n"],
        );
        assert_eq!(out, answered(&[1, 2]));
        assert_eq!(left, 0);
        // The seed's own client sends no newline at all.
        let (out, _) = run(&[(1, b"ab"), (2, b"cd")], &[b"Server received: abcd"]);
        assert_eq!(out, answered(&[1, 2]));
        let (out, _) = run(
            &[(1, b"ab"), (2, b"cd")],
            &[b"Server received: abServer received: cd"],
        );
        assert_eq!(out, answered(&[1, 2]));
    }

    #[test]
    fn seed_server_long_message_in_1024_byte_chunks() {
        let msg: Vec<u8> = (0..2500u32)
            .map(|i| b'a' + (i % 26) as u8)
            .chain(std::iter::once(b'\n'))
            .collect();
        let mut stream = Vec::new();
        for chunk in msg.chunks(1024) {
            stream.extend_from_slice(REPLY_PREFIX.as_bytes());
            stream.extend_from_slice(chunk);
        }
        for split in [1usize, 7, 1000, 1024, 4096] {
            let chunks: Vec<&[u8]> = stream.chunks(split).collect();
            let (out, left) = run(&[(1, &msg), (2, b"x\n")], &chunks);
            assert_eq!(out, answered(&[1]), "split {split}");
            assert_eq!(left, 1);
        }
        // The answer comes with the last chunk, not the first.
        let mut m = PlainMatcher::new();
        m.sent(1, &msg);
        let mut out = Vec::new();
        m.push(&stream[..REPLY_PREFIX.len() + 1024], &mut out);
        assert!(out.is_empty());
        m.push(&stream[REPLY_PREFIX.len() + 1024..], &mut out);
        assert_eq!(out, answered(&[1]));
    }

    #[test]
    fn a_message_holding_the_prefix_text_still_matches() {
        let (out, _) = run(
            &[(1, b"Server received: x\n"), (2, b"Server y\n")],
            &[b"Server received: Server received: x\nServer received: Server y\n"],
        );
        assert_eq!(out, answered(&[1, 2]));
    }

    #[test]
    fn chatmon_newline_after_a_message_sent_without_one() {
        // chatmon's plain mode answers a newline-less message (after its
        // 20 ms pause) with `Server received: T\n`.
        let (out, left) = run(
            &[(1, b"ab"), (2, b"cd")],
            &[b"Server received: ab\nServer received: cd\n"],
        );
        assert_eq!(out, answered(&[1, 2]));
        assert_eq!(left, 0);
    }

    #[test]
    fn error_lines_answer_the_oldest_message_and_matching_goes_on() {
        let (out, left) = run(
            &[(1, b"way too long\n"), (2, b"ok\n")],
            &[b"Error: line too long (12 bytes, limit 4); discarded\nServer received: ok\n"],
        );
        assert_eq!(
            out,
            vec![
                PlainReply::Other {
                    id: Some(1),
                    line: "Error: line too long (12 bytes, limit 4); discarded".into()
                },
                PlainReply::Answered { id: 2 }
            ]
        );
        assert_eq!(left, 0);
        // With nothing waiting, a line is just a line.
        let (out, _) = run(&[], &[b"Authenticated.\r\n"]);
        assert_eq!(
            out,
            vec![PlainReply::Other {
                id: None,
                line: "Authenticated.".into()
            }]
        );
    }

    #[test]
    fn a_server_that_drops_newlines_still_answers() {
        // Each message is answered once all but its newline came back.
        let (out, left) = run(
            &[(1, b"ab\n"), (2, b"cd\n")],
            &[b"Server received: ab", b"Server received: cd"],
        );
        assert_eq!(out, answered(&[1, 2]));
        assert_eq!(left, 0);
        // And with the newline, once only.
        let (out, _) = run(&[(1, b"ab\n")], &[b"Server received: ab", b"\n"]);
        assert_eq!(out, answered(&[1]));
    }

    #[test]
    fn a_half_matched_prefix_is_part_of_the_stray_line() {
        let (out, _) = run(&[(1, b"a\n")], &[b"Serv", b"ice down\n"]);
        assert_eq!(
            out,
            vec![PlainReply::Other {
                id: Some(1),
                line: "Service down".into()
            }]
        );
    }

    #[test]
    fn a_mangled_echo_answers_its_message_as_a_stray_line() {
        let (out, left) = run(
            &[(1, b"abc\n"), (2, b"d\n")],
            &[b"Server received: abX\nServer received: d\n"],
        );
        assert_eq!(
            out,
            vec![
                PlainReply::Other {
                    id: Some(1),
                    line: "Server received: abX".into()
                },
                PlainReply::Answered { id: 2 }
            ]
        );
        assert_eq!(left, 0);
    }

    #[test]
    fn stray_lines_are_bounded_and_answer_one_message() {
        let long = vec![b'z'; MAX_OTHER * 3];
        let (out, left) = run(&[(1, b"a\n"), (2, b"b\n")], &[&long, b"\n"]);
        assert_eq!(out.len(), 4);
        assert!(
            matches!(&out[0], PlainReply::Other { id: Some(1), line } if line.len() == MAX_OTHER)
        );
        assert!(
            out[1..]
                .iter()
                .all(|r| matches!(r, PlainReply::Other { id: None, .. }))
        );
        assert_eq!(left, 1);
    }

    #[test]
    fn a_chunk_ending_where_the_message_spells_the_prefix() {
        // The seed server's recv ended after "ab"; the message goes on with
        // "Serv", so the next reply's "Serv" is first taken for the echo.
        let (out, left) = run(
            &[(1, b"abServ!\n")],
            &[b"Server received: abServer received: Serv!\n"],
        );
        assert_eq!(out, answered(&[1]));
        assert_eq!(left, 0);
    }

    #[test]
    fn drain_returns_what_was_waiting_and_starts_afresh() {
        let mut m = PlainMatcher::new();
        m.sent(1, b"a\n");
        m.sent(2, b"b\n");
        let mut out = Vec::new();
        m.push(b"Server received: a\nServer rec", &mut out);
        assert_eq!(out, answered(&[1]));
        assert_eq!(m.drain(), vec![2]);
        m.sent(3, b"c\n");
        m.push(b"Server received: c\n", &mut out);
        assert_eq!(out, answered(&[1, 3]));
    }

    /// Random messages, served seed-style (random `recv` chunk sizes, each
    /// answered with the prefix) or chatmon-style, read back in random splits:
    /// every message is answered, in order.
    #[test]
    fn random_streams_match_in_order() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let words: [&[u8]; 6] = [b"hello", b"Serv", b"Server received", b"er", b" ", b"x"];
        for round in 0..3000 {
            let count = 1 + next(6);
            let newline = next(2) == 0;
            let msgs: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let mut m = Vec::new();
                    for _ in 0..1 + next(4) {
                        m.extend_from_slice(words[next(words.len() as u64) as usize]);
                    }
                    if newline {
                        m.push(b'\n');
                    }
                    m
                })
                .collect();
            let mut stream = Vec::new();
            if next(2) == 0 {
                let all: Vec<u8> = msgs.concat();
                let mut i = 0;
                while i < all.len() {
                    let n = (1 + next(30) as usize).min(all.len() - i);
                    stream.extend_from_slice(REPLY_PREFIX.as_bytes());
                    stream.extend_from_slice(&all[i..i + n]);
                    i += n;
                }
            } else {
                for m in &msgs {
                    stream.extend_from_slice(REPLY_PREFIX.as_bytes());
                    stream.extend_from_slice(m.strip_suffix(b"\n").unwrap_or(m));
                    stream.push(b'\n');
                }
            }
            let mut m = PlainMatcher::new();
            for (id, b) in msgs.iter().enumerate() {
                m.sent(id as u64, b);
            }
            let mut out = Vec::new();
            let mut i = 0;
            while i < stream.len() {
                let n = (1 + next(40) as usize).min(stream.len() - i);
                m.push(&stream[i..i + n], &mut out);
                i += n;
            }
            let ids: Vec<u64> = (0..count).collect();
            assert_eq!(
                out,
                answered(&ids),
                "round {round}: {:?}",
                String::from_utf8_lossy(&stream)
            );
        }
    }
}
