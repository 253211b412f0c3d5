//! The non-blocking writer: [`EventLog`] handles hand whole lines to one
//! writer thread over a channel, so that no client thread ever waits on the
//! disk; the writer appends batches with one `write` on a file opened with
//! `O_APPEND`, so several processes can share one file without torn or
//! interleaved lines, and holds lines in memory (bounded) while the sink fails.

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::clock::now;
use super::line::{EventKind, format_line_args};
use super::message::LogMessage;
use super::sink::{LogSink, NullSink};

/// A function that sees every line as it is logged (the server streams them to
/// subscribers). It must not block.
pub type Tap = Arc<dyn Fn(&str) + Send + Sync>;

enum Cmd {
    Line(String),
    Flush(mpsc::SyncSender<()>),
}

/// Counts shared by the handles and the writer, read by
/// [`EventLog::unwritten`].
#[derive(Default)]
struct Counters {
    /// Lines the writer holds because the sink fails, plus lines it had to
    /// drop; 0 while writing works.
    unwritten: AtomicUsize,
    /// Lines sent to the writer and not yet taken off the channel: a writer
    /// that is behind must not make the log look more complete than it is.
    queued: AtomicUsize,
}

/// Handle to the log writer. Cheap to clone; every clone feeds the same
/// writer thread, which stops when the last handle is dropped, after writing
/// everything sent to it. Call [`EventLog::flush`] before the process exits.
#[derive(Clone)]
pub struct EventLog {
    tx: mpsc::Sender<Cmd>,
    path: Option<Arc<PathBuf>>,
    tap: Option<Tap>,
    counters: Arc<Counters>,
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
        EventLog::with_sink_holding(sink, MAX_HELD)
    }

    /// [`EventLog::with_sink`] with a given hold limit (tests use a small
    /// one, to reach it without 64 MiB of lines).
    fn with_sink_holding<S: LogSink>(sink: S, max_held: usize) -> io::Result<EventLog> {
        let (tx, rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        thread::Builder::new()
            .name("chatmon-log".into())
            .spawn(move || Writer::new(sink, max_held, &c).run(rx))?;
        Ok(EventLog {
            tx,
            path: None,
            tap: None,
            counters,
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
                counters: Arc::default(),
            }
        })
    }

    /// Lines logged but not written: held while the sink fails, dropped past
    /// [`MAX_HELD`], or still queued for the writer. Check after
    /// [`EventLog::flush`] at exit, to say that the log is incomplete.
    pub fn unwritten(&self) -> usize {
        let c = &self.counters;
        // The writer raises `unwritten` before it lowers `queued`, so a line
        // moving from one to the other may be counted twice for a moment but
        // is never missed.
        let queued = c.queued.load(Ordering::SeqCst);
        c.unwritten.load(Ordering::SeqCst).saturating_add(queued)
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
        // Counted before the send, so that the writer, which subtracts what
        // it takes, never sees the count go below zero.
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        // The writer only goes away at close; a line logged after that has
        // nowhere to go, and saying so on stderr is all that is left.
        if let Err(mpsc::SendError(Cmd::Line(l))) = self.tx.send(Cmd::Line(line)) {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            warn(format_args!(
                "chatmon: log closed, event not written: {}",
                l.trim_end()
            ));
        }
    }

    /// Logs one typed message now: formatted straight into the line, as
    /// [`EventLog::log_args`] does, with no allocation besides the line.
    /// `kind` must be the message's own ([`LogMessage::kind`]); it is given
    /// so that [`LogMessage::Other`] can be logged under any kind.
    pub fn record(&self, kind: EventKind, message: &LogMessage<'_>) {
        self.record_at(kind, now(), message);
    }

    /// [`EventLog::record`] with a given time.
    pub fn record_at(&self, kind: EventKind, time: NaiveDateTime, message: &LogMessage<'_>) {
        debug_assert!(
            message.kind().is_none_or(|k| k == kind),
            "{message:?} logged as {kind}"
        );
        self.log_args(kind, time, format_args!("{message}"));
    }

    /// Waits until every line logged before this call has been written (or
    /// has failed to be written and is being retried).
    pub fn flush(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.tx.send(Cmd::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(FLUSH_WAIT);
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

/// How long [`EventLog::flush`] waits for the writer at most: a writer stuck
/// in a sink must not hang the process at exit.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// How often the writer tries a failing sink once every handle is gone, each
/// [`RETRY_EVERY`] apart, before it gives up and says what is lost.
const LAST_CHANCE_TRIES: usize = 20;

/// How often a failing sink is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(250);

/// While the sink fails, how many commands the writer takes between two
/// looks at the clock, so that a flood of lines cannot postpone the retry.
const DRAIN_CHECK: usize = 4096;

/// The sink failed; lines are held until it works again.
struct Failure {
    error: String,
    /// Lines held since the failure began (only grows), for the report
    /// written when the sink works again.
    held: usize,
    retry_at: Instant,
}

/// The writer thread's state.
struct Writer<'a, S> {
    sink: S,
    buf: Vec<u8>,
    /// Lines in `buf`, kept up to date as lines come and go: counting them in
    /// a buffer of up to [`MAX_HELD`] bytes on every line is what made a
    /// writer with a failing sink fall behind for good.
    buf_lines: usize,
    max_held: usize,
    failing: Option<Failure>,
    /// Lines dropped past `max_held` since the failure began.
    dropped: usize,
    waiters: Vec<mpsc::SyncSender<()>>,
    counters: &'a Counters,
}

impl<'a, S: LogSink> Writer<'a, S> {
    fn new(sink: S, max_held: usize, counters: &'a Counters) -> Self {
        Writer {
            sink,
            buf: Vec::with_capacity(MAX_BATCH),
            buf_lines: 0,
            max_held,
            failing: None,
            dropped: 0,
            waiters: Vec::new(),
            counters,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        loop {
            let Some(retry_at) = self.failing.as_ref().map(|f| f.retry_at) else {
                // Writing works, so `buf` is empty: everything taken so far
                // was written.
                match rx.recv() {
                    Ok(first) => self.write_batch(first, &rx),
                    Err(_) => return,
                }
                continue;
            };
            // While the sink fails, take every line as it comes (cheap: an
            // append or a count) and try the sink only on the timer, never
            // once per line.
            let wait = retry_at.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(first) => self.take_while_failing(first, &rx, retry_at),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.last_chance();
                    return;
                }
            }
            if Instant::now() >= retry_at {
                self.retry();
            }
        }
    }

    /// Takes lines while writing works, up to a batch, and writes them.
    fn write_batch(&mut self, first: Cmd, rx: &mpsc::Receiver<Cmd>) {
        let mut taken = 0;
        let mut next = Some(first);
        while let Some(cmd) = next {
            match cmd {
                Cmd::Line(l) => {
                    self.push(&l);
                    taken += 1;
                }
                Cmd::Flush(w) => self.waiters.push(w),
            }
            if self.buf.len() >= MAX_BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        // Linger before writing so that the lines logged meanwhile share the
        // write. The wake-up matters more than the syscall: a sender that
        // finds the writer parked in `recv` must wake it, a futex call and a
        // context switch per line (a third of the server's CPU per message in
        // a profile of one busy plain client); while the writer sleeps here, a
        // send is only a push. Skipped for flushes.
        if self.waiters.is_empty() && !self.buf.is_empty() && self.buf.len() < MAX_BATCH {
            thread::sleep(WRITE_LINGER);
            while self.buf.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(Cmd::Line(l)) => {
                        self.push(&l);
                        taken += 1;
                    }
                    Ok(Cmd::Flush(w)) => self.waiters.push(w),
                    Err(_) => break,
                }
            }
        }
        self.counters.queued.fetch_sub(taken, Ordering::SeqCst);
        if !self.buf.is_empty() {
            let (written, result) = self.sink.append_some(&self.buf);
            match result {
                Ok(()) => self.clear(),
                Err(e) => {
                    self.consume(written);
                    warn(format_args!(
                        "chatmon: cannot write the log: {e}; holding lines in memory and retrying"
                    ));
                    self.failing = Some(Failure {
                        error: e.to_string(),
                        held: self.buf_lines,
                        retry_at: Instant::now() + RETRY_EVERY,
                    });
                    self.publish();
                }
            }
        }
        // Released after the write, or on failure anyway: waiters must not
        // hang on a broken disk, and the lines stay held.
        for w in self.waiters.drain(..) {
            let _ = w.try_send(());
        }
    }

    /// Takes everything queued while the sink fails: lines are held up to
    /// the limit and counted as dropped past it; flushes are answered at
    /// once, since every line sent before them has now been taken.
    fn take_while_failing(&mut self, first: Cmd, rx: &mpsc::Receiver<Cmd>, retry_at: Instant) {
        let mut taken = 0;
        let mut seen = 0;
        let mut next = Some(first);
        while let Some(cmd) = next {
            match cmd {
                Cmd::Line(l) => {
                    taken += 1;
                    if self.buf.len() + l.len() > self.max_held {
                        if self.dropped == 0 {
                            warn(format_args!(
                                "chatmon: the log cannot be written and {} bytes are held; dropping new lines until it can",
                                self.max_held
                            ));
                        }
                        self.dropped += 1;
                    } else {
                        self.push(&l);
                        if let Some(f) = self.failing.as_mut() {
                            f.held += 1;
                        }
                    }
                }
                Cmd::Flush(w) => {
                    // Counts first, so that a flushing thread reads them exact.
                    self.publish();
                    self.counters.queued.fetch_sub(taken, Ordering::SeqCst);
                    taken = 0;
                    let _ = w.try_send(());
                }
            }
            seen += 1;
            if seen % DRAIN_CHECK == 0 && Instant::now() >= retry_at {
                break;
            }
            next = rx.try_recv().ok();
        }
        self.publish();
        self.counters.queued.fetch_sub(taken, Ordering::SeqCst);
    }

    /// Tries the failing sink again.
    fn retry(&mut self) {
        let (written, result) = self.sink.append_some(&self.buf);
        match result {
            Ok(()) => {
                self.clear();
                // A hold of up to MAX_HELD bytes is not kept once written.
                self.buf.shrink_to(MAX_BATCH);
                if let Some(f) = self.failing.take() {
                    warn(format_args!("chatmon: log writing works again"));
                    let msg = LogMessage::LogRecovered {
                        error: &f.error,
                        held: f.held,
                        lost: (self.dropped > 0).then_some((self.dropped, self.max_held)),
                    };
                    self.dropped = 0;
                    let line = format_line_args(&EventKind::Error, now(), format_args!("{msg}"));
                    let _ = self.sink.append(line.as_bytes());
                }
                self.publish();
            }
            Err(e) => {
                self.consume(written);
                if let Some(f) = self.failing.as_mut() {
                    f.error = e.to_string();
                    f.retry_at = Instant::now() + RETRY_EVERY;
                }
                self.publish();
            }
        }
    }

    /// All senders are gone and the sink fails: try for a few seconds, then
    /// say what is lost.
    fn last_chance(&mut self) {
        for _ in 0..LAST_CHANCE_TRIES {
            let (written, result) = self.sink.append_some(&self.buf);
            if result.is_ok() {
                self.clear();
                self.publish();
                return;
            }
            self.consume(written);
            self.publish();
            thread::sleep(RETRY_EVERY);
        }
        warn(format_args!(
            "chatmon: could not write {} bytes of log at exit",
            self.buf.len()
        ));
    }

    fn push(&mut self, line: &str) {
        self.buf.extend_from_slice(line.as_bytes());
        self.buf_lines += 1;
    }

    /// Forgets the first `written` bytes of `buf`, which reached the sink.
    /// Counting their newlines costs as much as writing them did, once.
    fn consume(&mut self, written: usize) {
        let done = self.buf[..written].iter().filter(|&&b| b == b'\n').count();
        self.buf_lines = self.buf_lines.saturating_sub(done);
        self.buf.drain(..written);
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.buf_lines = 0;
    }

    /// Makes the held and dropped counts visible to [`EventLog::unwritten`].
    fn publish(&self) {
        let n = if self.failing.is_some() {
            self.buf_lines + self.dropped
        } else {
            // Working again: lines dropped during the failure are reported
            // in the log itself by the recovery event.
            0
        };
        self.counters.unwritten.store(n, Ordering::SeqCst);
    }
}

/// The writer's last resort: a line on stderr, never a panic (stderr may be
/// closed). Its own copy so that the event log imports nothing of chatmon.
fn warn(msg: fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut e = std::io::stderr().lock();
    let _ = e.write_fmt(msg);
    let _ = e.write_all(b"\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::line::{format_line, parse_line};
    use crate::eventlog::sink::MemorySink;
    use std::sync::Mutex;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").expect("valid test time")
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

    /// A sink that always fails (until told otherwise) and counts how often
    /// it is tried.
    struct Broken {
        fail: Arc<Mutex<bool>>,
        tries: Arc<AtomicUsize>,
        out: MemorySink,
    }
    impl LogSink for Broken {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.tries.fetch_add(1, Ordering::SeqCst);
            if *self.fail.lock().expect("lock") {
                return Err(io::Error::other("No space left on device"));
            }
            self.out.append(bytes)
        }
    }

    fn broken() -> (Broken, Arc<Mutex<bool>>, Arc<AtomicUsize>, MemorySink) {
        let fail = Arc::new(Mutex::new(true));
        let tries = Arc::new(AtomicUsize::new(0));
        let out = MemorySink::default();
        let sink = Broken {
            fail: fail.clone(),
            tries: tries.clone(),
            out: out.clone(),
        };
        (sink, fail, tries, out)
    }

    /// Logs `per_thread` lines of equal length from each of `threads` threads.
    fn flood(log: &EventLog, threads: usize, per_thread: usize) {
        let time = t("2026-01-02 03:04:05.678901");
        let hs: Vec<_> = (0..threads)
            .map(|k| {
                let log = log.clone();
                thread::spawn(move || {
                    for i in 0..per_thread {
                        log.log_at(EventKind::MessageSent, time, &format!("{k}-{i:07}"));
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("logger thread");
        }
    }

    #[test]
    fn failing_sink_keeps_up_with_a_flood_and_counts_exactly() {
        let (sink, fail, tries, out) = broken();
        let log = EventLog::with_sink(sink).expect("spawn");
        let start = std::time::Instant::now();
        flood(&log, 4, 50_000);
        let before_flush = std::time::Instant::now();
        log.flush();
        // The writer is not behind: the flush is answered at once, not
        // after a backlog (or the 5 s flush timeout).
        assert!(
            before_flush.elapsed() < Duration::from_secs(2),
            "flush took {:?}",
            before_flush.elapsed()
        );
        assert_eq!(log.unwritten(), 200_000);
        // The sink is tried on the timer, not once per line.
        let bound = start.elapsed().as_millis() as usize / 250 + 3;
        let n = tries.load(Ordering::SeqCst);
        assert!(n <= bound, "{n} tries in {:?}", start.elapsed());
        *fail.lock().expect("lock") = false;
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
        assert_eq!(lines.len(), 200_001);
        // Each thread's lines arrive whole and in order.
        let mut next = [0usize; 4];
        for l in &lines[..200_000] {
            let e = parse_line(l).expect("whole line");
            let (k, i) = e.message.split_once('-').expect("k-i");
            let k: usize = k.parse().expect("k");
            assert_eq!(i.parse::<usize>().expect("i"), next[k]);
            next[k] += 1;
        }
        assert!(
            lines[200_000].contains("200000 lines were held back"),
            "{}",
            lines[200_000]
        );
    }

    #[test]
    fn failing_sink_past_the_hold_counts_drops_exactly() {
        let (sink, fail, _tries, out) = broken();
        let len = format_line(
            &EventKind::MessageSent,
            t("2026-01-02 03:04:05.678901"),
            "0-0000000",
        )
        .len();
        // Room for exactly 2000 lines: more than the first batch, which is
        // held whole when its write fails.
        assert!(2000 * len > MAX_BATCH + len);
        let log = EventLog::with_sink_holding(sink, 2000 * len).expect("spawn");
        flood(&log, 2, 10_000);
        log.flush();
        assert_eq!(log.unwritten(), 20_000, "held and dropped lines");
        *fail.lock().expect("lock") = false;
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
        assert_eq!(lines.len(), 2001, "the held lines and the report");
        assert!(
            lines[2000].contains("2000 lines were held back")
                && lines[2000].contains("; 18000 lines past the"),
            "{}",
            lines[2000]
        );
        // Lines logged after the recovery are written again.
        log.log(EventKind::Connection, "after");
        log.flush();
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        assert!(text.ends_with("- after\n"), "{text}");
    }

    /// A sink whose first append blocks until released.
    struct Stuck {
        entered: mpsc::SyncSender<()>,
        release: Arc<Mutex<mpsc::Receiver<()>>>,
        first: bool,
    }
    impl LogSink for Stuck {
        fn append(&mut self, _bytes: &[u8]) -> io::Result<()> {
            if std::mem::replace(&mut self.first, false) {
                let _ = self.entered.send(());
                let _ = self.release.lock().expect("lock").recv();
            }
            Ok(())
        }
    }

    #[test]
    fn unwritten_counts_lines_still_queued() {
        let (entered_tx, entered) = mpsc::sync_channel(1);
        let (release, release_rx) = mpsc::channel();
        let log = EventLog::with_sink(Stuck {
            entered: entered_tx,
            release: Arc::new(Mutex::new(release_rx)),
            first: true,
        })
        .expect("spawn");
        log.log(EventKind::Connection, "first");
        entered
            .recv_timeout(Duration::from_secs(5))
            .expect("writer in the sink");
        for i in 0..1000 {
            log.log(EventKind::Connection, &format!("{i}"));
        }
        // The writer is stuck in the sink: all 1000 wait in the channel.
        assert_eq!(log.unwritten(), 1000);
        release.send(()).expect("release");
        log.flush();
        assert_eq!(log.unwritten(), 0);
    }

    #[test]
    fn record_writes_the_typed_message_as_the_line_format_does() {
        let sink = MemorySink::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let log = EventLog::with_sink(sink.clone())
            .expect("spawn")
            .with_tap(Arc::new(move |l: &str| {
                s.lock().expect("lock").push(l.to_string());
            }));
        let time = t("2026-01-02 03:04:05.678901");
        let msg = LogMessage::ServerReceived {
            who: "alice@127.0.0.1:5000",
            id: Some(4),
            text: "hi\nthere\u{1b}",
        };
        log.record_at(EventKind::MessageReceived, time, &msg);
        log.record(EventKind::Other("Custom".into()), &LogMessage::Other("x"));
        log.flush();
        let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert_eq!(
            lines[0],
            "Message Received: 2026-01-02 03:04:05.678901 - server <- alice@127.0.0.1:5000 #4: hi\\nthere\\u{1b}\n"
        );
        let e = parse_line(lines[0]).expect("parses");
        assert_eq!(e.log_message(), msg);
        assert!(lines[1].starts_with("Custom: ") && lines[1].ends_with(" - x\n"));
        assert_eq!(*seen.lock().expect("lock"), lines);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "logged as Error")]
    fn record_refuses_a_message_under_another_kind() {
        EventLog::null().record(EventKind::Error, &LogMessage::ServerConnected { peer: "p" });
    }
}
