//! Follows a file as other processes append to it, like `tail -F`: starts
//! from the last lines without reading a large file whole, notices truncation
//! and rotation (a new file under the same name), and keeps nothing but the
//! bytes of one unfinished line.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bytes in a mebibyte, for saying how much was skipped.
const MIB: f64 = 1024.0 * 1024.0;
/// How far back from the end the first read starts.
const START_WINDOW: u64 = 64 * 1024;
/// Most bytes read in one poll, so that a burst of appends cannot stall the UI.
const MAX_READ: usize = 1024 * 1024;
/// How far behind the end of the file we may fall before jumping to its last
/// [`START_WINDOW`]: a log growing faster than we read would otherwise leave
/// the panel ever further behind, showing old lines as live ones.
const MAX_BEHIND: u64 = 8 * 1024 * 1024;
/// An unfinished line longer than this is cut, so a writer that never ends
/// its line cannot grow our memory.
const MAX_PARTIAL: usize = 64 * 1024;

/// What one poll found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TailUpdate {
    /// Complete new lines, oldest first (newline and `\r` removed, invalid
    /// UTF-8 replaced).
    pub lines: Vec<String>,
    /// Set when the file was truncated or replaced since the last poll.
    pub reset: Option<String>,
}

/// A followed file. Call [`Tailer::poll`] periodically.
#[derive(Debug)]
pub struct Tailer {
    /// Opened again by name whenever the file under it changes.
    path: PathBuf,
    /// `None` until the file exists, and again after it is removed.
    file: Option<File>,
    /// (device, inode) of the open file, to notice rotation.
    id: Option<(u64, u64)>,
    /// Offset of the next byte to read; past the file's length means truncated.
    pos: u64,
    /// The bytes of a line whose newline has not been written yet.
    partial: Vec<u8>,
    /// Before the first poll: start from the last lines, not the start.
    first: bool,
    /// Lines wanted from the existing content on the first poll.
    initial_lines: usize,
    /// The last poll read [`MAX_READ`] bytes: more may be waiting.
    more: bool,
}

impl Tailer {
    pub fn new(path: impl Into<PathBuf>, initial_lines: usize) -> Self {
        Tailer {
            path: path.into(),
            file: None,
            id: None,
            pos: 0,
            partial: Vec::new(),
            first: true,
            initial_lines,
            more: false,
        }
    }

    /// Whether the last poll stopped at its read limit, so that the next
    /// one should come at once rather than after [`POLL_EVERY`].
    pub fn more_waiting(&self) -> bool {
        self.more
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads whatever was appended since the last call. A missing file is
    /// not an error (it may appear later); other I/O errors are returned.
    pub fn poll(&mut self) -> io::Result<TailUpdate> {
        self.more = false;
        let mut update = TailUpdate::default();
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.file.take().is_some() {
                    update.reset = Some("file removed; waiting for it to come back".into());
                    self.id = None;
                    self.partial.clear();
                }
                return Ok(update);
            }
            Err(e) => return Err(e),
        };
        let id = (meta.dev(), meta.ino());
        if self.id != Some(id) {
            if self.id.is_some() {
                update.reset = Some("file replaced (rotated); following the new one".into());
            }
            self.file = Some(File::open(&self.path)?);
            self.id = Some(id);
            self.partial.clear();
            self.pos = 0;
            if self.first {
                self.pos = meta.len().saturating_sub(START_WINDOW);
            }
        } else if meta.len() < self.pos {
            update.reset = Some("file truncated; reading from its start".into());
            self.pos = 0;
            self.partial.clear();
        }
        let mut skip_first_partial = self.first && self.pos > 0;
        if !self.first && meta.len().saturating_sub(self.pos) > MAX_BEHIND {
            // Too far behind to catch up line by line: go on from near the
            // end, as at the start, and say what was skipped.
            let to = meta.len() - START_WINDOW;
            let skipped = to - self.pos;
            let note = format!("skipped {:.1} MB to keep up", skipped as f64 / MIB);
            // A rotation noticed in the same poll is still worth saying.
            update.reset = Some(match update.reset.take() {
                Some(r) => format!("{r}; {note}"),
                None => note,
            });
            self.pos = to;
            // The unfinished line we held will never be completed.
            self.partial.clear();
            skip_first_partial = true;
        }
        let first = std::mem::replace(&mut self.first, false);
        let Some(file) = self.file.as_mut() else {
            return Ok(update);
        };
        if meta.len() == self.pos {
            return Ok(update);
        }
        file.seek(SeekFrom::Start(self.pos))?;
        let want = (meta.len() - self.pos).min(MAX_READ as u64) as usize;
        let mut buf = vec![0u8; want];
        let n = read_up_to(file, &mut buf)?;
        buf.truncate(n);
        self.pos += n as u64;
        self.more = n == MAX_READ;
        let mut start = 0;
        if skip_first_partial {
            // We started mid-file: the bytes before the first newline are the
            // tail of a line we never saw whole.
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => start = i + 1,
                None => {
                    self.partial.clear();
                    return Ok(update);
                }
            }
        }
        for chunk in buf[start..].split_inclusive(|&b| b == b'\n') {
            if chunk.last() == Some(&b'\n') {
                self.partial.extend_from_slice(&chunk[..chunk.len() - 1]);
                if self.partial.last() == Some(&b'\r') {
                    self.partial.pop();
                }
                update
                    .lines
                    .push(String::from_utf8_lossy(&self.partial).into_owned());
                self.partial.clear();
            } else {
                let room = MAX_PARTIAL.saturating_sub(self.partial.len());
                self.partial
                    .extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
        }
        if first && update.lines.len() > self.initial_lines {
            let cut = update.lines.len() - self.initial_lines;
            update.lines.drain(..cut);
        }
        Ok(update)
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Polling period of the background follower.
pub const POLL_EVERY: Duration = Duration::from_millis(200);

/// Why the follower could not read the file; said once per distinct error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {path}: {error}")]
pub struct TailError {
    pub path: String,
    /// The I/O error's text (an `io::Error` is neither `Clone` nor `Eq`).
    pub error: String,
}

/// Follows `path` on a background thread, sending each update that holds
/// something to `tx`, until `tx` is closed.
pub fn spawn(
    path: PathBuf,
    initial_lines: usize,
    tx: tokio::sync::mpsc::UnboundedSender<Result<TailUpdate, TailError>>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("chatmon-tail".into())
        .spawn(move || {
            let mut t = Tailer::new(path, initial_lines);
            let mut last_err: Option<TailError> = None;
            loop {
                let msg = match t.poll() {
                    Ok(u) if u.lines.is_empty() && u.reset.is_none() => None,
                    Ok(u) => {
                        last_err = None;
                        Some(Ok(u))
                    }
                    Err(e) => {
                        let s = TailError {
                            path: t.path().display().to_string(),
                            error: e.to_string(),
                        };
                        // Say it once, not five times a second.
                        if last_err.as_ref() == Some(&s) {
                            None
                        } else {
                            last_err = Some(s.clone());
                            Some(Err(s))
                        }
                    }
                };
                if let Some(m) = msg
                    && tx.send(m).is_err()
                {
                    return;
                }
                if tx.is_closed() {
                    return;
                }
                // A poll that stopped at its read limit is followed at once,
                // so that a fast-growing log does not leave us behind.
                if !t.more_waiting() {
                    std::thread::sleep(POLL_EVERY);
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(p: &Path, s: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("open");
        f.write_all(s.as_bytes()).expect("write");
    }

    #[test]
    fn follows_appends_truncation_and_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log.txt");
        let mut t = Tailer::new(&p, 2);
        assert_eq!(t.poll().expect("poll"), TailUpdate::default());
        append(&p, "a\nb\nc\npart");
        assert_eq!(t.poll().expect("poll").lines, vec!["b", "c"]);
        append(&p, "ial\r\nd\n");
        assert_eq!(t.poll().expect("poll").lines, vec!["partial", "d"]);
        // Truncate in place.
        std::fs::write(&p, "x\n").expect("truncate");
        let u = t.poll().expect("poll");
        assert!(u.reset.expect("reset").contains("truncated"));
        assert_eq!(u.lines, vec!["x"]);
        // Rotate: rename away, create a new file.
        std::fs::rename(&p, dir.path().join("log.1")).expect("rename");
        append(&p, "new\n");
        let u = t.poll().expect("poll");
        assert!(u.reset.expect("reset").contains("rotated"));
        assert_eq!(u.lines, vec!["new"]);
    }

    #[test]
    fn starts_near_the_end_of_a_big_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("big.txt");
        let mut s = String::new();
        for i in 0..100_000 {
            s.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&p, &s).expect("write");
        let mut t = Tailer::new(&p, 3);
        let u = t.poll().expect("poll");
        assert_eq!(u.lines, vec!["line 99997", "line 99998", "line 99999"]);
    }

    fn numbered(from: usize, to: usize) -> String {
        let mut s = String::new();
        for i in from..to {
            s.push_str(&format!("line {i:08}\n"));
        }
        s
    }

    #[test]
    fn reads_a_burst_in_several_polls_without_loss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log.txt");
        append(&p, "start\n");
        let mut t = Tailer::new(&p, 10);
        assert_eq!(t.poll().expect("poll").lines, vec!["start"]);
        // 3.5 MiB: more than one read, less than the jump.
        let n = 3 * 1024 * 1024 / 14 + 1024 * 1024 / 28;
        append(&p, &numbered(0, n));
        let mut got = Vec::new();
        let mut polls = 0;
        loop {
            got.extend(t.poll().expect("poll").lines);
            polls += 1;
            if !t.more_waiting() {
                break;
            }
        }
        assert!(polls >= 4, "{polls} polls");
        assert_eq!(got.len(), n);
        assert!(
            got.iter()
                .enumerate()
                .all(|(i, l)| *l == format!("line {i:08}"))
        );
        assert_eq!(t.poll().expect("poll"), TailUpdate::default());
        assert!(!t.more_waiting());
    }

    #[test]
    fn jumps_ahead_when_far_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log.txt");
        append(&p, "start\npartial");
        let mut t = Tailer::new(&p, 10);
        assert_eq!(t.poll().expect("poll").lines, vec!["start"]);
        // 20 MiB at once: far more than MAX_BEHIND.
        let n = 20 * 1024 * 1024 / 14;
        append(&p, &numbered(0, n));
        let u = t.poll().expect("poll");
        let reset = u.reset.expect("reset");
        assert!(
            reset.starts_with("skipped ") && reset.ends_with(" MB to keep up"),
            "{reset}"
        );
        let mb: f64 = reset["skipped ".len()..reset.len() - " MB to keep up".len()]
            .parse()
            .expect("MB");
        assert!((19.0..21.0).contains(&mb), "{reset}");
        // Whole lines only, from near the end, in order, up to the last one.
        assert!(!u.lines.is_empty());
        let first: usize = u.lines[0]["line ".len()..].parse().expect("number");
        assert!(first > n - START_WINDOW as usize / 14 - 2, "{}", u.lines[0]);
        for (k, l) in u.lines.iter().enumerate() {
            assert_eq!(*l, format!("line {:08}", first + k));
        }
        assert_eq!(
            u.lines.last().map(String::as_str),
            Some(format!("line {:08}", n - 1).as_str())
        );
        assert!(!t.more_waiting());
        // And it follows on from there.
        append(&p, "next\n");
        assert_eq!(t.poll().expect("poll").lines, vec!["next"]);
    }
}
