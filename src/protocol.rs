//! The wire protocol: framing, message types, limits. This module holds the
//! only encoder ([`encode`]) and the only decoder ([`decode`]) of chatmon's
//! messages, and the only line framer ([`LineFramer`]).
//!
//! Every message is one line of UTF-8 ending in `\n`. A connection whose first
//! line is a chatmon `hello` (a JSON object) is a *chat* session and speaks JSON
//! lines from then on; any other connection is a *plain* session, where each
//! line `T` is answered with `Server received: T` (the seed's protocol, so `nc`
//! and the seed's Python client work unchanged). A first line that is a chat
//! message other than a hello ([`is_chat_before_hello`]) gets a chat error
//! asking for the hello instead.

use serde::{Deserialize, Serialize};

/// Default server address: loopback, so nothing is exposed unless asked.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7878";
/// Default maximum line length in bytes (without the newline).
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
/// Protocol version carried in the hello, so a future server can refuse an
/// incompatible client with words instead of garbage.
pub const PROTOCOL_VERSION: u32 = 1;
/// Names longer than this are refused: they would wreck every layout and let a
/// user push other people's text off screen.
pub const MAX_NAME_LEN: usize = 32;
/// The prefix of every reply, as in the seed.
pub const REPLY_PREFIX: &str = "Server received: ";
/// The words of the `shutdown` message a stopping chatmon server sends.
pub const SHUTDOWN_NOTICE: &str = "server is stopping";
/// The first line a plain session sends when the server requires a token.
pub const PLAIN_AUTH_PREFIX: &str = "AUTH ";

/// What a chat client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Opens a chat session. Must be the first line.
    Hello {
        /// Protocol version the client speaks.
        v: u32,
        /// Wanted display name; the server makes it unique.
        name: String,
        /// Shared secret, when the server was started with `--token`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// Ask for the server's event stream from the start.
        #[serde(default, skip_serializing_if = "is_false")]
        subscribe: bool,
    },
    /// A chat message; `id` is chosen by the client and echoed in the reply so
    /// that round trips can be matched even while relays interleave.
    Msg { id: u64, text: String },
    /// Change display name.
    Nick { name: String },
    /// Start or stop receiving the server's event stream.
    Subscribe { on: bool },
    /// Nothing to do: keeps a quiet but present client (someone who only
    /// reads) from being closed by the server's idle timeout.
    Ping,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// What a server sends to a chat client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to `hello`: the name actually given and who is in the room.
    /// On the wire `embedded` is no field of its own: an embedded server's
    /// `server` text ends with [`EMBEDDED_MARK`], as it always has, and the
    /// decoder sets `embedded` from it.
    #[serde(
        serialize_with = "welcome::serialize",
        deserialize_with = "welcome::deserialize"
    )]
    Welcome {
        name: String,
        users: Vec<String>,
        /// The server's own description (`chatmon 0.1.0 ...`).
        server: String,
        /// Run by a chat TUI in its own process (see [`EMBEDDED_MARK`]).
        embedded: bool,
    },
    /// Answer to one `msg`, carrying its id.
    Reply { id: u64, text: String },
    /// Someone else's message, relayed. `ts` is the server's local time.
    Chat {
        from: String,
        text: String,
        ts: String,
    },
    /// Someone joined; `users` is the room size afterwards.
    Join { name: String, users: usize },
    /// Someone left; `users` is the room size afterwards.
    Leave {
        name: String,
        users: usize,
        reason: String,
    },
    /// Someone changed name.
    Nick { old: String, new: String },
    /// Something the client did was refused; the session goes on unless the
    /// server closes it.
    Error { message: String },
    /// The server is stopping; the connection closes next.
    Shutdown { message: String },
    /// One line of the server's event log (for subscribers).
    Event { line: String },
    /// Events the server could not deliver because this subscriber was slow.
    Dropped { count: u64 },
    /// Periodic server figures (for subscribers).
    Stats {
        clients: usize,
        names: Vec<String>,
        msgs_per_sec: f64,
        uptime_secs: u64,
    },
}

/// Appended to the welcome's `server` text by an embedded server (one a chat
/// TUI runs in its own process), so that when it goes away other TUIs may take
/// over its address, while a stopped `chatmon serve` keeps its address free
/// for its restart.
pub const EMBEDDED_MARK: &str = "(in a chat TUI)";

/// The welcome's `server` text of this build.
pub fn server_description(embedded: bool) -> String {
    if embedded {
        format!("chatmon {} {EMBEDDED_MARK}", env!("CARGO_PKG_VERSION"))
    } else {
        format!("chatmon {}", env!("CARGO_PKG_VERSION"))
    }
}

/// The wire form of [`ServerMsg::Welcome`]: the fields as they were before
/// `embedded` existed, so that the bytes stay the same.
mod welcome {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::EMBEDDED_MARK;

    #[derive(Serialize)]
    struct Out<'a> {
        name: &'a str,
        users: &'a [String],
        server: &'a str,
    }

    #[derive(Deserialize)]
    struct In {
        name: String,
        users: Vec<String>,
        server: String,
    }

    pub(super) fn serialize<S: Serializer>(
        name: &str,
        users: &[String],
        server: &str,
        _embedded: &bool,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        Out {
            name,
            users,
            server,
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<(String, Vec<String>, String, bool), D::Error> {
        let w = In::deserialize(d)?;
        let embedded = w.server.ends_with(EMBEDDED_MARK);
        Ok((w.name, w.users, w.server, embedded))
    }
}

/// Why a display name is refused. The texts are what users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("name may only hold letters, digits, '_', '-' and '.' (not {0:?})")]
    BadChar(char),
    #[error("the name {0:?} is reserved")]
    Reserved(String),
}

/// Why a message's text is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("message holds a NUL byte (at byte {at})")]
    NulByte { at: usize },
}

/// Why a line could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("message is not valid UTF-8 (byte {valid_up_to} is not)")]
    InvalidUtf8 { valid_up_to: usize },
    #[error("message is not a valid chatmon message: {0}")]
    Malformed(String),
}

/// Encodes one message as a line, newline included. The only encoder.
pub fn encode<T: Serialize>(msg: &T) -> String {
    // Serializing our own enums of strings and numbers cannot fail; a failure
    // would be a bug, and an empty object is still a valid (ignored) line.
    let mut s = serde_json::to_string(msg).unwrap_or_else(|_| String::from("{}"));
    s.push('\n');
    s
}

/// Deepest nesting of arrays and objects a message may have. chatmon's own
/// messages are at most 2 deep; the limit stops a line like `[[[[...` from
/// recursing through the decoder and overflowing a small thread stack (which
/// would abort the whole server).
pub const MAX_DEPTH: usize = 8;

/// Decodes one line (without its newline). The only decoder.
pub fn decode<'a, T: Deserialize<'a>>(line: &'a [u8]) -> Result<T, ProtocolError> {
    let text = as_utf8(line)?;
    check_depth(line)?;
    serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Refuses JSON nested deeper than [`MAX_DEPTH`], in one pass without
/// recursion (brackets inside strings do not count).
fn check_depth(line: &[u8]) -> Result<(), ProtocolError> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in line {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ProtocolError::Malformed(format!(
                        "nested deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a line is UTF-8, with an error that says where it is not.
pub fn as_utf8(line: &[u8]) -> Result<&str, ProtocolError> {
    std::str::from_utf8(line).map_err(|e| ProtocolError::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })
}

/// Whether a first line looks like a chatmon hello (rather than plain text
/// that happens to start with a brace).
pub fn looks_like_hello(line: &[u8]) -> bool {
    let t = line.trim_ascii_start();
    t.starts_with(b"{") && memfind(t, b"\"hello\"")
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The seed's reply to a message.
pub fn reply_text(text: &str) -> String {
    let mut s = String::with_capacity(REPLY_PREFIX.len() + text.len());
    s.push_str(REPLY_PREFIX);
    s.push_str(text);
    s
}

/// Checks a display name: 1..=32 characters, letters, digits and `_-.`, and
/// not one that could pass for the server (compared by [`name_key`], so that
/// `ЅERVER` with a Cyrillic `Ѕ` is refused too).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let n = name.chars().count();
    if n == 0 {
        return Err(NameError::Empty);
    }
    if n > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if let Some(c) = name.chars().find(|&c| !name_char(c)) {
        return Err(NameError::BadChar(c));
    }
    if matches!(
        name_key(name).as_str(),
        "server" | "chatmon" | "system" | "you"
    ) {
        return Err(NameError::Reserved(name.to_string()));
    }
    Ok(())
}

/// Whether `c` may appear in a name: letters, digits and `_-.`, but not the
/// styled copies of Latin letters (mathematical, circled, squared) that
/// exist only to look like other letters.
fn name_char(c: char) -> bool {
    (c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(c,
            '\u{2460}'..='\u{24FF}' // enclosed alphanumerics: ⓐ ①
            | '\u{1D400}'..='\u{1D7FF}' // mathematical alphanumerics: 𝐚 𝕒
            | '\u{1F100}'..='\u{1F1FF}' // enclosed supplement: 🄰
        )
}

/// The form in which names are compared, for uniqueness and for the reserved
/// names: lowercase, with fullwidth forms and the common look-alikes of Latin
/// letters (Cyrillic and Greek `а е о р с х у`..., `0`/`1`, `I`/`l`)
/// folded to one Latin letter. Two names with one key would look the same in
/// the reply pane or the log, so the server never lets both in at once.
pub fn name_key(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '1' => 'l',
            '0' => 'o',
            // Fullwidth ASCII (！ to ～).
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'а' | 'α' => 'a',
            'в' | 'β' => 'b',
            'с' | 'ϲ' => 'c',
            'ԁ' => 'd',
            'е' | 'ё' | 'ε' => 'e',
            'һ' | 'н' => 'h',
            // Capital I and small l look the same in many fonts: one key
            // for both (so `bill` and `biil` clash, which costs a suffix).
            'i' | 'і' | 'ї' | 'ι' | 'ı' | 'ӏ' | 'ⅼ' => 'l',
            'ј' | 'ϳ' => 'j',
            'к' | 'κ' => 'k',
            'м' => 'm',
            'п' | 'η' => 'n',
            'о' | 'ο' | 'σ' => 'o',
            'р' | 'ρ' => 'p',
            'ԛ' => 'q',
            'ѕ' => 's',
            'т' | 'τ' => 't',
            'υ' => 'u',
            'ν' => 'v',
            'ԝ' | 'ω' => 'w',
            'х' | 'χ' => 'x',
            'у' | 'γ' => 'y',
            'ζ' => 'z',
            c => c,
        })
        .collect()
}

/// Whether a first line is a chat message other than a hello (`msg`, `nick`,
/// `subscribe`): a client that skipped its hello, to be told so rather than
/// be served as a plain session.
pub fn is_chat_before_hello(line: &[u8]) -> bool {
    let t = line.trim_ascii_start();
    if !t.starts_with(b"{") {
        return false;
    }
    #[derive(Deserialize)]
    struct Typed<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<&'a str>,
    }
    matches!(
        decode::<Typed>(t),
        Ok(Typed {
            kind: Some("msg" | "nick" | "subscribe")
        })
    )
}

/// Checks the text of a message: NUL bytes are refused (they truncate text in
/// C tools and terminals); everything else is kept and escaped where shown.
pub fn check_text(text: &str) -> Result<(), TextError> {
    match text.find('\0') {
        Some(at) => Err(TextError::NulByte { at }),
        None => Ok(()),
    }
}

/// Turns any string into a valid name, for defaults such as the login name.
pub fn sanitize_name(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .filter(|&c| name_char(c))
        .take(MAX_NAME_LEN)
        .collect();
    if validate_name(&s).is_err() {
        s = String::from("guest");
    }
    s
}

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

    #[test]
    fn messages_round_trip() {
        let m = ClientMsg::Msg {
            id: 7,
            text: "héllo \"x\" 🎉".into(),
        };
        let line = encode(&m);
        assert!(line.ends_with('\n'));
        let back: ClientMsg = decode(line.trim_end().as_bytes()).expect("decodes");
        assert_eq!(back, m);
    }

    #[test]
    fn decode_errors_are_clear() {
        let e = decode::<ClientMsg>(b"\xff\xfe").unwrap_err();
        assert_eq!(e, ProtocolError::InvalidUtf8 { valid_up_to: 0 });
        assert!(e.to_string().contains("not valid UTF-8"));
        let e = decode::<ClientMsg>(b"{\"type\":\"nope\"}").unwrap_err();
        assert!(matches!(e, ProtocolError::Malformed(_)));
    }

    #[test]
    fn hello_detection() {
        let h = encode(&ClientMsg::Hello {
            v: PROTOCOL_VERSION,
            name: "a".into(),
            token: None,
            subscribe: false,
        });
        assert!(looks_like_hello(h.trim_end().as_bytes()));
        assert!(!looks_like_hello(b"hello"));
        assert!(!looks_like_hello(b"{not json}"));
    }

    #[test]
    fn look_alike_names_share_a_key() {
        let alice = name_key("alice");
        for fake in [
            "Alice",
            "ALICE",
            "аlice",
            "AIice",
            "a1ice",
            "ａｌｉｃｅ",
            "аlicе",
        ] {
            assert_eq!(name_key(fake), alice, "{fake}");
        }
        assert_ne!(name_key("alice2"), alice);
        assert_eq!(name_key("李雷"), "李雷");
    }

    #[test]
    fn chat_before_hello_is_recognised() {
        assert!(is_chat_before_hello(br#"{"type":"msg","id":1,"text":"x"}"#));
        assert!(is_chat_before_hello(br#" {"type":"nick","name":"x"}"#));
        assert!(!is_chat_before_hello(
            br#"{"type":"hello","v":1,"name":"x"}"#
        ));
        assert!(!is_chat_before_hello(b"{not json}"));
        assert!(!is_chat_before_hello(b"msg"));
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = decode::<ClientMsg>(deep.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("nested deeper than 8"), "{e}");
        assert!(!is_chat_before_hello(
            format!("{{\"type\":\"msg\",\"x\":{deep}}}").as_bytes()
        ));
        // Brackets inside strings are text, not nesting.
        let text = "[".repeat(100);
        let line = encode(&ClientMsg::Msg {
            id: 1,
            text: text.clone(),
        });
        let back: ClientMsg = decode(line.trim_end().as_bytes()).expect("decodes");
        assert_eq!(back, ClientMsg::Msg { id: 1, text });
        let escaped = encode(&ClientMsg::Msg {
            id: 2,
            text: "\\\"[[[[[[[[[[".into(),
        });
        assert!(decode::<ClientMsg>(escaped.trim_end().as_bytes()).is_ok());
    }

    #[test]
    fn nul_bytes_are_refused() {
        assert!(check_text("fine \u{1b}[31m").is_ok());
        let e = check_text("a\0b").unwrap_err();
        assert_eq!(e, TextError::NulByte { at: 1 });
        assert_eq!(e.to_string(), "message holds a NUL byte (at byte 1)");
    }

    #[test]
    fn welcome_wire_is_unchanged_and_decodes_embedded() {
        for embedded in [false, true] {
            let w = ServerMsg::Welcome {
                name: "a".into(),
                users: vec!["a".into()],
                server: server_description(embedded),
                embedded,
            };
            let line = encode(&w);
            let want = format!(
                "{{\"type\":\"welcome\",\"name\":\"a\",\"users\":[\"a\"],\"server\":\"{}\"}}\n",
                server_description(embedded)
            );
            assert_eq!(line, want);
            assert_eq!(line.ends_with("(in a chat TUI)\"}\n"), embedded);
            let back: ServerMsg = decode(line.trim_end().as_bytes()).expect("decodes");
            assert_eq!(back, w);
        }
    }

    #[test]
    fn name_errors_read_as_before() {
        assert_eq!(validate_name("").unwrap_err().to_string(), "name is empty");
        assert_eq!(
            validate_name(&"x".repeat(33)).unwrap_err().to_string(),
            "name is longer than 32 characters"
        );
        assert_eq!(
            validate_name("a b").unwrap_err().to_string(),
            "name may only hold letters, digits, '_', '-' and '.' (not ' ')"
        );
        assert_eq!(
            validate_name("Server").unwrap_err(),
            NameError::Reserved("Server".into())
        );
        assert_eq!(
            validate_name("Server").unwrap_err().to_string(),
            "the name \"Server\" is reserved"
        );
    }

    #[test]
    fn names_are_validated() {
        assert!(validate_name("alice").is_ok());
        assert!(validate_name("李雷").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("Server").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("evil\u{1b}[2J").is_err());
        assert!(validate_name(&"x".repeat(33)).is_err());
        assert!(validate_name("Ѕerver").is_err(), "Cyrillic Ѕ");
        assert!(validate_name("ＳＥＲＶＥＲ").is_err(), "fullwidth");
        assert!(validate_name("y0u").is_err());
        assert!(validate_name("𝐚lice").is_err(), "mathematical bold");
        assert!(validate_name("a\u{200b}b").is_err(), "zero-width space");
        assert!(validate_name("a\u{301}").is_err(), "combining mark");
        assert_eq!(sanitize_name("j doe!"), "jdoe");
        assert_eq!(sanitize_name("!!"), "guest");
    }
}
