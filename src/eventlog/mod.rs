//! The event log: the seed's line format, what chatmon writes in it, and the
//! non-blocking writer that puts it on disk.
//!
//! ```text
//! Event_Type: YYYY-MM-DD HH:MM:SS.ffffff - Message
//! ```
//!
//! - [`line`](mod@line): the one writer ([`format_line`]) and the one parser
//!   ([`parse_line`]) of a whole line, and the [`EventKind`]s.
//! - [`message`]: [`LogMessage`], the typed message part of every line
//!   chatmon writes, with one writer (`write_to`, which `Display` uses) and
//!   one parser side by side.
//! - [`escape`](mod@escape): keeps a peer's text on one line and free of
//!   terminal escapes.
//! - [`clock`]: the local time the log records, cheaply, and the wall time of
//!   a monotonic reading (a session stamps its lines from the one it takes).
//! - [`writer`]: [`EventLog`], which hands lines to one writer thread so no
//!   client thread waits on the disk.
//! - [`sink`]: where the writer's bytes go ([`LogSink`]: a file, memory, nowhere).
//!
//! Arrows: `writer` uses `line`, `message` and `sink`; `line` uses `escape`
//! and `clock`; nothing here knows the server, the client or the protocol.

pub mod clock;
pub mod escape;
pub mod line;
pub mod message;
pub mod sink;
pub mod writer;

pub use clock::now;
pub use escape::{escape, escape_into, unescape};
pub use line::{
    Event, EventKind, ParseError, format_clock, format_line, format_line_args, format_time,
    parse_line,
};
pub use message::{LogMessage, OneWayDelay, ServerStats, Shed, format_rtt, rtt_from_message};
pub use sink::{LogSink, MemorySink};
pub use writer::{EventLog, MAX_HELD, Tap};
