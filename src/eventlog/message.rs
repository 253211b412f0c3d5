//! What the message part of each line chatmon writes says: [`LogMessage`],
//! with one `Display` (the only writer of each message's text) and one parser
//! ([`LogMessage::parse`]) side by side, as the wire protocol has.
//!
//! Escaping is not done here: the line around the message escapes the whole
//! text ([`super::line`]), so `Display` writes fields raw and the parser reads
//! unescaped text. Names and addresses hold no spaces (names are letters,
//! digits and `_-.`; addresses are `host:port`), which is what makes the
//! parse unambiguous while the user's text, always last, may hold anything.
//! A message that matches no form, the seed's included, is
//! [`LogMessage::Other`]. Knows nothing of the server, the client or sockets.

use std::fmt;
use std::time::Duration;

use chrono::TimeDelta;

use super::line::EventKind;

/// Who writes the server's lines.
const SERVER: &str = "server";
/// Opens the server's lines about a peer, its errors and its figures.
const SERVER_COLON: &str = "server: ";
const SERVER_IN: &str = "server <- ";
/// Between the sender and its node in a message from another node.
const ON_NODE: &str = " on node ";
/// Opens the cluster's lines.
const CLUSTER_COLON: &str = "cluster: ";
const SERVER_OUT: &str = "server -> ";
const SERVER_LISTENING: &str = "server listening on ";
const SERVER_STOPPED: &str = "server stopped after ";
const TOKEN_REQUIRED: &str = ", token required";
const CONNECTED: &str = " connected";
const DISCONNECTED: &str = " disconnected (";
const JOINED: &str = " joined the room as ";
const RENAMED: &str = " is now known as ";
const CLIENT_CONNECTED: &str = ": connected to ";
const CLIENT_DISCONNECTED: &str = ": disconnected from ";
const IN_THE_ROOM: &str = " in the room)";
const CLIENT_TO_SERVER: &str = " -> server ";
const SERVER_TO_CLIENT: &str = " <- server ";
const RECEIVED_FROM: &str = " <- ";
const VIA: &str = " via ";
const SAYS: &str = " says: ";
/// Ends the part of a message that names who and what; the user's text follows.
const TEXT_START: &str = ": ";
const ID_MARK: &str = " #";
const RTT_KEY: &str = "rtt=";
const SERVER_TIME_KEY: &str = "server=";
const NET_KEY: &str = "net=";
const DELAY_KEY: &str = "delay=";
const OFFSET_KEY: &str = "offset=";
const MS: &str = "ms";
const PLUS_MINUS: char = '±';
const LOG_FAILED: &str = "log writing failed (";
const HELD_BACK: &str = " lines were held back and are now written";
const HOLD_LOST: &str = "-byte hold were lost";
const PAST_THE: &str = " lines past the ";
const PROBES_TO: &str = ": probes to ";
const FIGURES_RESET: &str = ": latency figures reset for ";
/// The keys of a [`LogMessage::ClientProbes`] line after the server, in order.
const PROBE_KEYS: [&str; 5] = ["count", "lost", "p50", "p99", "jitter"];
/// The keys of a [`ServerStats`] line, in the order they are written.
const STATS_KEYS: [&str; 7] = [
    "clients",
    "messages",
    "rate",
    "bytes_in",
    "bytes_out",
    "errors",
    "interval",
];
/// The optional keys after a [`ServerStats`] line's fixed ones, in the
/// order they are written: the connections shed by reason ([`Shed`]).
const SHED_KEYS: [&str; 5] = [
    "server_full",
    "per_address",
    "evicted",
    "line_timeout",
    "hello_timeout",
];
const NANOS_PER_MS: u128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;
/// Decimals of the millisecond figures (rtt, server, net, delay): microseconds.
const MS_DECIMALS: u32 = 3;
/// Decimals of the second figures (uptime, interval) and of the rate.
const SECS_DECIMALS: u32 = 1;

/// The message part of a line chatmon writes. Fields borrow: the writer
/// formats them straight into the line, the parser points into the line.
///
/// Each variant is written under one [`EventKind`] ([`LogMessage::kind`]).
#[derive(Debug, Clone, PartialEq)]
pub enum LogMessage<'a> {
    /// `Server Start`: `server listening on ADDR (max clients N, max line M bytes[, token required])`.
    ServerStart {
        addr: &'a str,
        max_clients: usize,
        max_line: usize,
        token_required: bool,
    },
    /// `Server Stop`: `server stopped after S.Ss: N connections, M messages received, R replies sent`.
    ServerStop {
        /// Written to a tenth of a second.
        uptime: Duration,
        connections: u64,
        received: u64,
        replies: u64,
    },
    /// `Connection`: `server: PEER connected`.
    ServerConnected { peer: &'a str },
    /// `Disconnection`: `server: WHO disconnected (REASON)`; WHO is `PEER` or `NAME@PEER`.
    ServerDisconnected { who: &'a str, reason: &'a str },
    /// `Join`: `server: PEER joined the room as NAME`.
    ServerJoined { peer: &'a str, name: &'a str },
    /// `Join`: `server: OLD@PEER is now known as NEW`.
    ServerRenamed {
        old: &'a str,
        peer: &'a str,
        new: &'a str,
    },
    /// `Message Received`: `server <- WHO: TEXT` (plain session, no id) or
    /// `server <- WHO #ID: TEXT` (chat session).
    ServerReceived {
        who: &'a str,
        id: Option<u64>,
        text: &'a str,
    },
    /// `Message Received`: `server <- FROM on node NODE: TEXT`, a message
    /// that reached this server from another node of the cluster.
    ClusterReceived {
        from: &'a str,
        node: &'a str,
        text: &'a str,
    },
    /// `Cluster`: `cluster: WHAT`, the link to the other nodes (up, down) and
    /// the nodes themselves (joined, lost, left).
    Cluster { what: &'a str },
    /// `Message Sent`: `server -> WHO: TEXT` or `server -> WHO #ID: TEXT`;
    /// TEXT is the whole reply (`Server received: ...`).
    ServerReplied {
        who: &'a str,
        id: Option<u64>,
        text: &'a str,
    },
    /// `Error`: `server: WHO: WHAT`. WHO is a peer, `NAME@PEER`, or the
    /// server's part that failed (`accept`). The error's kind (the metrics'
    /// `ErrorKind`) is not written, so it is not read back either.
    ServerError { who: &'a str, what: &'a str },
    /// `Stats`: the server's periodic figures.
    Stats(ServerStats),
    /// `Connection`: `NAME: connected to SERVER as NAME (N in the room)`.
    ClientConnected {
        name: &'a str,
        server: &'a str,
        users: usize,
    },
    /// `Disconnection`: `NAME: disconnected from SERVER (REASON)`; REASON is
    /// `quit` when the user left.
    ClientDisconnected {
        name: &'a str,
        server: &'a str,
        reason: &'a str,
    },
    /// `Message Sent`: `NAME -> server SERVER #ID: TEXT`.
    ClientSent {
        name: &'a str,
        server: &'a str,
        id: u64,
        text: &'a str,
    },
    /// `Message Received`: `NAME <- server SERVER #ID rtt=X.XXXms[ server=X.XXXms][ net=Y.YYYms][ offset=±O.OOOms±B.BBBms]: TEXT`.
    ClientReply {
        name: &'a str,
        server: &'a str,
        id: u64,
        /// Round trip on the client's monotonic clock, to the microsecond.
        rtt: Duration,
        /// Time the server spent on the message (its read to its reply), when
        /// the server stamped the reply; `None` writes nothing.
        server_time: Option<Duration>,
        /// The round trip less the server's time; `None` writes nothing.
        net: Option<Duration>,
        /// The client's clock offset to the server after this round trip
        /// (server minus client), so that the report can say how far each
        /// client's clock is off; `None` writes nothing.
        offset: Option<OneWayDelay>,
        text: &'a str,
    },
    /// `Message Received`: `NAME <- FROM via SERVER[ delay=Z.ZZZms±E.EEEms]: TEXT`,
    /// a message relayed from another client.
    ClientRelay {
        name: &'a str,
        from: &'a str,
        server: &'a str,
        /// One-way delay from the sender, when both clocks' offsets are
        /// known; `None` writes nothing.
        delay: Option<OneWayDelay>,
        text: &'a str,
    },
    /// `Error`: `NAME: server SERVER says: MESSAGE`, an error the server sent.
    ClientServerError {
        name: &'a str,
        server: &'a str,
        message: &'a str,
    },
    /// `Error`: `NAME: WHAT`, the client's own error.
    ClientError { name: &'a str, what: &'a str },
    /// `Probe`: `NAME: probes to SERVER count=N lost=L p50=X.XXXms p99=X.XXXms jitter=X.XXXms`,
    /// the figures of the latency probes answered (`count`) and lost since
    /// the last such line; jitter is the mean absolute difference between
    /// consecutive round trips.
    ClientProbes {
        name: &'a str,
        server: &'a str,
        count: u64,
        lost: u64,
        p50: Duration,
        p99: Duration,
        jitter: Duration,
    },
    /// `Probe`: `NAME: latency figures reset for SERVER`, the marker the
    /// TUI's `/reset` (Ctrl-R) leaves where its figures start again.
    ClientFiguresReset { name: &'a str, server: &'a str },
    /// `Error`: the log writer's report once a failing sink works again:
    /// `log writing failed (ERROR); N lines were held back and are now written[; D lines past the M-byte hold were lost]`.
    LogRecovered {
        error: &'a str,
        held: usize,
        /// Lines dropped and the hold (bytes) they did not fit in.
        lost: Option<(usize, usize)>,
    },
    /// Anything else: the seed's lines, foreign or older text.
    Other(&'a str),
}

/// The figures of a `Stats` line:
/// `server: clients=N messages=M rate=R.R/s bytes_in=B bytes_out=B errors=E interval=S.Ss`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ServerStats {
    /// Sessions open when the line was written.
    pub clients: usize,
    /// Messages received during the interval.
    pub messages: u64,
    /// Messages per second over the interval, written to a tenth.
    pub rate: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Errors during the interval.
    pub errors: u64,
    /// Length of the interval, written to a tenth of a second.
    pub interval: Duration,
    /// Connections refused or closed to protect the server's slots during
    /// the interval, by reason. Each is written only when not zero, so a
    /// server that shed nothing writes the line it always wrote.
    pub shed: Shed,
}

/// Connections the server turned away or closed during a `Stats` interval
/// so that slow or greedy peers cannot hold its slots: written as
/// ` server_full=N per_address=N evicted=N line_timeout=N hello_timeout=N`
/// after the fixed keys, each only when not zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shed {
    /// Refused: `--max-clients` reached and nobody to evict.
    pub server_full: u64,
    /// Refused: the address had `--max-per-ip` connections already.
    pub per_address: u64,
    /// Closed for a newcomer: it owed its first line when the server was full.
    pub evicted: u64,
    /// Closed: a line not finished within `--line-timeout` of its first byte.
    pub line_timeout: u64,
    /// Closed: nothing sent within `--line-timeout` of connecting.
    pub hello_timeout: u64,
}

impl Shed {
    /// The figures in [`SHED_KEYS`] order.
    fn values(&self) -> [u64; SHED_KEYS.len()] {
        [
            self.server_full,
            self.per_address,
            self.evicted,
            self.line_timeout,
            self.hello_timeout,
        ]
    }

    fn set(&mut self, i: usize, v: u64) {
        let slot = match i {
            0 => &mut self.server_full,
            1 => &mut self.per_address,
            2 => &mut self.evicted,
            3 => &mut self.line_timeout,
            _ => &mut self.hello_timeout,
        };
        *slot = v;
    }
}

/// An estimated one-way delay with its error bound (issue 8: from the
/// sender's send to our receipt, both clocks corrected by their offsets to
/// the server), or an estimated clock offset with its bound (same shape). Signed: when the bound exceeds the true delay, the estimate
/// may come out below zero, and the log must say so rather than hide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OneWayDelay {
    pub delay: TimeDelta,
    /// The estimate is within ± this of the truth (if the paths are symmetric).
    pub bound: Duration,
}

impl<'a> LogMessage<'a> {
    /// The kind this message is written under; `None` for [`LogMessage::Other`].
    pub fn kind(&self) -> Option<EventKind> {
        use LogMessage as M;
        Some(match self {
            M::ServerStart { .. } => EventKind::ServerStart,
            M::ServerStop { .. } => EventKind::ServerStop,
            M::ServerConnected { .. } | M::ClientConnected { .. } => EventKind::Connection,
            M::ServerDisconnected { .. } | M::ClientDisconnected { .. } => EventKind::Disconnection,
            M::ServerJoined { .. } | M::ServerRenamed { .. } => EventKind::Join,
            M::ServerReceived { .. }
            | M::ClusterReceived { .. }
            | M::ClientReply { .. }
            | M::ClientRelay { .. } => EventKind::MessageReceived,
            M::Cluster { .. } => EventKind::Cluster,
            M::ServerReplied { .. } | M::ClientSent { .. } => EventKind::MessageSent,
            M::ServerError { .. }
            | M::ClientServerError { .. }
            | M::ClientError { .. }
            | M::LogRecovered { .. } => EventKind::Error,
            M::Stats(_) => EventKind::Stats,
            M::ClientProbes { .. } | M::ClientFiguresReset { .. } => EventKind::Probe,
            M::Other(_) => return None,
        })
    }

    /// Whether the server wrote this line.
    pub fn from_server(&self) -> bool {
        use LogMessage as M;
        matches!(
            self,
            M::ServerStart { .. }
                | M::ServerStop { .. }
                | M::ServerConnected { .. }
                | M::ServerDisconnected { .. }
                | M::ServerJoined { .. }
                | M::ServerRenamed { .. }
                | M::ServerReceived { .. }
                | M::ClusterReceived { .. }
                | M::Cluster { .. }
                | M::ServerReplied { .. }
                | M::ServerError { .. }
                | M::Stats(_)
        )
    }

    /// The name of the client that wrote this line, if a client did.
    pub fn client(&self) -> Option<&'a str> {
        use LogMessage as M;
        match *self {
            M::ClientConnected { name, .. }
            | M::ClientDisconnected { name, .. }
            | M::ClientSent { name, .. }
            | M::ClientReply { name, .. }
            | M::ClientRelay { name, .. }
            | M::ClientServerError { name, .. }
            | M::ClientError { name, .. }
            | M::ClientProbes { name, .. }
            | M::ClientFiguresReset { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The round trip of a client's reply line.
    pub fn rtt(&self) -> Option<Duration> {
        match self {
            LogMessage::ClientReply { rtt, .. } => Some(*rtt),
            _ => None,
        }
    }

    /// Reads the message of a line of kind `kind` (unescaped, as
    /// [`super::Event::message`] holds it). The inverse of `Display`:
    /// `parse(&m.kind()?, &m.to_string()) == m` for every message `m` whose
    /// durations are whole at the written precision.
    pub fn parse(kind: &EventKind, text: &'a str) -> LogMessage<'a> {
        let typed = match kind {
            EventKind::ServerStart => parse_server_start(text),
            EventKind::ServerStop => parse_server_stop(text),
            EventKind::Connection => {
                parse_server_connected(text).or_else(|| parse_client_connected(text))
            }
            EventKind::Disconnection => {
                parse_server_disconnected(text).or_else(|| parse_client_disconnected(text))
            }
            EventKind::Join => parse_server_joined(text).or_else(|| parse_server_renamed(text)),
            EventKind::MessageReceived => parse_cluster_received(text)
                .or_else(|| parse_server_received(text))
                .or_else(|| parse_client_reply(text))
                .or_else(|| parse_client_relay(text)),
            EventKind::MessageSent => {
                parse_server_replied(text).or_else(|| parse_client_sent(text))
            }
            EventKind::Error => parse_log_recovered(text)
                .or_else(|| parse_server_error(text))
                .or_else(|| parse_client_server_error(text))
                .or_else(|| parse_client_error(text)),
            EventKind::Stats => parse_stats(text).map(LogMessage::Stats),
            EventKind::Cluster => text
                .strip_prefix(CLUSTER_COLON)
                .map(|what| LogMessage::Cluster { what }),
            EventKind::Probe => {
                parse_client_probes(text).or_else(|| parse_client_figures_reset(text))
            }
            EventKind::Other(_) => None,
        };
        typed.unwrap_or(LogMessage::Other(text))
    }
}

/// Writes a duration in milliseconds to the microsecond, `1.234ms`, exactly
/// as chatmon always has (`{:.3}` of the float).
struct Ms(Duration);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}{MS}", self.0.as_secs_f64() * 1000.0)
    }
}

/// [`Ms`] for a signed delay.
struct SignedMs(TimeDelta);

impl fmt::Display for SignedMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}{MS}", self.0.as_seconds_f64() * 1000.0)
    }
}

impl LogMessage<'_> {
    /// Writes the message: the one writer of every message's text, which
    /// `Display` is into a formatter and the log writer into its line. The
    /// lines every message costs the server are written part by part with
    /// `write_str` (plain copies into a `String`) rather than through
    /// `core::fmt`, which was a fifth of a log line's cost.
    pub fn write_to<W: fmt::Write>(&self, f: &mut W) -> fmt::Result {
        use LogMessage as M;
        match *self {
            M::ServerStart {
                addr,
                max_clients,
                max_line,
                token_required,
            } => {
                let token = if token_required { TOKEN_REQUIRED } else { "" };
                write!(
                    f,
                    "{SERVER_LISTENING}{addr} (max clients {max_clients}, max line {max_line} bytes{token})"
                )
            }
            M::ServerStop {
                uptime,
                connections,
                received,
                replies,
            } => write!(
                f,
                "{SERVER_STOPPED}{:.1}s: {connections} connections, {received} messages received, {replies} replies sent",
                uptime.as_secs_f64()
            ),
            M::ServerConnected { peer } => write!(f, "{SERVER_COLON}{peer}{CONNECTED}"),
            M::ServerDisconnected { who, reason } => {
                write!(f, "{SERVER_COLON}{who}{DISCONNECTED}{reason})")
            }
            M::ServerJoined { peer, name } => write!(f, "{SERVER_COLON}{peer}{JOINED}{name}"),
            M::ServerRenamed { old, peer, new } => {
                write!(f, "{SERVER_COLON}{old}@{peer}{RENAMED}{new}")
            }
            M::ServerReceived { who, id, text } => {
                f.write_str(SERVER_IN)?;
                f.write_str(who)?;
                write_id(f, id)?;
                f.write_str(TEXT_START)?;
                f.write_str(text)
            }
            M::ClusterReceived { from, node, text } => {
                f.write_str(SERVER_IN)?;
                f.write_str(from)?;
                f.write_str(ON_NODE)?;
                f.write_str(node)?;
                f.write_str(TEXT_START)?;
                f.write_str(text)
            }
            M::Cluster { what } => write!(f, "{CLUSTER_COLON}{what}"),
            M::ServerReplied { who, id, text } => {
                f.write_str(SERVER_OUT)?;
                f.write_str(who)?;
                write_id(f, id)?;
                f.write_str(TEXT_START)?;
                f.write_str(text)
            }
            M::ServerError { who, what } => write!(f, "{SERVER_COLON}{who}{TEXT_START}{what}"),
            M::Stats(s) => {
                write!(
                    f,
                    "{SERVER_COLON}clients={} messages={} rate={:.1}/s bytes_in={} bytes_out={} errors={} interval={:.1}s",
                    s.clients,
                    s.messages,
                    s.rate,
                    s.bytes_in,
                    s.bytes_out,
                    s.errors,
                    s.interval.as_secs_f64()
                )?;
                for (key, v) in SHED_KEYS.iter().zip(s.shed.values()) {
                    if v > 0 {
                        write!(f, " {key}={v}")?;
                    }
                }
                Ok(())
            }
            M::ClientConnected {
                name,
                server,
                users,
            } => write!(
                f,
                "{name}{CLIENT_CONNECTED}{server} as {name} ({users}{IN_THE_ROOM}"
            ),
            M::ClientDisconnected {
                name,
                server,
                reason,
            } => write!(f, "{name}{CLIENT_DISCONNECTED}{server} ({reason})"),
            M::ClientSent {
                name,
                server,
                id,
                text,
            } => write!(
                f,
                "{name}{CLIENT_TO_SERVER}{server}{ID_MARK}{id}{TEXT_START}{text}"
            ),
            M::ClientReply {
                name,
                server,
                id,
                rtt,
                server_time,
                net,
                offset,
                text,
            } => {
                write!(
                    f,
                    "{name}{SERVER_TO_CLIENT}{server}{ID_MARK}{id} {RTT_KEY}{}",
                    Ms(rtt)
                )?;
                if let Some(s) = server_time {
                    write!(f, " {SERVER_TIME_KEY}{}", Ms(s))?;
                }
                if let Some(n) = net {
                    write!(f, " {NET_KEY}{}", Ms(n))?;
                }
                if let Some(o) = offset {
                    write!(
                        f,
                        " {OFFSET_KEY}{}{PLUS_MINUS}{}",
                        SignedMs(o.delay),
                        Ms(o.bound)
                    )?;
                }
                write!(f, "{TEXT_START}{text}")
            }
            M::ClientRelay {
                name,
                from,
                server,
                delay,
                text,
            } => {
                write!(f, "{name}{RECEIVED_FROM}{from}{VIA}{server}")?;
                if let Some(d) = delay {
                    write!(
                        f,
                        " {DELAY_KEY}{}{PLUS_MINUS}{}",
                        SignedMs(d.delay),
                        Ms(d.bound)
                    )?;
                }
                write!(f, "{TEXT_START}{text}")
            }
            M::ClientServerError {
                name,
                server,
                message,
            } => write!(f, "{name}: {SERVER} {server}{SAYS}{message}"),
            M::ClientError { name, what } => write!(f, "{name}{TEXT_START}{what}"),
            M::ClientProbes {
                name,
                server,
                count,
                lost,
                p50,
                p99,
                jitter,
            } => write!(
                f,
                "{name}{PROBES_TO}{server} count={count} lost={lost} p50={} p99={} jitter={}",
                Ms(p50),
                Ms(p99),
                Ms(jitter)
            ),
            M::ClientFiguresReset { name, server } => write!(f, "{name}{FIGURES_RESET}{server}"),
            M::LogRecovered { error, held, lost } => {
                write!(f, "{LOG_FAILED}{error}); {held}{HELD_BACK}")?;
                if let Some((dropped, hold)) = lost {
                    write!(f, "; {dropped}{PAST_THE}{hold}{HOLD_LOST}")?;
                }
                Ok(())
            }
            M::Other(text) => f.write_str(text),
        }
    }
}

impl fmt::Display for LogMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

/// Writes an optional id as ` #ID`.
fn write_id<W: fmt::Write>(f: &mut W, id: Option<u64>) -> fmt::Result {
    match id {
        Some(id) => write!(f, "{ID_MARK}{id}"),
        None => Ok(()),
    }
}

/// Pulls the round trip out of a client's `Message Received` message: the
/// typed [`LogMessage::ClientReply`] if it is one, else (foreign or older
/// text) whatever follows the first `rtt=`, as this function always read.
pub fn rtt_from_message(message: &str) -> Option<Duration> {
    match LogMessage::parse(&EventKind::MessageReceived, message) {
        LogMessage::ClientReply { rtt, .. } => Some(rtt),
        LogMessage::Other(text) => loose_rtt(text),
        _ => None,
    }
}

/// The reading of `rtt=` in any text, for lines that are not typed.
fn loose_rtt(message: &str) -> Option<Duration> {
    let i = message.find(RTT_KEY)?;
    let rest = &message[i + RTT_KEY.len()..];
    let end = rest.find(MS)?;
    let ms: f64 = rest[..end].parse().ok()?;
    if !(ms.is_finite() && ms >= 0.0) {
        return None;
    }
    Some(Duration::from_secs_f64(ms / 1000.0))
}

/// Formats a round-trip time the way [`rtt_from_message`] reads it.
pub fn format_rtt(rtt: Duration) -> String {
    format!("{RTT_KEY}{}", Ms(rtt))
}

// ---- the parser, one function per form, each the mirror of its `Display` arm.

/// A name or an address: something with no spaces in it, as names and
/// `host:port` never have.
fn word(s: &str) -> Option<&str> {
    (!s.is_empty() && !s.contains(char::is_whitespace)).then_some(s)
}

/// A client's name: a [`word`] without `:` (so that it ends where `: ` does)
/// and not the server's own.
fn name(s: &str) -> Option<&str> {
    word(s).filter(|s| !s.contains(':') && *s != SERVER)
}

/// A decimal count as `Display` writes it: digits, no sign, no leading zero.
fn count<T: std::str::FromStr>(s: &str) -> Option<T> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// Exactly `decimals` fraction digits after an integer part, read without a
/// float, as a whole number of `unit_nanos / 10^decimals`.
fn fixed(s: &str, decimals: u32, unit_nanos: u128) -> Option<Duration> {
    let (int, frac) = s.split_once('.')?;
    let int: u128 = count(int)?;
    if frac.len() != decimals as usize || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u128 = frac.parse().ok()?;
    let nanos = int
        .checked_mul(unit_nanos)?
        .checked_add(frac.checked_mul(unit_nanos / 10u128.pow(decimals))?)?;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

/// `X.XXXms`.
fn ms(s: &str) -> Option<Duration> {
    fixed(s.strip_suffix(MS)?, MS_DECIMALS, NANOS_PER_MS)
}

/// `[-]X.XXXms`.
fn signed_ms(s: &str) -> Option<TimeDelta> {
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let d = TimeDelta::from_std(ms(s)?).ok()?;
    Some(if negative { -d } else { d })
}

/// `S.Ss`.
fn secs(s: &str) -> Option<Duration> {
    fixed(s.strip_suffix('s')?, SECS_DECIMALS, NANOS_PER_SEC)
}

/// A rate to a tenth, `R.R`.
fn tenths(s: &str) -> Option<f64> {
    fixed(s, SECS_DECIMALS, NANOS_PER_SEC)?;
    s.parse().ok()
}

/// `WHO` or `WHO #ID`, before a text.
fn who_and_id(head: &str) -> Option<(&str, Option<u64>)> {
    match head.split_once(ID_MARK) {
        Some((who, id)) => Some((word(who)?, Some(count(id)?))),
        None => Some((word(head)?, None)),
    }
}

fn parse_server_start(text: &str) -> Option<LogMessage<'_>> {
    let rest = text.strip_prefix(SERVER_LISTENING)?.strip_suffix(')')?;
    let (addr, rest) = rest.split_once(" (max clients ")?;
    let (max_clients, rest) = rest.split_once(", max line ")?;
    let (rest, token_required) = match rest.strip_suffix(TOKEN_REQUIRED) {
        Some(r) => (r, true),
        None => (rest, false),
    };
    Some(LogMessage::ServerStart {
        addr: word(addr)?,
        max_clients: count(max_clients)?,
        max_line: count(rest.strip_suffix(" bytes")?)?,
        token_required,
    })
}

fn parse_server_stop(text: &str) -> Option<LogMessage<'_>> {
    let rest = text.strip_prefix(SERVER_STOPPED)?;
    let (uptime, rest) = rest.split_once(": ")?;
    let (connections, rest) = rest.split_once(" connections, ")?;
    let (received, rest) = rest.split_once(" messages received, ")?;
    Some(LogMessage::ServerStop {
        uptime: secs(uptime)?,
        connections: count(connections)?,
        received: count(received)?,
        replies: count(rest.strip_suffix(" replies sent")?)?,
    })
}

fn parse_server_connected(text: &str) -> Option<LogMessage<'_>> {
    let peer = text.strip_prefix(SERVER_COLON)?.strip_suffix(CONNECTED)?;
    Some(LogMessage::ServerConnected { peer: word(peer)? })
}

fn parse_server_disconnected(text: &str) -> Option<LogMessage<'_>> {
    let rest = text.strip_prefix(SERVER_COLON)?.strip_suffix(')')?;
    let (who, reason) = rest.split_once(DISCONNECTED)?;
    Some(LogMessage::ServerDisconnected {
        who: word(who)?,
        reason,
    })
}

fn parse_server_joined(text: &str) -> Option<LogMessage<'_>> {
    let (peer, name_) = text.strip_prefix(SERVER_COLON)?.split_once(JOINED)?;
    Some(LogMessage::ServerJoined {
        peer: word(peer)?,
        name: name(name_)?,
    })
}

fn parse_server_renamed(text: &str) -> Option<LogMessage<'_>> {
    let (old_at_peer, new) = text.strip_prefix(SERVER_COLON)?.split_once(RENAMED)?;
    let (old, peer) = old_at_peer.split_once('@')?;
    Some(LogMessage::ServerRenamed {
        old: name(old)?,
        peer: word(peer)?,
        new: name(new)?,
    })
}

fn parse_cluster_received(text: &str) -> Option<LogMessage<'_>> {
    let (head, text) = text.strip_prefix(SERVER_IN)?.split_once(TEXT_START)?;
    let (from, node) = head.split_once(ON_NODE)?;
    Some(LogMessage::ClusterReceived {
        from: word(from)?,
        node: word(node)?,
        text,
    })
}

fn parse_server_received(text: &str) -> Option<LogMessage<'_>> {
    let (head, text) = text.strip_prefix(SERVER_IN)?.split_once(TEXT_START)?;
    let (who, id) = who_and_id(head)?;
    Some(LogMessage::ServerReceived { who, id, text })
}

fn parse_server_replied(text: &str) -> Option<LogMessage<'_>> {
    let (head, text) = text.strip_prefix(SERVER_OUT)?.split_once(TEXT_START)?;
    let (who, id) = who_and_id(head)?;
    Some(LogMessage::ServerReplied { who, id, text })
}

fn parse_server_error(text: &str) -> Option<LogMessage<'_>> {
    let (who, what) = text.strip_prefix(SERVER_COLON)?.split_once(TEXT_START)?;
    Some(LogMessage::ServerError {
        who: word(who)?,
        what,
    })
}

fn parse_stats(text: &str) -> Option<ServerStats> {
    let mut words = text.strip_prefix(SERVER_COLON)?.split(' ');
    let mut values = [""; STATS_KEYS.len()];
    for (key, value) in STATS_KEYS.iter().zip(values.iter_mut()) {
        *value = words.next()?.strip_prefix(key)?.strip_prefix('=')?;
    }
    // The optional keys, in their order, each at most once.
    let mut shed = Shed::default();
    let mut next_key = 0;
    for word in words {
        let (key, value) = word.split_once('=')?;
        let i = next_key + SHED_KEYS[next_key..].iter().position(|k| *k == key)?;
        shed.set(i, count(value)?);
        next_key = i + 1;
    }
    let [
        clients,
        messages,
        rate,
        bytes_in,
        bytes_out,
        errors,
        interval,
    ] = values;
    Some(ServerStats {
        clients: count(clients)?,
        messages: count(messages)?,
        rate: tenths(rate.strip_suffix("/s")?)?,
        bytes_in: count(bytes_in)?,
        bytes_out: count(bytes_out)?,
        errors: count(errors)?,
        interval: secs(interval)?,
        shed,
    })
}

fn parse_client_connected(text: &str) -> Option<LogMessage<'_>> {
    let (name_, rest) = text.split_once(CLIENT_CONNECTED)?;
    let name_ = name(name_)?;
    let (rest, users) = rest.strip_suffix(IN_THE_ROOM)?.rsplit_once(" (")?;
    let server = rest.strip_suffix(name_)?.strip_suffix(" as ")?;
    Some(LogMessage::ClientConnected {
        name: name_,
        server: word(server)?,
        users: count(users)?,
    })
}

fn parse_client_disconnected(text: &str) -> Option<LogMessage<'_>> {
    let (name_, rest) = text.split_once(CLIENT_DISCONNECTED)?;
    let (server, reason) = rest.strip_suffix(')')?.split_once(" (")?;
    Some(LogMessage::ClientDisconnected {
        name: name(name_)?,
        server: word(server)?,
        reason,
    })
}

fn parse_client_sent(text: &str) -> Option<LogMessage<'_>> {
    let (name_, rest) = text.split_once(CLIENT_TO_SERVER)?;
    let (head, text) = rest.split_once(TEXT_START)?;
    let (server, id) = head.split_once(ID_MARK)?;
    Some(LogMessage::ClientSent {
        name: name(name_)?,
        server: word(server)?,
        id: count(id)?,
        text,
    })
}

fn parse_client_reply(text: &str) -> Option<LogMessage<'_>> {
    let (name_, rest) = text.split_once(SERVER_TO_CLIENT)?;
    let (head, text) = rest.split_once(TEXT_START)?;
    let (server, figures) = head.split_once(ID_MARK)?;
    let mut words = figures.split(' ');
    let id = count(words.next()?)?;
    let rtt = ms(words.next()?.strip_prefix(RTT_KEY)?)?;
    let mut next = words.next();
    let server_time = match next.and_then(|w| w.strip_prefix(SERVER_TIME_KEY)) {
        Some(v) => {
            next = words.next();
            Some(ms(v)?)
        }
        None => None,
    };
    let net = match next.and_then(|w| w.strip_prefix(NET_KEY)) {
        Some(v) => {
            next = words.next();
            Some(ms(v)?)
        }
        None => None,
    };
    let offset = match next.and_then(|w| w.strip_prefix(OFFSET_KEY)) {
        Some(v) => {
            next = words.next();
            let (o, b) = v.split_once(PLUS_MINUS)?;
            Some(OneWayDelay {
                delay: signed_ms(o)?,
                bound: ms(b)?,
            })
        }
        None => None,
    };
    if next.is_some() {
        return None;
    }
    Some(LogMessage::ClientReply {
        name: name(name_)?,
        server: word(server)?,
        id,
        rtt,
        server_time,
        net,
        offset,
        text,
    })
}

fn parse_client_relay(text: &str) -> Option<LogMessage<'_>> {
    let (name_, rest) = text.split_once(RECEIVED_FROM)?;
    let (from, rest) = rest.split_once(VIA)?;
    let (head, text) = rest.split_once(TEXT_START)?;
    let (server, delay) = match head.split_once(' ') {
        Some((server, d)) => {
            let (delay, bound) = d.strip_prefix(DELAY_KEY)?.split_once(PLUS_MINUS)?;
            let delay = OneWayDelay {
                delay: signed_ms(delay)?,
                bound: ms(bound)?,
            };
            (server, Some(delay))
        }
        None => (head, None),
    };
    Some(LogMessage::ClientRelay {
        name: name(name_)?,
        from: word(from)?,
        server: word(server)?,
        delay,
        text,
    })
}

fn parse_client_server_error(text: &str) -> Option<LogMessage<'_>> {
    let (name_, rest) = text.split_once(TEXT_START)?;
    let (server, message) = rest
        .strip_prefix(SERVER)?
        .strip_prefix(' ')?
        .split_once(SAYS)?;
    Some(LogMessage::ClientServerError {
        name: name(name_)?,
        server: word(server)?,
        message,
    })
}

fn parse_client_error(text: &str) -> Option<LogMessage<'_>> {
    let (name_, what) = text.split_once(TEXT_START)?;
    Some(LogMessage::ClientError {
        name: name(name_)?,
        what,
    })
}

fn parse_client_probes(text: &str) -> Option<LogMessage<'_>> {
    let (name_, rest) = text.split_once(PROBES_TO)?;
    let mut words = rest.split(' ');
    let server = word(words.next()?)?;
    let mut values = [""; PROBE_KEYS.len()];
    for (key, value) in PROBE_KEYS.iter().zip(values.iter_mut()) {
        *value = words.next()?.strip_prefix(key)?.strip_prefix('=')?;
    }
    if words.next().is_some() {
        return None;
    }
    let [count_, lost, p50, p99, jitter] = values;
    Some(LogMessage::ClientProbes {
        name: name(name_)?,
        server,
        count: count(count_)?,
        lost: count(lost)?,
        p50: ms(p50)?,
        p99: ms(p99)?,
        jitter: ms(jitter)?,
    })
}

fn parse_client_figures_reset(text: &str) -> Option<LogMessage<'_>> {
    let (name_, server) = text.split_once(FIGURES_RESET)?;
    Some(LogMessage::ClientFiguresReset {
        name: name(name_)?,
        server: word(server)?,
    })
}

fn parse_log_recovered(text: &str) -> Option<LogMessage<'_>> {
    let rest = text.strip_prefix(LOG_FAILED)?;
    let (rest, lost) = match rest.strip_suffix(HOLD_LOST) {
        Some(r) => {
            let (r, tail) = r.rsplit_once("; ")?;
            let (dropped, hold) = tail.split_once(PAST_THE)?;
            (r, Some((count(dropped)?, count(hold)?)))
        }
        None => (rest, None),
    };
    let (error, held) = rest.strip_suffix(HELD_BACK)?.rsplit_once("); ")?;
    Some(LogMessage::LogRecovered {
        error,
        held: count(held)?,
        lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::line::{format_line_args, parse_line};
    use chrono::NaiveDateTime;

    const PEER: &str = "127.0.0.1:39876";
    const SERVER_ADDR: &str = "127.0.0.1:7878";

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Every form, each with the text today's call site writes, copied
    /// literally from its format string.
    fn cases() -> Vec<(LogMessage<'static>, &'static str)> {
        use LogMessage as M;
        vec![
            (
                M::ServerStart {
                    addr: SERVER_ADDR,
                    max_clients: 1024,
                    max_line: 65536,
                    token_required: false,
                },
                "server listening on 127.0.0.1:7878 (max clients 1024, max line 65536 bytes)",
            ),
            (
                M::ServerStart {
                    addr: "[::1]:7878",
                    max_clients: 8,
                    max_line: 100,
                    token_required: true,
                },
                "server listening on [::1]:7878 (max clients 8, max line 100 bytes, token required)",
            ),
            (
                M::ServerStop {
                    uptime: Duration::from_millis(12_900),
                    connections: 1,
                    received: 2,
                    replies: 3,
                },
                "server stopped after 12.9s: 1 connections, 2 messages received, 3 replies sent",
            ),
            (
                M::ServerConnected { peer: PEER },
                "server: 127.0.0.1:39876 connected",
            ),
            (
                M::ServerDisconnected {
                    who: "alice@127.0.0.1:39876",
                    reason: "closed by peer",
                },
                "server: alice@127.0.0.1:39876 disconnected (closed by peer)",
            ),
            (
                M::ServerDisconnected {
                    who: PEER,
                    reason: "too slow: 1024 lines waiting to be sent",
                },
                "server: 127.0.0.1:39876 disconnected (too slow: 1024 lines waiting to be sent)",
            ),
            (
                M::ServerJoined {
                    peer: PEER,
                    name: "alice",
                },
                "server: 127.0.0.1:39876 joined the room as alice",
            ),
            (
                M::ServerRenamed {
                    old: "alice",
                    peer: PEER,
                    new: "bob",
                },
                "server: alice@127.0.0.1:39876 is now known as bob",
            ),
            (
                M::ServerReceived {
                    who: PEER,
                    id: None,
                    text: "hello",
                },
                "server <- 127.0.0.1:39876: hello",
            ),
            (
                M::ServerReceived {
                    who: "alice@127.0.0.1:39876",
                    id: Some(1),
                    text: "hello",
                },
                "server <- alice@127.0.0.1:39876 #1: hello",
            ),
            (
                M::ClusterReceived {
                    from: "bob",
                    node: "b",
                    text: "hi: from afar",
                },
                "server <- bob on node b: hi: from afar",
            ),
            (
                M::Cluster {
                    what: "link up (nats://127.0.0.1:4300)",
                },
                "cluster: link up (nats://127.0.0.1:4300)",
            ),
            (
                M::ServerReplied {
                    who: PEER,
                    id: None,
                    text: "Server received: hello",
                },
                "server -> 127.0.0.1:39876: Server received: hello",
            ),
            (
                M::ServerReplied {
                    who: "alice@127.0.0.1:39876",
                    id: Some(18_446_744_073_709_551_615),
                    text: "Server received: hello",
                },
                "server -> alice@127.0.0.1:39876 #18446744073709551615: Server received: hello",
            ),
            (
                M::ServerError {
                    who: "accept",
                    what: "cannot accept connections: Too many open files (os error 24); retrying",
                },
                "server: accept: cannot accept connections: Too many open files (os error 24); retrying",
            ),
            (
                M::ServerError {
                    who: "alice@127.0.0.1:39876",
                    what: "line of 70000 bytes is longer than the limit",
                },
                "server: alice@127.0.0.1:39876: line of 70000 bytes is longer than the limit",
            ),
            (
                M::Stats(ServerStats {
                    clients: 0,
                    messages: 1,
                    rate: 0.1,
                    bytes_in: 70,
                    bytes_out: 191,
                    errors: 0,
                    interval: Duration::from_secs(10),
                    shed: Shed::default(),
                }),
                "server: clients=0 messages=1 rate=0.1/s bytes_in=70 bytes_out=191 errors=0 interval=10.0s",
            ),
            (
                M::Stats(ServerStats {
                    clients: 200,
                    messages: 0,
                    rate: 0.0,
                    bytes_in: 400,
                    bytes_out: 9000,
                    errors: 201,
                    interval: Duration::from_secs(10),
                    shed: Shed {
                        server_full: 0,
                        per_address: 3,
                        evicted: 1,
                        line_timeout: 197,
                        hello_timeout: 0,
                    },
                }),
                "server: clients=200 messages=0 rate=0.0/s bytes_in=400 bytes_out=9000 errors=201 interval=10.0s per_address=3 evicted=1 line_timeout=197",
            ),
            (
                M::ClientConnected {
                    name: "alice",
                    server: SERVER_ADDR,
                    users: 2,
                },
                "alice: connected to 127.0.0.1:7878 as alice (2 in the room)",
            ),
            (
                M::ClientDisconnected {
                    name: "alice",
                    server: SERVER_ADDR,
                    reason: "quit",
                },
                "alice: disconnected from 127.0.0.1:7878 (quit)",
            ),
            (
                M::ClientDisconnected {
                    name: "alice",
                    server: "localhost:7878",
                    reason: "the server is stopping (bye (for now))",
                },
                "alice: disconnected from localhost:7878 (the server is stopping (bye (for now)))",
            ),
            (
                M::ClientSent {
                    name: "alice",
                    server: SERVER_ADDR,
                    id: 1,
                    text: "hello",
                },
                "alice -> server 127.0.0.1:7878 #1: hello",
            ),
            (
                M::ClientReply {
                    name: "alice",
                    server: SERVER_ADDR,
                    id: 1,
                    rtt: us(810),
                    server_time: None,
                    net: None,
                    offset: None,
                    text: "Server received: hello",
                },
                "alice <- server 127.0.0.1:7878 #1 rtt=0.810ms: Server received: hello",
            ),
            (
                M::ClientReply {
                    name: "alice",
                    server: SERVER_ADDR,
                    id: 7,
                    rtt: us(940),
                    server_time: Some(us(31)),
                    net: Some(us(909)),
                    offset: None,
                    text: "Server received: hello",
                },
                "alice <- server 127.0.0.1:7878 #7 rtt=0.940ms server=0.031ms net=0.909ms: Server received: hello",
            ),
            (
                M::ClientReply {
                    name: "alice",
                    server: SERVER_ADDR,
                    id: 8,
                    rtt: us(940),
                    server_time: Some(us(31)),
                    net: Some(us(909)),
                    offset: Some(OneWayDelay {
                        delay: -TimeDelta::microseconds(2_000_012),
                        bound: us(45),
                    }),
                    text: "x",
                },
                "alice <- server 127.0.0.1:7878 #8 rtt=0.940ms server=0.031ms net=0.909ms offset=-2000.012ms±0.045ms: x",
            ),
            (
                M::ClientReply {
                    name: "alice",
                    server: SERVER_ADDR,
                    id: 7,
                    rtt: us(1_234_567),
                    server_time: Some(us(31)),
                    net: None,
                    offset: None,
                    text: "",
                },
                "alice <- server 127.0.0.1:7878 #7 rtt=1234.567ms server=0.031ms: ",
            ),
            (
                M::ClientRelay {
                    name: "alice",
                    from: "bob",
                    server: SERVER_ADDR,
                    delay: None,
                    text: "hi",
                },
                "alice <- bob via 127.0.0.1:7878: hi",
            ),
            (
                M::ClientRelay {
                    name: "alice",
                    from: "bob",
                    server: SERVER_ADDR,
                    delay: Some(OneWayDelay {
                        delay: TimeDelta::microseconds(410),
                        bound: us(60),
                    }),
                    text: "hi",
                },
                "alice <- bob via 127.0.0.1:7878 delay=0.410ms±0.060ms: hi",
            ),
            (
                M::ClientRelay {
                    name: "alice",
                    from: PEER,
                    server: SERVER_ADDR,
                    delay: Some(OneWayDelay {
                        delay: TimeDelta::microseconds(-25),
                        bound: us(2_000),
                    }),
                    text: "hi",
                },
                "alice <- 127.0.0.1:39876 via 127.0.0.1:7878 delay=-0.025ms±2.000ms: hi",
            ),
            (
                M::ClientServerError {
                    name: "alice",
                    server: SERVER_ADDR,
                    message: "the name \"bob\" is taken",
                },
                "alice: server 127.0.0.1:7878 says: the name \"bob\" is taken",
            ),
            (
                M::ClientError {
                    name: "alice",
                    what: "ignored a 70000-byte line from the server (too long)",
                },
                "alice: ignored a 70000-byte line from the server (too long)",
            ),
            (
                M::LogRecovered {
                    error: "No space left on device (os error 28)",
                    held: 2,
                    lost: None,
                },
                "log writing failed (No space left on device (os error 28)); 2 lines were held back and are now written",
            ),
            (
                M::LogRecovered {
                    error: "a); b",
                    held: 2000,
                    lost: Some((18000, 2000)),
                },
                "log writing failed (a); b); 2000 lines were held back and are now written; 18000 lines past the 2000-byte hold were lost",
            ),
            (
                M::ClientProbes {
                    name: "alice",
                    server: SERVER_ADDR,
                    count: 9,
                    lost: 1,
                    p50: us(213),
                    p99: us(1_500),
                    jitter: us(21),
                },
                "alice: probes to 127.0.0.1:7878 count=9 lost=1 p50=0.213ms p99=1.500ms jitter=0.021ms",
            ),
            (
                M::ClientFiguresReset {
                    name: "alice",
                    server: SERVER_ADDR,
                },
                "alice: latency figures reset for 127.0.0.1:7878",
            ),
        ]
    }

    #[test]
    fn every_form_writes_todays_bytes_and_reads_back() {
        for (msg, text) in cases() {
            assert_eq!(msg.to_string(), text);
            let kind = msg.kind().expect("typed");
            assert_eq!(LogMessage::parse(&kind, text), msg, "{text}");
        }
    }

    #[test]
    fn display_matches_the_call_sites_format_strings() {
        // The call sites' own expressions, for the figures written from floats.
        let (addr, max_clients, max_line, token_note) = (SERVER_ADDR, 3, 4, ", token required");
        let m = LogMessage::ServerStart {
            addr,
            max_clients,
            max_line,
            token_required: true,
        };
        assert_eq!(
            m.to_string(),
            format!(
                "server listening on {addr} (max clients {max_clients}, max line {max_line} bytes{token_note})"
            )
        );
        for n in [0u64, 1, 49, 50, 51, 999, 1_000, 12_345, 86_400_049] {
            let uptime = Duration::from_millis(n);
            let stop = LogMessage::ServerStop {
                uptime,
                connections: 1,
                received: 2,
                replies: 3,
            };
            assert_eq!(
                stop.to_string(),
                format!(
                    "server stopped after {:.1}s: {} connections, {} messages received, {} replies sent",
                    uptime.as_secs_f64(),
                    1,
                    2,
                    3
                )
            );
            let secs = uptime.as_secs_f64();
            let rate = n as f64 / 7.0;
            let stats = LogMessage::Stats(ServerStats {
                clients: 1,
                messages: n,
                rate,
                bytes_in: 2,
                bytes_out: 3,
                errors: 4,
                interval: uptime,
                shed: Shed::default(),
            });
            assert_eq!(
                stats.to_string(),
                format!(
                    "server: clients={} messages={} rate={rate:.1}/s bytes_in={} bytes_out={} errors={} interval={secs:.1}s",
                    1, n, 2, 3, 4
                )
            );
        }
        for n in (0..200_000u64).step_by(7) {
            let rtt = Duration::from_nanos(n * 13);
            let (name, id, text) = ("a", 5u64, "t");
            let m = LogMessage::ClientReply {
                name,
                server: SERVER_ADDR,
                id,
                rtt,
                server_time: None,
                net: None,
                offset: None,
                text,
            };
            // The call site's format string, with the old `format_rtt` body.
            let old_rtt = format!("rtt={:.3}ms", rtt.as_secs_f64() * 1000.0);
            let expected = format!(
                "{} <- server {} #{id} {}: {text}",
                name, SERVER_ADDR, old_rtt
            );
            assert_eq!(m.to_string(), expected);
            assert_eq!(format_rtt(rtt), old_rtt);
        }
    }

    #[test]
    fn stats_shed_keys_are_optional_known_and_in_order() {
        let base = "server: clients=1 messages=2 rate=0.2/s bytes_in=3 bytes_out=4 errors=5 interval=10.0s";
        let read = |tail: &str| match LogMessage::parse(&EventKind::Stats, &format!("{base}{tail}"))
        {
            LogMessage::Stats(s) => Some(s.shed),
            _ => None,
        };
        assert_eq!(read(""), Some(Shed::default()));
        assert_eq!(
            read(" server_full=7 hello_timeout=2"),
            Some(Shed {
                server_full: 7,
                hello_timeout: 2,
                ..Shed::default()
            })
        );
        for bad in [
            " evicted=1 evicted=2",
            " line_timeout=1 per_address=2",
            " surprise=1",
            " evicted=x",
            " evicted",
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }

    #[test]
    fn written_figures_read_back_exactly() {
        // Every microsecond written as `X.XXXms` reads back as itself, with
        // no float in the way.
        for n in (0..3_000_000u64).step_by(997) {
            let m = LogMessage::ClientReply {
                name: "a",
                server: SERVER_ADDR,
                id: n,
                rtt: us(n),
                server_time: Some(us(n / 3)),
                net: Some(us(n - n / 3)),
                offset: None,
                text: "x",
            };
            let text = m.to_string();
            assert_eq!(LogMessage::parse(&EventKind::MessageReceived, &text), m);
            assert_eq!(rtt_from_message(&text), Some(us(n)));
        }
    }

    #[test]
    fn hostile_text_round_trips_through_a_whole_line() {
        let time =
            NaiveDateTime::parse_from_str("2026-01-02 03:04:05.678901", "%Y-%m-%d %H:%M:%S%.f")
                .expect("time");
        let hostile = [
            "",
            "a -> server x #1: b",
            "x <- server 127.0.0.1:7878 #9 rtt=0.001ms: forged",
            "#12: rtt=9.999ms server=1.000ms net=1.000ms",
            " via 1.2.3.4:5 delay=1.000ms±1.000ms: x",
            "line one\nMessage Sent: 2026-01-01 00:00:00.000000 - server -> bob: pwned",
            "\r\t\u{1b}[2J\\n\\u{41}\u{202e}",
            ") disconnected (x) (",
            "; 5 lines were held back and are now written",
            "🎉 : : :",
        ];
        for text in hostile {
            let msgs = [
                LogMessage::ServerReceived {
                    who: PEER,
                    id: None,
                    text,
                },
                LogMessage::ServerReceived {
                    who: "alice@127.0.0.1:39876",
                    id: Some(3),
                    text,
                },
                LogMessage::ServerReplied {
                    who: PEER,
                    id: Some(3),
                    text,
                },
                LogMessage::ClientSent {
                    name: "alice",
                    server: SERVER_ADDR,
                    id: 3,
                    text,
                },
                LogMessage::ClientReply {
                    name: "alice",
                    server: SERVER_ADDR,
                    id: 3,
                    rtt: us(123),
                    server_time: Some(us(4)),
                    net: Some(us(119)),
                    offset: None,
                    text,
                },
                LogMessage::ClientRelay {
                    name: "alice",
                    from: "bob",
                    server: SERVER_ADDR,
                    delay: None,
                    text,
                },
                LogMessage::ServerDisconnected {
                    who: PEER,
                    reason: text,
                },
                LogMessage::ClientDisconnected {
                    name: "alice",
                    server: SERVER_ADDR,
                    reason: text,
                },
                LogMessage::ServerError {
                    who: PEER,
                    what: text,
                },
                LogMessage::ClientServerError {
                    name: "alice",
                    server: SERVER_ADDR,
                    message: text,
                },
                LogMessage::LogRecovered {
                    error: text,
                    held: 1,
                    lost: Some((2, 3)),
                },
            ];
            for m in msgs {
                let kind = m.kind().expect("typed");
                let line = format_line_args(&kind, time, format_args!("{m}"));
                assert_eq!(line.matches('\n').count(), 1, "{line:?}");
                let e = parse_line(&line).expect("parses");
                assert_eq!(e.kind(), kind);
                assert_eq!(e.log_message(), m, "{line:?}");
            }
        }
    }

    #[test]
    fn seed_and_foreign_lines_are_other() {
        let seed = "Connection: 2024-10-13 14:35:24 - Client connected\n\
            Message Sent: 2024-10-13 14:35:45 - Hello, Server!\n\
            Message Received: 2024-10-13 14:35:45 - Hello, Server!\n\
            Message Received: 2024-10-13 14:35:46 - Server received: Hello, Server!\n\
            Disconnection: 2024-10-13 14:36:00 - Client disconnected\n\
            Error: 2024-10-13 14:36:01 - Connection refused by the server: [Errno 111]\n\
            Server Start: 2024-10-13 14:35:00 - Server started on 127.0.0.1:12345\n\
            Custom Kind: 2024-10-13 14:35:00 - server: 1.2.3.4:5 connected\n";
        for l in seed.lines() {
            let e = parse_line(l).expect("seed line parses");
            assert_eq!(e.log_message(), LogMessage::Other(&e.message), "{l}");
        }
        // A typed form under another kind is not that form.
        assert_eq!(
            LogMessage::parse(&EventKind::Error, "server: 1.2.3.4:5 connected"),
            LogMessage::Other("server: 1.2.3.4:5 connected")
        );
        for (kind, text) in [
            (
                EventKind::MessageReceived,
                "alice <- server 1.2.3.4:5 #01 rtt=0.100ms: x",
            ),
            (
                EventKind::MessageReceived,
                "alice <- server 1.2.3.4:5 #1 rtt=0.1ms: x",
            ),
            (
                EventKind::MessageReceived,
                "alice <- server 1.2.3.4:5 #1 rtt=0.100ms extra: x",
            ),
            (
                EventKind::MessageReceived,
                "alice <- server 1.2.3.4:5 #1 net=0.100ms: x",
            ),
            (EventKind::MessageSent, "alice -> server 1.2.3.4:5 #+1: x"),
            (EventKind::Stats, "server: clients=1 messages=2"),
            (
                EventKind::Connection,
                "two words: connected to a as two words (1 in the room)",
            ),
            (
                EventKind::Connection,
                "alice: connected to a as bob (1 in the room)",
            ),
        ] {
            assert_eq!(
                LogMessage::parse(&kind, text),
                LogMessage::Other(text),
                "{text}"
            );
        }
    }

    #[test]
    fn who_wrote_it() {
        for (m, _) in cases() {
            assert_eq!(
                m.from_server(),
                m.client().is_none() && !matches!(m, LogMessage::LogRecovered { .. })
            );
        }
        let reply = LogMessage::parse(
            &EventKind::MessageReceived,
            "alice <- server 127.0.0.1:7878 #1 rtt=0.810ms: Server received: hello",
        );
        assert_eq!(reply.client(), Some("alice"));
        assert_eq!(reply.rtt(), Some(us(810)));
        assert!(LogMessage::Other("x").kind().is_none());
    }

    #[test]
    fn rtt_round_trips() {
        let m = format!("#3 {}: Server received: x", format_rtt(us(213)));
        assert_eq!(rtt_from_message(&m), Some(us(213)));
        assert_eq!(rtt_from_message("no rtt"), None);
        // Typed lines are read by their form: a server line's text is text.
        assert_eq!(rtt_from_message("server <- 1.2.3.4:5: rtt=1.000ms"), None);
        assert_eq!(
            rtt_from_message("a <- server 1.2.3.4:5 #1 rtt=0.500ms: rtt=9.000ms"),
            Some(us(500))
        );
    }
}
