//! The event log: the seed's line format, with exactly one writer
//! ([`format_line`], used by [`EventLog`]) and one parser ([`parse_line`]).
//!
//! ```text
//! Event_Type: YYYY-MM-DD HH:MM:SS.ffffff - Message
//! ```
//!
//! Times are local. The parser also takes the seed's `YYYY-MM-DD HH:MM:SS`
//! without a fraction. Message text is escaped (`\\`, `\n`, `\r`, `\t`,
//! `\u{1b}`...) so that neither a line break nor a terminal escape sequence
//! from a peer can forge a line or garble a terminal that shows the log.
//!
//! [`EventLog`] hands lines to one writer thread over a channel, so that no
//! client thread ever waits on the disk; the writer appends whole lines with
//! one `write` on a file opened with `O_APPEND`, so several processes can share
//! one file without torn or interleaved lines.

use std::borrow::Cow;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use chrono::{Datelike, Local, NaiveDate, NaiveDateTime, TimeZone, Timelike};

/// Kinds of event. The first ones are the seed's; the rest are chatmon's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    Connection,
    MessageSent,
    MessageReceived,
    Disconnection,
    Error,
    ServerStart,
    ServerStop,
    /// A chat session introduced itself (hello) or changed its name.
    Join,
    /// Periodic server figures.
    Stats,
    /// Anything else a log may hold; kept so that foreign logs still parse.
    Other(String),
}

impl EventKind {
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Connection => "Connection",
            EventKind::MessageSent => "Message Sent",
            EventKind::MessageReceived => "Message Received",
            EventKind::Disconnection => "Disconnection",
            EventKind::Error => "Error",
            EventKind::ServerStart => "Server Start",
            EventKind::ServerStop => "Server Stop",
            EventKind::Join => "Join",
            EventKind::Stats => "Stats",
            EventKind::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> EventKind {
        match s {
            "Connection" => EventKind::Connection,
            "Message Sent" => EventKind::MessageSent,
            "Message Received" => EventKind::MessageReceived,
            "Disconnection" => EventKind::Disconnection,
            "Error" => EventKind::Error,
            "Server Start" => EventKind::ServerStart,
            "Server Stop" => EventKind::ServerStop,
            "Join" => EventKind::Join,
            "Stats" => EventKind::Stats,
            other => EventKind::Other(other.to_string()),
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed log line. `message` is unescaped; `precise` says whether the
/// time carried a fraction of a second (seed logs do not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub kind: &'a str,
    pub time: NaiveDateTime,
    pub precise: bool,
    pub message: Cow<'a, str>,
}

impl Event<'_> {
    pub fn kind(&self) -> EventKind {
        EventKind::parse(self.kind)
    }
}

/// Why a line is not an event line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no `Event_Type: ` prefix")]
    NoKind,
    #[error("timestamp is not `YYYY-MM-DD HH:MM:SS[.ffffff]`")]
    BadTime,
    #[error("no ` - ` between timestamp and message")]
    NoSeparator,
    #[error("bad escape sequence in message")]
    BadEscape,
}

/// Formats one log line, newline included. The only writer of the format.
pub fn format_line(kind: &EventKind, time: NaiveDateTime, message: &str) -> String {
    format_line_args(kind, time, format_args!("{message}"))
}

/// [`format_line`] for a message given as format arguments: the message is
/// written straight into the line, saving an allocation and a copy per event
/// on the server's per-message path.
pub fn format_line_args(
    kind: &EventKind,
    time: NaiveDateTime,
    message: fmt::Arguments<'_>,
) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(256);
    s.push_str(kind.as_str());
    s.push_str(": ");
    push_time(&mut s, time);
    s.push_str(" - ");
    let start = s.len();
    let _ = s.write_fmt(message);
    if any_escape(&s[start..]) {
        let raw = s.split_off(start);
        escape_into(&mut s, &raw);
    }
    s.push('\n');
    s
}

/// Formats a timestamp as `YYYY-MM-DD HH:MM:SS.ffffff`.
pub fn format_time(time: NaiveDateTime) -> String {
    let mut s = String::with_capacity(26);
    push_time(&mut s, time);
    s
}

fn push_time(s: &mut String, t: NaiveDateTime) {
    // Hand-rolled: chrono's strftime machinery costs more than the whole rest
    // of a log line, and this runs once per message on the server.
    fn push_num(s: &mut String, mut v: u32, width: usize) {
        let mut buf = [b'0'; 10];
        for i in (0..width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        for &b in &buf[..width] {
            s.push(b as char);
        }
    }
    let year = t.year().clamp(0, 9999) as u32;
    push_num(s, year, 4);
    s.push('-');
    push_num(s, t.month(), 2);
    s.push('-');
    push_num(s, t.day(), 2);
    s.push(' ');
    push_num(s, t.hour(), 2);
    s.push(':');
    push_num(s, t.minute(), 2);
    s.push(':');
    push_num(s, t.second(), 2);
    s.push('.');
    // A leap second shows up as nanosecond >= 1e9; clamp rather than print 7 digits.
    push_num(s, (t.nanosecond() / 1000).min(999_999), 6);
}

/// The current local time, as the log records it.
///
/// The UTC offset is looked up once a minute and cached process-wide:
/// chrono's per-thread zone lookup was a few percent of the server's CPU at
/// high message rates. Offsets change (DST) only on whole minutes, so the
/// cache is refreshed at each minute boundary and is never stale.
pub fn now() -> NaiveDateTime {
    use std::sync::atomic::{AtomicI32, AtomicI64};
    // `VALID_UNTIL` is the first UTC second (since the epoch) for which the
    // cached offset must be looked up again; 0 means never looked up.
    static VALID_UNTIL: AtomicI64 = AtomicI64::new(0);
    static OFFSET_SECS: AtomicI32 = AtomicI32::new(0);
    let utc = chrono::Utc::now();
    let secs = utc.timestamp();
    let offset = if secs < VALID_UNTIL.load(Ordering::Acquire) {
        OFFSET_SECS.load(Ordering::Relaxed)
    } else {
        let off = Local
            .offset_from_utc_datetime(&utc.naive_utc())
            .local_minus_utc();
        OFFSET_SECS.store(off, Ordering::Relaxed);
        VALID_UNTIL.store(secs - secs.rem_euclid(60) + 60, Ordering::Release);
        off
    };
    utc.naive_utc() + chrono::TimeDelta::seconds(i64::from(offset))
}

/// Parses one line (with or without its newline). The only parser.
pub fn parse_line(line: &str) -> Result<Event<'_>, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    // The kind may hold spaces ("Message Sent") but no colon; the first ": "
    // ends it.
    let colon = line.find(": ").ok_or(ParseError::NoKind)?;
    let kind = &line[..colon];
    if kind.is_empty()
        || !kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'_' || b == b'-')
    {
        return Err(ParseError::NoKind);
    }
    let rest = &line[colon + 2..];
    let (time, precise, used) = parse_time(rest.as_bytes()).ok_or(ParseError::BadTime)?;
    let rest = &rest[used..];
    let message = if let Some(m) = rest.strip_prefix(" - ") {
        m
    } else if rest == " -" || rest.is_empty() {
        ""
    } else {
        return Err(ParseError::NoSeparator);
    };
    Ok(Event {
        kind,
        time,
        precise,
        message: unescape(message)?,
    })
}

fn parse_time(b: &[u8]) -> Option<(NaiveDateTime, bool, usize)> {
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut v = 0u32;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut used = 19;
    let mut nanos = 0u32;
    let mut precise = false;
    if b.len() > 20 && b[19] == b'.' && b[20].is_ascii_digit() {
        let mut digits = 0;
        used = 20;
        while used < b.len() && b[used].is_ascii_digit() {
            if digits < 9 {
                nanos = nanos * 10 + u32::from(b[used] - b'0');
                digits += 1;
            }
            used += 1;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
        precise = true;
    }
    let date = NaiveDate::from_ymd_opt(y as i32, mo, d)?;
    let time = date.and_hms_nano_opt(h, mi, s, nanos)?;
    Some((time, precise, used))
}

fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        // Bidi overrides and isolates can reorder what a terminal shows.
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether any character of `text` needs escaping. Printable ASCII without
/// a backslash, by far the common case, is decided on bytes alone.
fn any_escape(text: &str) -> bool {
    let plain_ascii = text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
    !plain_ascii && text.chars().any(needs_escape)
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
                        Some(h) if h.is_ascii_hexdigit() && n < 6 => {
                            v = v * 16 + h.to_digit(16).unwrap_or(0);
                            n += 1;
                        }
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

/// Pulls `rtt=1.234ms` out of a client's `Message Received` message.
pub fn rtt_from_message(message: &str) -> Option<Duration> {
    let i = message.find("rtt=")?;
    let rest = &message[i + 4..];
    let end = rest.find("ms")?;
    let ms: f64 = rest[..end].parse().ok()?;
    if !(ms.is_finite() && ms >= 0.0) {
        return None;
    }
    Some(Duration::from_secs_f64(ms / 1000.0))
}

/// Formats a round-trip time the way [`rtt_from_message`] reads it.
pub fn format_rtt(rtt: Duration) -> String {
    format!("rtt={:.3}ms", rtt.as_secs_f64() * 1000.0)
}

/// Where the writer thread puts its bytes; a trait so that tests can make the
/// disk fail and recover.
pub trait LogSink: Send + 'static {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Like [`LogSink::append`], but also says how many leading bytes did
    /// reach the sink when it fails, so that the writer retries only the
    /// rest: a short write on a filling disk must not write half a line
    /// twice. The default is all or nothing.
    fn append_some(&mut self, bytes: &[u8]) -> (usize, io::Result<()>) {
        match self.append(bytes) {
            Ok(()) => (bytes.len(), Ok(())),
            Err(e) => (0, Err(e)),
        }
    }
}

impl LogSink for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.append_some(bytes).1
    }

    fn append_some(&mut self, bytes: &[u8]) -> (usize, io::Result<()>) {
        // One write on an O_APPEND file: the kernel places each write at the
        // end atomically, so whole lines from several processes never
        // interleave. A short write (disk full) is counted, so that the
        // writer keeps exactly the unwritten rest.
        let mut done = 0;
        while done < bytes.len() {
            match self.write(&bytes[done..]) {
                Ok(0) => return (done, Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (done, Err(e)),
            }
        }
        (done, Ok(()))
    }
}

/// A sink that throws lines away, for servers that must not log (benchmark
/// references) and for tests.
pub struct NullSink;

impl LogSink for NullSink {
    fn append(&mut self, _bytes: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that keeps lines in memory, for tests.
#[derive(Clone, Default)]
pub struct MemorySink(pub Arc<Mutex<Vec<u8>>>);

impl LogSink for MemorySink {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.0.lock() {
            Ok(mut v) => v.extend_from_slice(bytes),
            Err(p) => p.into_inner().extend_from_slice(bytes),
        }
        Ok(())
    }
}

/// A function that sees every line as it is logged (the server streams them to
/// subscribers). It must not block.
pub type Tap = Arc<dyn Fn(&str) + Send + Sync>;

enum Cmd {
    Line(String),
    Flush(mpsc::SyncSender<()>),
}

/// Handle to the log writer. Cheap to clone; every clone feeds the same
/// writer thread, which stops when the last handle is dropped, after writing
/// everything sent to it. Call [`EventLog::flush`] before the process exits.
#[derive(Clone)]
pub struct EventLog {
    tx: mpsc::Sender<Cmd>,
    path: Option<Arc<PathBuf>>,
    tap: Option<Tap>,
    /// Lines the writer holds because the sink fails, plus lines it had to
    /// drop; 0 while writing works. Read by [`EventLog::unwritten`].
    unwritten: Arc<AtomicUsize>,
}

impl EventLog {
    /// Opens (creating if needed) `path` for appending and starts the writer.
    pub fn open(path: &Path) -> io::Result<EventLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open log file {}: {e}", path.display()),
                )
            })?;
        let mut log = EventLog::with_sink(file)?;
        log.path = Some(Arc::new(path.to_path_buf()));
        Ok(log)
    }

    /// Starts a writer over any sink.
    pub fn with_sink<S: LogSink>(sink: S) -> io::Result<EventLog> {
        let (tx, rx) = mpsc::channel();
        let unwritten = Arc::new(AtomicUsize::new(0));
        let u = unwritten.clone();
        thread::Builder::new()
            .name("chatmon-log".into())
            .spawn(move || writer_loop(sink, rx, &u))?;
        Ok(EventLog {
            tx,
            path: None,
            tap: None,
            unwritten,
        })
    }

    /// A log that writes nothing.
    pub fn null() -> EventLog {
        // Spawning can only fail when the process is out of threads; then a
        // log whose lines go nowhere is exactly what was asked for anyway.
        EventLog::with_sink(NullSink).unwrap_or_else(|_| {
            let (tx, _rx) = mpsc::channel();
            EventLog {
                tx,
                path: None,
                tap: None,
                unwritten: Arc::default(),
            }
        })
    }

    /// Lines logged but not written, as of the writer's last attempt: held
    /// while the sink fails, or dropped past [`MAX_HELD`]. Check after
    /// [`EventLog::flush`] at exit, to say that the log is incomplete.
    pub fn unwritten(&self) -> usize {
        self.unwritten.load(Ordering::SeqCst)
    }

    /// The file this log appends to, if it is a file.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref().map(PathBuf::as_path)
    }

    /// Returns a handle whose lines are also shown to `tap`.
    pub fn with_tap(&self, tap: Tap) -> EventLog {
        let mut l = self.clone();
        l.tap = Some(tap);
        l
    }

    /// Logs one event now. Never blocks on the disk.
    pub fn log(&self, kind: EventKind, message: &str) {
        self.log_at(kind, now(), message);
    }

    /// Logs one event with a given time.
    pub fn log_at(&self, kind: EventKind, time: NaiveDateTime, message: &str) {
        self.log_args(kind, time, format_args!("{message}"));
    }

    /// Logs one event whose message is given as format arguments (no
    /// intermediate `String`).
    pub fn log_args(&self, kind: EventKind, time: NaiveDateTime, message: fmt::Arguments<'_>) {
        let line = format_line_args(&kind, time, message);
        if let Some(tap) = &self.tap {
            tap(&line);
        }
        // The writer only goes away at close; a line logged after that has
        // nowhere to go, and saying so on stderr is all that is left.
        if let Err(mpsc::SendError(Cmd::Line(l))) = self.tx.send(Cmd::Line(line)) {
            crate::sys::warn(format_args!(
                "chatmon: log closed, event not written: {}",
                l.trim_end()
            ));
        }
    }

    /// Waits until every line logged before this call has been written (or
    /// has failed to be written and is being retried).
    pub fn flush(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.tx.send(Cmd::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
    }
}

/// How long the writer waits after waking for more lines to batch. Lines
/// reach the file at most this much later; nothing waits on it.
const WRITE_LINGER: Duration = Duration::from_millis(2);

/// Largest batch handed to one `write`: big enough to keep up with any load,
/// small enough that the kernel writes it in one go.
const MAX_BATCH: usize = 64 * 1024;

/// Most bytes of log held in memory while the sink fails. Past it, new lines
/// are dropped (and counted, and reported) rather than exhaust memory; the
/// held ones stay a gapless prefix of what was logged.
pub const MAX_HELD: usize = 64 * 1024 * 1024;

fn writer_loop<S: LogSink>(mut sink: S, rx: mpsc::Receiver<Cmd>, unwritten: &AtomicUsize) {
    let mut buf: Vec<u8> = Vec::with_capacity(MAX_BATCH);
    let mut failing: Option<(String, usize)> = None;
    let mut dropped = 0usize;
    let mut waiters: Vec<mpsc::SyncSender<()>> = Vec::new();
    loop {
        // While the sink fails, wake up regularly to retry.
        let first = if buf.is_empty() {
            match rx.recv() {
                Ok(c) => Some(c),
                Err(_) => break,
            }
        } else {
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(c) => Some(c),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Last chance: try for a few seconds, then say what is lost.
                    for _ in 0..20 {
                        let (n, r) = sink.append_some(&buf);
                        buf.drain(..n);
                        if r.is_ok() {
                            unwritten.store(dropped, Ordering::SeqCst);
                            return;
                        }
                        thread::sleep(Duration::from_millis(250));
                    }
                    crate::sys::warn(format_args!(
                        "chatmon: could not write {} bytes of log at exit",
                        buf.len()
                    ));
                    return;
                }
            }
        };
        let mut next = first;
        while let Some(cmd) = next {
            match cmd {
                Cmd::Line(l) if failing.is_some() && buf.len() + l.len() > MAX_HELD => {
                    if dropped == 0 {
                        crate::sys::warn(format_args!(
                            "chatmon: the log cannot be written and {MAX_HELD} bytes are held; dropping new lines until it can"
                        ));
                    }
                    dropped += 1;
                }
                Cmd::Line(l) => buf.extend_from_slice(l.as_bytes()),
                Cmd::Flush(w) => waiters.push(w),
            }
            if buf.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        // Linger before writing so that the lines logged meanwhile share the
        // write. The wake-up matters more than the syscall: a sender that
        // finds the writer parked in `recv` must wake it, a futex call and a
        // context switch per line (a third of the server's CPU per message in
        // a profile of one busy plain client); while the writer sleeps here, a
        // send is only a push. Skipped for flushes and while the sink fails.
        if failing.is_none() && waiters.is_empty() && !buf.is_empty() && buf.len() < MAX_BATCH {
            thread::sleep(WRITE_LINGER);
            while buf.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Cmd::Line(l)) => buf.extend_from_slice(l.as_bytes()),
                    Ok(Cmd::Flush(w)) => waiters.push(w),
                    Err(_) => break,
                }
            }
        }
        if buf.is_empty() {
            for w in waiters.drain(..) {
                let _ = w.try_send(());
            }
            continue;
        }
        let (written, result) = sink.append_some(&buf);
        buf.drain(..written);
        match result {
            Ok(()) => {
                if let Some((err, lines)) = failing.take() {
                    crate::sys::warn(format_args!("chatmon: log writing works again"));
                    let mut msg = format!(
                        "log writing failed ({err}); {lines} lines were held back and are now written"
                    );
                    if dropped > 0 {
                        use fmt::Write as _;
                        let _ = write!(
                            msg,
                            "; {dropped} lines past the {MAX_HELD}-byte hold were lost"
                        );
                    }
                    dropped = 0;
                    let line = format_line(&EventKind::Error, now(), &msg);
                    let _ = sink.append(line.as_bytes());
                }
                unwritten.store(0, Ordering::SeqCst);
                for w in waiters.drain(..) {
                    let _ = w.try_send(());
                }
            }
            Err(e) => {
                let lines = buf.iter().filter(|&&b| b == b'\n').count();
                if failing.is_none() {
                    crate::sys::warn(format_args!(
                        "chatmon: cannot write the log: {e}; holding lines in memory and retrying"
                    ));
                }
                // Lines from the first failure on: the count only grows.
                let held = failing.as_ref().map_or(0, |f| f.1).max(lines);
                failing = Some((e.to_string(), held));
                unwritten.store(lines + dropped, Ordering::SeqCst);
                // Flush waiters are released anyway: they must not hang on a
                // broken disk, and the lines stay queued.
                for w in waiters.drain(..) {
                    let _ = w.try_send(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").expect("valid test time")
    }

    #[test]
    fn formats_the_seed_layout_with_micros() {
        let line = format_line(
            &EventKind::MessageReceived,
            t("2024-10-13 14:35:24.000123"),
            "hi",
        );
        assert_eq!(line, "Message Received: 2024-10-13 14:35:24.000123 - hi\n");
    }

    #[test]
    fn parses_seed_lines() {
        let e = parse_line("Connection: 2024-10-13 14:35:24 - Client connected").expect("parses");
        assert_eq!(e.kind(), EventKind::Connection);
        assert_eq!(e.time, t("2024-10-13 14:35:24.0"));
        assert!(!e.precise);
        assert_eq!(e.message, "Client connected");
    }

    #[test]
    fn round_trips_hostile_text() {
        let msg = "a\nforged: 2024-01-01 00:00:00 - x\r\u{1b}[2J\\u{41} \u{202e}rtl \t🎉";
        let line = format_line(&EventKind::Error, t("2026-01-02 03:04:05.678901"), msg);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(!line.contains('\u{1b}'));
        let e = parse_line(&line).expect("parses");
        assert_eq!(e.message, msg);
        assert_eq!(e.kind(), EventKind::Error);
        assert!(e.precise);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_line("hello"), Err(ParseError::NoKind));
        assert_eq!(
            parse_line("Connection: yesterday - x"),
            Err(ParseError::BadTime)
        );
        assert_eq!(
            parse_line("Connection: 2024-13-13 14:35:24 - x"),
            Err(ParseError::BadTime)
        );
        assert_eq!(
            parse_line("Connection: 2024-10-13 14:35:24 x"),
            Err(ParseError::NoSeparator)
        );
    }

    #[test]
    fn cached_now_matches_chrono_local() {
        let a = Local::now().naive_local();
        let ours = now();
        let b = Local::now().naive_local();
        assert!(a <= ours && ours <= b, "{a} {ours} {b}");
    }

    #[test]
    fn rtt_round_trips() {
        let m = format!(
            "#3 {}: Server received: x",
            format_rtt(Duration::from_micros(213))
        );
        assert_eq!(rtt_from_message(&m), Some(Duration::from_micros(213)));
        assert_eq!(rtt_from_message("no rtt"), None);
    }

    #[test]
    fn writer_writes_whole_lines_and_flushes() {
        let sink = MemorySink::default();
        let log = EventLog::with_sink(sink.clone()).expect("spawn");
        for i in 0..1000 {
            log.log(EventKind::MessageSent, &format!("m{i}"));
        }
        log.flush();
        let data = sink.0.lock().expect("lock").clone();
        let text = String::from_utf8(data).expect("utf8");
        assert_eq!(text.lines().count(), 1000);
        assert!(text.lines().all(|l| parse_line(l).is_ok()));
    }

    struct Flaky {
        fail: Arc<Mutex<bool>>,
        out: MemorySink,
    }
    impl LogSink for Flaky {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            if *self.fail.lock().expect("lock") {
                return Err(io::Error::other("No space left on device"));
            }
            self.out.append(bytes)
        }
    }

    #[test]
    fn failing_disk_holds_lines_and_resumes() {
        let fail = Arc::new(Mutex::new(true));
        let out = MemorySink::default();
        let log = EventLog::with_sink(Flaky {
            fail: fail.clone(),
            out: out.clone(),
        })
        .expect("spawn");
        log.log(EventKind::Connection, "one");
        log.log(EventKind::Connection, "two");
        log.flush();
        assert!(out.0.lock().expect("lock").is_empty());
        *fail.lock().expect("lock") = false;
        // The writer retries every 250 ms; give it a bounded while.
        for _ in 0..40 {
            if !out.0.lock().expect("lock").is_empty() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        log.flush();
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("- one"));
        assert!(lines[1].ends_with("- two"));
        assert!(lines[2].starts_with("Error: "));
        assert!(lines[2].contains("No space left on device"));
    }

    /// A disk that takes `room` more bytes, then fails (a short write), until
    /// `room` is raised again.
    struct Filling {
        room: Arc<Mutex<usize>>,
        out: MemorySink,
    }
    impl LogSink for Filling {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.append_some(bytes).1
        }
        fn append_some(&mut self, bytes: &[u8]) -> (usize, io::Result<()>) {
            let mut room = self.room.lock().expect("lock");
            let n = bytes.len().min(*room);
            *room -= n;
            let _ = self.out.append(&bytes[..n]);
            if n < bytes.len() {
                (n, Err(io::Error::other("No space left on device")))
            } else {
                (n, Ok(()))
            }
        }
    }

    #[test]
    fn short_writes_never_tear_or_repeat_a_line() {
        let room = Arc::new(Mutex::new(100));
        let out = MemorySink::default();
        let log = EventLog::with_sink(Filling {
            room: room.clone(),
            out: out.clone(),
        })
        .expect("spawn");
        for i in 0..20 {
            log.log(EventKind::MessageSent, &format!("line {i}"));
        }
        log.flush();
        assert!(log.unwritten() > 0, "lines are held");
        *room.lock().expect("lock") = usize::MAX;
        for _ in 0..40 {
            if log.unwritten() == 0 {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        log.flush();
        assert_eq!(log.unwritten(), 0);
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 21, "{text}");
        for (i, l) in lines[..20].iter().enumerate() {
            let e = parse_line(l).expect("whole line");
            assert_eq!(e.message, format!("line {i}"));
        }
        assert!(lines[20].starts_with("Error: ") && lines[20].contains("lines were held back"));
    }
}
