//! What a log event is, for the report: the only place in `report` that
//! reads an event's kind name or message text. Everything else works on
//! [`Record`]. Must not know about buckets, histograms or output.
//!
//! chatmon's own lines are read through the event log's typed
//! [`LogMessage`]; lines it did not write (the seed's, older or foreign
//! text) by the seed-era text rules in [`classify_foreign`]. `Stats` lines
//! are read leniently as `key=value` words, so foreign ones count too.

use std::time::Duration;

use crate::eventlog::{self, EventKind, LogMessage, OneWayDelay};
use crate::protocol::REPLY_PREFIX;

/// What one event means to the report.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record<'a> {
    /// A server received a message (chatmon server `Message Received`).
    ServerReceived,
    /// A client received something: a reply, with or without its round trip,
    /// or another client's relayed message.
    ClientReceived(Received<'a>),
    /// A client sent a message (server `Message Sent` lines are replies, and
    /// count as [`Record::Other`]).
    ClientSent {
        /// The sender's name; empty in seed logs.
        client: &'a str,
    },
    /// A connection opened (`delta` 1) or closed (-1).
    Connection {
        /// Logged by a server, not a client: see [`super`] on why the two
        /// are counted apart.
        from_server: bool,
        delta: i64,
    },
    Error {
        message: &'a str,
    },
    /// A `Stats` line, `None` when its figures do not parse.
    Stats(Option<StatsFields>),
    /// Counted by its kind only.
    Other,
}

/// A client's received line: whose, its round trip if it was a reply the
/// client timed, and whether it was a server's reply at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received<'a> {
    client: &'a str,
    rtt: Option<Duration>,
    reply: bool,
    /// Where the time went, from a chatmon client's reply or relay line.
    timing: Timing,
}

/// The figures a chatmon client's line carries about where the time went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Timing {
    /// `server=` and `net=` of a reply line.
    pub(crate) split: Option<(Duration, Duration)>,
    /// `offset=` of a reply line.
    pub(crate) offset: Option<OneWayDelay>,
    /// `delay=` of a relay line.
    pub(crate) delay: Option<OneWayDelay>,
}

impl<'a> Received<'a> {
    /// The round trip the client recorded (`rtt=`), if it did.
    #[inline]
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The receiving client's name; empty in seed logs.
    #[inline]
    pub(crate) fn client(&self) -> &'a str {
        self.client
    }

    /// Where the time went, as far as the line says.
    #[inline]
    pub(crate) fn timing(&self) -> Timing {
        self.timing
    }

    /// Whether it is a server's reply (`Server received: ...`) rather than
    /// another client's relayed message.
    #[inline]
    pub(crate) fn is_reply(&self) -> bool {
        self.reply
    }
}

/// The figures of a `Stats` line; absent keys stay zero.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StatsFields {
    pub clients: u64,
    pub messages: u64,
    /// Messages per second over the interval.
    pub rate: f64,
    pub errors: u64,
    pub interval_secs: f64,
}

/// What the event of kind `kind` with message `message` means to the report.
#[inline]
pub(crate) fn classify<'a>(kind: &str, message: &'a str) -> Record<'a> {
    use LogMessage as M;
    let Some(kind) = EventKind::known(kind) else {
        return Record::Other;
    };
    match kind {
        // Every form counts, chatmon's or not, with its whole text.
        EventKind::Error => return Record::Error { message },
        EventKind::Stats => return Record::Stats(stats_fields(message)),
        _ => {}
    }
    let connection = |from_server, delta| Record::Connection { from_server, delta };
    match LogMessage::parse(&kind, message) {
        M::ServerReceived { .. } => Record::ServerReceived,
        M::ClientReply {
            name,
            rtt,
            server_time,
            net,
            offset,
            ..
        } => Record::ClientReceived(Received {
            client: name,
            rtt: Some(rtt),
            reply: true,
            timing: Timing {
                split: server_time.zip(net),
                offset,
                delay: None,
            },
        }),
        M::ClientRelay { name, delay, .. } => Record::ClientReceived(Received {
            client: name,
            rtt: None,
            reply: false,
            timing: Timing {
                delay,
                ..Timing::default()
            },
        }),
        M::ClientSent { name, .. } => Record::ClientSent { client: name },
        M::ServerConnected { .. } => connection(true, 1),
        M::ClientConnected { .. } => connection(false, 1),
        M::ServerDisconnected { .. } => connection(true, -1),
        M::ClientDisconnected { .. } => connection(false, -1),
        M::Other(text) => classify_foreign(&kind, text),
        // The server's replies, joins, start and stop: counted by kind.
        _ => Record::Other,
    }
}

/// Lines chatmon did not write: a line without ` <- ` / ` -> ` is the
/// unnamed client's, a received line holding the reply prefix is a reply,
/// and a message starting `server ` or `server:` is a server's.
fn classify_foreign<'a>(kind: &EventKind, message: &'a str) -> Record<'a> {
    let from_server = message.starts_with("server ") || message.starts_with("server:");
    match kind {
        EventKind::MessageReceived if from_server => Record::ServerReceived,
        EventKind::MessageReceived => Record::ClientReceived(Received {
            client: client_before(message, " <- "),
            rtt: eventlog::rtt_from_message(message),
            reply: message.contains(REPLY_PREFIX),
            timing: Timing::default(),
        }),
        EventKind::MessageSent if !from_server => Record::ClientSent {
            client: client_before(message, " -> "),
        },
        EventKind::Connection => Record::Connection {
            from_server,
            delta: 1,
        },
        EventKind::Disconnection => Record::Connection {
            from_server,
            delta: -1,
        },
        _ => Record::Other,
    }
}

/// The client name in a chatmon client line: the word before `sep`. Seed
/// lines have none, and all fall under the empty name.
fn client_before<'a>(msg: &'a str, sep: &str) -> &'a str {
    match msg.find(sep) {
        Some(i) => msg[..i].rsplit(' ').next().unwrap_or(""),
        None => "",
    }
}

/// Reads `server: clients=N messages=M rate=R/s ... errors=E interval=Ss`.
/// `None` when a known key's value does not parse, or there is no `key=value`.
fn stats_fields(msg: &str) -> Option<StatsFields> {
    let mut p = StatsFields::default();
    let mut any = false;
    for word in msg.split_whitespace() {
        let Some((k, v)) = word.split_once('=') else {
            continue;
        };
        any = true;
        match k {
            "clients" => p.clients = v.parse().ok()?,
            "messages" => p.messages = v.parse().ok()?,
            "rate" => p.rate = v.trim_end_matches("/s").parse().ok()?,
            "errors" => p.errors = v.parse().ok()?,
            "interval" => p.interval_secs = v.trim_end_matches('s').parse().ok()?,
            _ => {}
        }
    }
    any.then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_come_before_the_arrow() {
        assert_eq!(client_before("alice <- server x", " <- "), "alice");
        assert_eq!(client_before("no arrow", " <- "), "");
        assert_eq!(client_before("alice -> server x #1: hi", " -> "), "alice");
    }

    #[test]
    fn server_and_client_lines_are_told_apart() {
        assert_eq!(
            classify("Message Received", "server <- bob@127.0.0.1:5555 #2: yo"),
            Record::ServerReceived
        );
        let Record::ClientReceived(r) = classify(
            "Message Received",
            "alice <- server 127.0.0.1:7878 #1 rtt=0.250ms: Server received: hi",
        ) else {
            panic!("a client's line");
        };
        assert_eq!(r.client(), "alice");
        assert_eq!(r.rtt(), Some(Duration::from_micros(250)));
        assert!(r.is_reply());
        // A server's `Message Sent` is its reply, not a client's send.
        assert_eq!(
            classify(
                "Message Sent",
                "server -> bob@127.0.0.1:5555 #2: Server received: yo"
            ),
            Record::Other
        );
        assert_eq!(
            classify("Message Sent", "alice -> server 127.0.0.1:7878 #1: hi"),
            Record::ClientSent { client: "alice" }
        );
        assert_eq!(
            classify("Disconnection", "server: 127.0.0.1:5555 disconnected"),
            Record::Connection {
                from_server: true,
                delta: -1
            }
        );
        assert_eq!(
            classify("Connection", "Client connected"),
            Record::Connection {
                from_server: false,
                delta: 1
            }
        );
        assert_eq!(classify("Join", "server: alice joined"), Record::Other);
    }

    #[test]
    fn seed_lines_belong_to_the_unnamed_client() {
        let Record::ClientReceived(r) =
            classify("Message Received", "Server received: Hello, Server!")
        else {
            panic!("a client's line");
        };
        assert_eq!((r.client(), r.rtt(), r.is_reply()), ("", None, true));
        let Record::ClientReceived(r) = classify("Message Received", "Hello, Client!") else {
            panic!("a client's line");
        };
        assert!(!r.is_reply());
    }

    #[test]
    fn stats_figures_parse_or_the_line_is_refused() {
        let Record::Stats(Some(f)) = classify(
            "Stats",
            "server: clients=3 messages=120 rate=12.0/s bytes_in=1 errors=1 interval=10.0s",
        ) else {
            panic!("stats");
        };
        assert_eq!((f.clients, f.messages, f.errors), (3, 120, 1));
        assert_eq!((f.rate, f.interval_secs), (12.0, 10.0));
        assert_eq!(classify("Stats", "server: clients=x"), Record::Stats(None));
        assert_eq!(classify("Stats", "no figures"), Record::Stats(None));
    }

    #[test]
    fn typed_lines_are_not_fooled_by_the_text_inside() {
        // Another client's message that quotes a reply is not a reply.
        let Record::ClientReceived(r) = classify(
            "Message Received",
            "alice <- bob via 127.0.0.1:7878: Server received: rtt=9.000ms",
        ) else {
            panic!("a client's line");
        };
        assert_eq!((r.client(), r.rtt(), r.is_reply()), ("alice", None, false));
        // A reply whose text holds `rtt=` keeps the client's own figure.
        let Record::ClientReceived(r) = classify(
            "Message Received",
            "alice <- server 127.0.0.1:7878 #3 rtt=0.500ms: Server received: rtt=9.000ms",
        ) else {
            panic!("a client's line");
        };
        assert_eq!(r.rtt(), Some(Duration::from_micros(500)));
        assert_eq!(classify("Some Kind", "server <- x: y"), Record::Other);
    }
}
