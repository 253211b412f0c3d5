//! The non-blocking writer: [`EventLog`] handles format each line in a
//! buffer of their thread and append it to one shared in-memory batch (a
//! short lock around a copy: no allocation, no channel, and no wake-up of
//! the writer while it is busy), so that no client thread ever waits on the
//! disk; one writer thread takes the whole batch every few milliseconds and
//! appends it with one `write` on a file opened with `O_APPEND`, so several
//! processes can share one file without torn or interleaved lines, and holds
//! lines in memory (bounded) while the sink fails.

use std::cell::RefCell;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::clock::now;
use super::line::{EventKind, LINE_CAPACITY, format_line_args, format_line_with};
use super::message::LogMessage;
use super::sink::{LogSink, NullSink};

/// A function that sees every line as it is logged (the server streams them to
/// subscribers). It must not block.
pub type Tap = Arc<dyn Fn(&str) + Send + Sync>;

/// What the handles and the writer share, under [`Inner::state`].
#[derive(Default)]
struct State {
    /// Whole lines logged and not yet taken by the writer, in the order they
    /// were appended.
    batch: Vec<u8>,
    /// Lines in `batch`: a writer that is behind must not make the log look
    /// more complete than it is.
    lines: usize,
    /// Lines refused because `batch` had reached [`MAX_HELD`] (the writer
    /// starved of CPU or stuck in its sink): never a wait for a session.
    refused: usize,
    /// The writer waits for work; the next line or flush must wake it. Only
    /// then does a line cost a wake-up: a writer that is busy or lingering
    /// finds the line by itself.
    parked: bool,
    /// Flush tickets handed out, and the last one the writer answered.
    flush_asked: u64,
    flush_done: u64,
    /// Every handle is gone: write what is left and stop.
    closed: bool,
    /// The writer has stopped (or never started): lines have nowhere to go.
    gone: bool,
}

/// Shared by the handles and the writer thread.
struct Inner {
    state: Mutex<State>,
    /// Wakes the parked writer.
    work: Condvar,
    /// Wakes threads waiting in [`EventLog::flush`].
    done: Condvar,
    /// Lines the writer holds because the sink fails, plus lines it had to
    /// drop; 0 while writing works. Read by [`EventLog::unwritten`].
    unwritten: AtomicUsize,
    /// Lines refused for good (see [`State::refused`]): the log misses them
    /// whatever happens next.
    lost: AtomicUsize,
    /// Most bytes held by the writer while the sink fails.
    max_held: usize,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves whole lines behind:
        // appends and takes are single copies. Go on with them.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Held by every [`EventLog`] clone: when the last one goes, the writer is
/// told to finish.
struct Handles(Arc<Inner>);

impl Drop for Handles {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.closed = true;
        drop(st);
        self.0.work.notify_one();
    }
}

/// Handle to the log writer. Cheap to clone; every clone feeds the same
/// writer thread, which stops when the last handle is dropped, after writing
/// everything sent to it. Call [`EventLog::flush`] before the process exits.
#[derive(Clone)]
pub struct EventLog {
    handles: Arc<Handles>,
    path: Option<Arc<PathBuf>>,
    tap: Option<Tap>,
}

thread_local! {
    /// The line being formatted, reused from line to line on each thread.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(LINE_CAPACITY));
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

    fn inner(max_held: usize) -> Arc<Inner> {
        Arc::new(Inner {
            state: Mutex::new(State {
                batch: Vec::with_capacity(MAX_BATCH),
                ..State::default()
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            unwritten: AtomicUsize::new(0),
            lost: AtomicUsize::new(0),
            max_held,
        })
    }

    fn from_inner(inner: Arc<Inner>) -> EventLog {
        EventLog {
            handles: Arc::new(Handles(inner)),
            path: None,
            tap: None,
        }
    }

    /// [`EventLog::with_sink`] with a given hold limit (tests use a small
    /// one, to reach it without 64 MiB of lines).
    fn with_sink_holding<S: LogSink>(sink: S, max_held: usize) -> io::Result<EventLog> {
        let inner = EventLog::inner(max_held);
        let w = inner.clone();
        thread::Builder::new()
            .name("chatmon-log".into())
            .spawn(move || {
                batch_priority();
                Writer::new(sink, &w).run();
                let mut st = w.lock();
                st.gone = true;
                drop(st);
                w.done.notify_all();
            })?;
        Ok(EventLog::from_inner(inner))
    }

    /// A log that writes nothing.
    pub fn null() -> EventLog {
        // Spawning can only fail when the process is out of threads; then a
        // log whose lines go nowhere is exactly what was asked for anyway.
        EventLog::with_sink(NullSink).unwrap_or_else(|_| {
            let inner = EventLog::inner(MAX_HELD);
            inner.lock().gone = true;
            EventLog::from_inner(inner)
        })
    }

    fn shared(&self) -> &Inner {
        &self.handles.0
    }

    /// Lines logged but not written: held while the sink fails, dropped past
    /// [`MAX_HELD`], or still queued for the writer. Check after
    /// [`EventLog::flush`] at exit, to say that the log is incomplete.
    pub fn unwritten(&self) -> usize {
        let inner = self.shared();
        // Read under the lock the writer takes and holds lines under, so a
        // line moving from the batch to the hold is counted once.
        let st = inner.lock();
        st.lines
            .saturating_add(st.refused)
            .saturating_add(inner.unwritten.load(Ordering::SeqCst))
            .saturating_add(inner.lost.load(Ordering::SeqCst))
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
        self.log_with(kind, time, |s| {
            use fmt::Write as _;
            let _ = s.write_fmt(message);
        });
    }

    /// Formats one line, its message appended by `message`, in the thread's
    /// reused buffer, and emits it.
    fn log_with(&self, kind: EventKind, time: NaiveDateTime, message: impl FnOnce(&mut String)) {
        self.in_line_buffer(|line| {
            format_line_with(line, &kind, time, message);
            self.emit(&[line.as_str()]);
        });
    }

    /// Runs `f` on the thread's own (cleared) line buffer; on a fresh one if
    /// it is in use (a tap that logs) or gone (a thread being torn down).
    fn in_line_buffer(&self, f: impl FnOnce(&mut String)) {
        let mut f = Some(f);
        let _ = LINE.try_with(|cell| {
            if let Ok(mut line) = cell.try_borrow_mut()
                && let Some(f) = f.take()
            {
                line.clear();
                f(&mut line);
                if line.capacity() > MAX_KEPT_LINE {
                    // A peer's 64 KiB line must not stay with its session
                    // thread: 10,000 of them would hold a gigabyte.
                    *line = String::with_capacity(LINE_CAPACITY);
                }
            }
        });
        if let Some(f) = f {
            f(&mut String::with_capacity(LINE_CAPACITY));
        }
    }

    /// Logs two typed messages as [`EventLog::record_at`] does, appended to
    /// the log together: one take of the shared batch for both lines of a
    /// message and its reply (that take was a tenth of a session's own CPU,
    /// all of it the lock's cache line moving between cores). Lines other
    /// threads log meanwhile come before both or after both.
    pub fn record_pair_at(
        &self,
        first: (EventKind, NaiveDateTime, &LogMessage<'_>),
        second: (EventKind, NaiveDateTime, &LogMessage<'_>),
    ) {
        for (kind, _, message) in [&first, &second] {
            debug_assert!(
                message.kind().is_none_or(|k| k == *kind),
                "{message:?} logged as {kind}"
            );
        }
        self.in_line_buffer(|line| {
            format_line_with(line, &first.0, first.1, |s| {
                let _ = first.2.write_to(s);
            });
            let split = line.len();
            format_line_with(line, &second.0, second.1, |s| {
                let _ = second.2.write_to(s);
            });
            let (a, b) = line.split_at(split);
            self.emit(&[a, b]);
        });
    }

    /// Shows formatted lines to the tap and appends them to the batch, in
    /// one take of its lock.
    fn emit(&self, lines: &[&str]) {
        if let Some(tap) = &self.tap {
            for line in lines {
                tap(line);
            }
        }
        let inner = self.shared();
        let mut st = inner.lock();
        if st.gone {
            drop(st);
            // The writer only goes away at close; a line logged after that
            // has nowhere to go, and saying so on stderr is all that is left.
            for line in lines {
                warn(format_args!(
                    "chatmon: log closed, event not written: {}",
                    line.trim_end()
                ));
            }
            return;
        }
        for line in lines {
            if st.batch.len() + line.len() > MAX_HELD {
                // Never wait for the writer: count the line and go on.
                st.refused += 1;
                continue;
            }
            st.batch.extend_from_slice(line.as_bytes());
            st.lines += 1;
        }
        let wake = std::mem::take(&mut st.parked);
        drop(st);
        if wake {
            inner.work.notify_one();
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
        self.log_with(kind, time, |s| {
            let _ = message.write_to(s);
        });
    }

    /// Waits until every line logged before this call has been written (or
    /// has failed to be written and is being retried).
    pub fn flush(&self) {
        let inner = self.shared();
        let mut st = inner.lock();
        if st.gone {
            return;
        }
        st.flush_asked += 1;
        let ticket = st.flush_asked;
        if std::mem::take(&mut st.parked) {
            inner.work.notify_one();
        }
        let deadline = Instant::now() + FLUSH_WAIT;
        while st.flush_done < ticket && !st.gone {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            st = inner
                .done
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Puts the calling (writer) thread in Linux's `SCHED_BATCH` class: it keeps
/// its fair share of the CPU, so it never falls behind for want of it, but
/// its wake-ups no longer preempt a session thread in the middle of a
/// message; it runs when one blocks in its next read, microseconds later.
/// Where that is not possible it stays a normal thread, which only costs
/// latency.
fn batch_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler only reads `param`; pid 0 is the
        // calling thread.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

/// How long the writer waits after taking up work for more lines to batch.
/// Lines reach the file at most this much later; nothing waits on it (a
/// flush skips it, and readers of the file such as the TUI poll it every
/// 200 ms). Measured under 10 busy clients (~17 MB/s of log), the writer's
/// own CPU per message was 180-320 ns at 2 ms, 118-180 ns at 10 ms and
/// 83-95 ns at 25 ms: a `write(2)` has a large fixed cost on ext4 (the
/// inode's times go through the journal, and larger writes get larger page
/// cache folios). 10 ms keeps most of the gain while one write stays short
/// enough (~100 µs) not to hold a core long.
const WRITE_LINGER: Duration = Duration::from_millis(10);

/// Largest line buffer a thread keeps between lines; longer lines are rare
/// (a peer's long message) and get a buffer of their own each time.
const MAX_KEPT_LINE: usize = 4 * 1024;

/// A batch this large is written at once, without lingering: big enough to
/// keep up with any load, small enough that the kernel writes it in one go.
const MAX_BATCH: usize = 64 * 1024;

/// Most bytes of log held in memory while the sink fails, and again waiting
/// for a writer that is behind. Past it, new lines are dropped (and counted, and
/// reported) rather than exhaust memory; the held ones stay a gapless prefix
/// of what was logged.
pub const MAX_HELD: usize = 64 * 1024 * 1024;

/// How long [`EventLog::flush`] waits for the writer at most: a writer stuck
/// in a sink must not hang the process at exit.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// How often the writer tries a failing sink once every handle is gone, each
/// [`RETRY_EVERY`] apart, before it gives up and says what is lost.
const LAST_CHANCE_TRIES: usize = 20;

/// How often a failing sink is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(250);

/// The sink failed; lines are held until it works again.
struct Failure {
    error: String,
    /// Lines held since the failure began (only grows), for the report
    /// written when the sink works again.
    held: usize,
    retry_at: Instant,
}

/// What the writer took from the shared state in one go.
struct Taken {
    lines: usize,
    refused: usize,
    ticket: u64,
    closed: bool,
}

/// The writer thread's state.
struct Writer<'a, S> {
    sink: S,
    /// The batch being written, or the lines held while the sink fails.
    buf: Vec<u8>,
    /// Lines in `buf`, kept up to date as lines come and go: counting them in
    /// a buffer of up to [`MAX_HELD`] bytes on every line is what made a
    /// writer with a failing sink fall behind for good.
    buf_lines: usize,
    failing: Option<Failure>,
    /// Lines dropped past the hold since the failure began.
    dropped: usize,
    /// Lines refused by a full batch have been warned about.
    warned_refused: bool,
    inner: &'a Inner,
}

impl<'a, S: LogSink> Writer<'a, S> {
    fn new(sink: S, inner: &'a Inner) -> Self {
        Writer {
            sink,
            buf: Vec::with_capacity(MAX_BATCH),
            buf_lines: 0,
            failing: None,
            dropped: 0,
            warned_refused: false,
            inner,
        }
    }

    fn run(mut self) {
        loop {
            let taken = self.take();
            if taken.refused > 0 {
                self.inner.lost.fetch_add(taken.refused, Ordering::SeqCst);
                if !std::mem::replace(&mut self.warned_refused, true) {
                    warn(format_args!(
                        "chatmon: the log writer is {MAX_HELD} bytes behind; dropping new lines until it catches up"
                    ));
                }
            }
            if self.failing.is_none() && !self.buf.is_empty() {
                self.write_taken();
            }
            self.answer(taken.ticket);
            if taken.closed {
                if self.failing.is_some() {
                    self.last_chance();
                }
                return;
            }
            if self
                .failing
                .as_ref()
                .is_some_and(|f| Instant::now() >= f.retry_at)
            {
                self.retry();
            }
        }
    }

    /// Waits for lines, a flush, the close or (while the sink fails) the
    /// retry time, lingers so that more lines share the write, and takes
    /// everything logged so far: into `buf` while writing works, into the
    /// hold (bounded) while it fails.
    fn take(&mut self) -> Taken {
        let inner = self.inner;
        let mut st = inner.lock();
        loop {
            let retry_due = self
                .failing
                .as_ref()
                .map(|f| f.retry_at.saturating_duration_since(Instant::now()));
            if st.lines > 0
                || st.refused > 0
                || st.flush_asked > st.flush_done
                || st.closed
                || retry_due.is_some_and(|d| d.is_zero())
            {
                break;
            }
            st.parked = true;
            st = match retry_due {
                Some(d) => {
                    inner
                        .work
                        .wait_timeout(st, d)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => inner.work.wait(st).unwrap_or_else(|p| p.into_inner()),
            };
        }
        st.parked = false;
        // Linger before taking so that the lines logged meanwhile share the
        // write. The wake-up matters more than the syscall: a writer parked
        // on every line cost a futex call and a context switch per line (a
        // third of the server's CPU per message in a profile of one busy
        // plain client); while the writer lingers, a line is only a copy.
        // Skipped for flushes and at close.
        if st.flush_asked == st.flush_done && !st.closed && st.batch.len() < MAX_BATCH {
            drop(st);
            thread::sleep(WRITE_LINGER);
            st = inner.lock();
        }
        let taken = Taken {
            lines: st.lines,
            refused: std::mem::take(&mut st.refused),
            ticket: st.flush_asked,
            closed: st.closed,
        };
        st.lines = 0;
        if self.failing.is_none() && self.buf.is_empty() {
            // Writing works, so `buf` is empty: swap, no copy.
            std::mem::swap(&mut self.buf, &mut st.batch);
            self.buf_lines = taken.lines;
        } else {
            // Held under the lock, so that `unwritten` never misses a line
            // on its way from the batch to the hold.
            let batch = std::mem::take(&mut st.batch);
            self.hold(&batch);
            self.publish();
            st.batch = batch;
            st.batch.clear();
        }
        taken
    }

    /// Appends whole lines of `batch` to the hold while they fit under the
    /// limit, and counts the rest as dropped.
    fn hold(&mut self, batch: &[u8]) {
        let max_held = self.inner.max_held;
        for line in batch.split_inclusive(|&b| b == b'\n') {
            if self.buf.len() + line.len() > max_held {
                if self.dropped == 0 {
                    warn(format_args!(
                        "chatmon: the log cannot be written and {max_held} bytes are held; dropping new lines until it can"
                    ));
                }
                self.dropped += 1;
            } else {
                self.buf.extend_from_slice(line);
                self.buf_lines += 1;
                if let Some(f) = self.failing.as_mut() {
                    f.held += 1;
                }
            }
        }
    }

    /// Writes what was taken while writing works; on failure, holds the rest.
    fn write_taken(&mut self) {
        let (written, result) = self.sink.append_some(&self.buf);
        match result {
            Ok(()) => self.clear(),
            Err(e) => {
                self.consume(written);
                warn(format_args!(
                    "chatmon: cannot write the log: {e}; holding lines in memory and retrying"
                ));
                if self.buf.len() > self.inner.max_held {
                    // A batch taken whole may exceed the hold: keep its
                    // first lines that fit, as a failing sink does.
                    let all = std::mem::take(&mut self.buf);
                    self.buf_lines = 0;
                    self.failing = Some(Failure {
                        error: e.to_string(),
                        held: 0,
                        retry_at: Instant::now() + RETRY_EVERY,
                    });
                    self.hold(&all);
                } else {
                    self.failing = Some(Failure {
                        error: e.to_string(),
                        held: self.buf_lines,
                        retry_at: Instant::now() + RETRY_EVERY,
                    });
                }
                self.publish();
            }
        }
    }

    /// Tells the flushers up to `ticket` that their lines are written, or
    /// held: waiters must not hang on a broken disk.
    fn answer(&self, ticket: u64) {
        let mut st = self.inner.lock();
        if ticket > st.flush_done {
            st.flush_done = ticket;
            drop(st);
            self.inner.done.notify_all();
        }
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
                        lost: (self.dropped > 0).then_some((self.dropped, self.inner.max_held)),
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
        self.inner.unwritten.store(n, Ordering::SeqCst);
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
    use std::sync::mpsc;

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
    fn a_tap_that_logs_gets_its_own_line_buffer() {
        // The tap runs while the thread's line buffer holds the line being
        // logged: a line it logs must not clobber it.
        let outer = MemorySink::default();
        let inner = MemorySink::default();
        let side = EventLog::with_sink(inner.clone()).expect("spawn");
        let s = side.clone();
        let log = EventLog::with_sink(outer.clone())
            .expect("spawn")
            .with_tap(Arc::new(move |l: &str| {
                s.log(EventKind::Other("Seen".into()), l.trim_end());
            }));
        for i in 0..100 {
            log.log(EventKind::Connection, &format!("line {i}"));
        }
        log.flush();
        side.flush();
        let outer = String::from_utf8(outer.0.lock().expect("lock").clone()).expect("utf8");
        let inner = String::from_utf8(inner.0.lock().expect("lock").clone()).expect("utf8");
        let outer: Vec<&str> = outer.lines().collect();
        let inner: Vec<&str> = inner.lines().collect();
        assert_eq!((outer.len(), inner.len()), (100, 100));
        for (i, (o, s)) in outer.iter().zip(&inner).enumerate() {
            assert!(o.ends_with(&format!(" - line {i}")), "{o}");
            assert!(s.starts_with("Seen: ") && s.ends_with(o), "{s}");
        }
    }

    #[test]
    fn a_long_line_does_not_stay_in_the_thread_buffer() {
        let sink = MemorySink::default();
        let log = EventLog::with_sink(sink.clone()).expect("spawn");
        let long = "x".repeat(64 * 1024);
        log.log(EventKind::MessageReceived, &long);
        log.log(EventKind::MessageReceived, "short");
        let kept = LINE.with(|l| l.borrow().capacity());
        assert!(kept <= MAX_KEPT_LINE, "{kept}");
        log.flush();
        let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(&long) && lines[1].ends_with(" - short"));
    }

    #[test]
    fn an_idle_writer_wakes_for_the_next_line_and_flush() {
        let sink = MemorySink::default();
        let log = EventLog::with_sink(sink.clone()).expect("spawn");
        for round in 0..3 {
            // Long enough for the writer to park between rounds.
            thread::sleep(Duration::from_millis(20));
            log.log(EventKind::Connection, &format!("round {round}"));
            log.flush();
            assert_eq!(log.unwritten(), 0);
            let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf8");
            assert_eq!(text.lines().count(), round + 1, "{text}");
        }
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "logged as Error")]
    fn record_refuses_a_message_under_another_kind() {
        EventLog::null().record(EventKind::Error, &LogMessage::ServerConnected { peer: "p" });
    }
}
