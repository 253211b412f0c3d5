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
//!
//! `framer` splits bytes into lines; `names` holds the rules for names and
//! message text. Everything is re-exported here.

mod framer;
mod names;

pub use self::framer::{Frame, LineFramer};
pub use self::names::{NameError, TextError, check_text, name_key, sanitize_name, validate_name};

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
    /// that round trips can be matched even while relays interleave. The
    /// optional stamps (see [`crate::timing`]) travel on to every receiver in
    /// the relayed `chat`, so that each can work out the one-way delay.
    Msg {
        id: u64,
        text: String,
        /// The sender's wall clock just before it wrote this line, µs since
        /// the Unix epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent_us: Option<i64>,
        /// The sender's clock offset to the server (server minus sender), µs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset_us: Option<i64>,
        /// The offset's error bound, µs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound_us: Option<u64>,
    },
    /// Change display name.
    Nick { name: String },
    /// Start or stop receiving the server's event stream.
    Subscribe { on: bool },
    /// Keeps a quiet but present client (someone who only reads) from being
    /// closed by the server's idle timeout. With an `id`, it asks for a
    /// `pong` carrying the server's stamps: a round trip that measures the
    /// clock offset without a message to the room (servers that predate it
    /// ignore the id and answer nothing).
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// A latency probe: answered at once with a `probe_reply` carrying the
    /// same `id`; never relayed, shown or logged by the server.
    Probe { id: u64 },
}

impl ClientMsg {
    /// A chat message without stamps.
    pub fn msg(id: u64, text: impl Into<String>) -> ClientMsg {
        ClientMsg::Msg {
            id,
            text: text.into(),
            sent_us: None,
            offset_us: None,
            bound_us: None,
        }
    }
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
    /// Answer to one `msg`, carrying its id, and the server's wall clock (µs
    /// since the Unix epoch) when it read the message and just before it
    /// wrote this reply: t2 and t3 of NTP's four timestamps.
    Reply {
        id: u64,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_us: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write_us: Option<i64>,
    },
    /// Answer to a `ping` with an id: the server's read and write times only.
    Pong {
        id: u64,
        read_us: i64,
        write_us: i64,
    },
    /// Answer to one `probe`, carrying its id and, like a reply, the
    /// server's read and write times (absent from servers that predate them).
    ProbeReply {
        id: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_us: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write_us: Option<i64>,
    },
    /// Someone else's message, relayed. `ts` is the server's local time;
    /// `read_us` the server's wall clock when it read the original; the rest
    /// are the sender's stamps from its `msg`, passed on as they came.
    Chat {
        from: String,
        text: String,
        ts: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read_us: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sent_us: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset_us: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bound_us: Option<u64>,
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
    /// The state of this server's link to the other nodes of its cluster
    /// (`serve --cluster`): sent after the welcome when the link is not up,
    /// and to everyone whenever it goes down or comes back. A server that is
    /// not in a cluster never sends it.
    Cluster {
        /// The link to NATS is up: the room spans every node.
        up: bool,
        /// This server's node name.
        node: String,
    },
}

impl ServerMsg {
    /// A reply without the server's stamps (as servers before them sent).
    pub fn reply(id: u64, text: impl Into<String>) -> ServerMsg {
        ServerMsg::Reply {
            id,
            text: text.into(),
            read_us: None,
            write_us: None,
        }
    }

    /// A relayed message without stamps.
    pub fn chat(
        from: impl Into<String>,
        text: impl Into<String>,
        ts: impl Into<String>,
    ) -> ServerMsg {
        ServerMsg::Chat {
            from: from.into(),
            text: text.into(),
            ts: ts.into(),
            read_us: None,
            sent_us: None,
            offset_us: None,
            bound_us: None,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = ClientMsg::msg(7, "héllo \"x\" 🎉");
        let line = encode(&m);
        assert!(line.ends_with('\n'));
        let back: ClientMsg = decode(line.trim_end().as_bytes()).expect("decodes");
        assert_eq!(back, m);
    }

    #[test]
    fn stamps_are_optional_and_old_lines_stay_the_same() {
        // Without stamps, the bytes are what they always were.
        assert_eq!(
            encode(&ClientMsg::msg(1, "hi")),
            "{\"type\":\"msg\",\"id\":1,\"text\":\"hi\"}\n"
        );
        assert_eq!(
            encode(&ClientMsg::Ping { id: None }),
            "{\"type\":\"ping\"}\n"
        );
        assert_eq!(
            encode(&ServerMsg::reply(1, "Server received: hi")),
            "{\"type\":\"reply\",\"id\":1,\"text\":\"Server received: hi\"}\n"
        );
        // An old client's lines decode with no stamps; a new one's round-trip.
        let old: ServerMsg =
            decode(br#"{"type":"chat","from":"a","text":"x","ts":"t"}"#).expect("decodes");
        assert_eq!(old, ServerMsg::chat("a", "x", "t"));
        let m = ClientMsg::Msg {
            id: 2,
            text: "x".into(),
            sent_us: Some(1_764_000_000_000_000),
            offset_us: Some(-2_000_012),
            bound_us: Some(45),
        };
        let line = encode(&m);
        assert_eq!(
            line,
            "{\"type\":\"msg\",\"id\":2,\"text\":\"x\",\"sent_us\":1764000000000000,\"offset_us\":-2000012,\"bound_us\":45}\n"
        );
        assert_eq!(decode::<ClientMsg>(line.trim_end().as_bytes()), Ok(m));
        // An old server takes a ping with an id as a plain ping.
        assert_eq!(
            decode::<ClientMsg>(br#"{"type":"ping","id":9}"#),
            Ok(ClientMsg::Ping { id: Some(9) })
        );
        let pong = ServerMsg::Pong {
            id: 9,
            read_us: 5,
            write_us: 7,
        };
        assert_eq!(
            decode::<ServerMsg>(encode(&pong).trim_end().as_bytes()).expect("decodes"),
            pong
        );
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
    fn probe_wire_form() {
        let p = encode(&ClientMsg::Probe { id: 9 });
        assert_eq!(p, "{\"type\":\"probe\",\"id\":9}\n");
        let unstamped = ServerMsg::ProbeReply {
            id: 9,
            read_us: None,
            write_us: None,
        };
        let r = encode(&unstamped);
        assert_eq!(r, "{\"type\":\"probe_reply\",\"id\":9}\n");
        let back: ServerMsg = decode(r.trim_end().as_bytes()).expect("decodes");
        assert_eq!(back, unstamped);
        let stamped = ServerMsg::ProbeReply {
            id: 9,
            read_us: Some(1),
            write_us: Some(2),
        };
        let r = encode(&stamped);
        assert_eq!(
            r,
            "{\"type\":\"probe_reply\",\"id\":9,\"read_us\":1,\"write_us\":2}\n"
        );
        assert_eq!(
            decode::<ServerMsg>(r.trim_end().as_bytes()).expect("decodes"),
            stamped
        );
        // A probe before the hello stays a plain line, as it was before
        // probes existed: plain sessions are unaffected.
        assert!(!is_chat_before_hello(p.trim_end().as_bytes()));
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
        let line = encode(&ClientMsg::msg(1, text.clone()));
        let back: ClientMsg = decode(line.trim_end().as_bytes()).expect("decodes");
        assert_eq!(back, ClientMsg::msg(1, text));
        let escaped = encode(&ClientMsg::msg(2, "\\\"[[[[[[[[[["));
        assert!(decode::<ClientMsg>(escaped.trim_end().as_bytes()).is_ok());
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
}
