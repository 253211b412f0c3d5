//! The log panel's state: the live log merged from the tailed file and the
//! server's event stream, kept once per line and in time order, with the
//! panel's scroll and its note. It knows nothing of keys or drawing.

use std::collections::VecDeque;

use chrono::NaiveDateTime;

use super::{MAX_SCROLL, scrolled};
use crate::eventlog;

/// Lines of the live log kept.
pub(crate) const LOG_LINES: usize = 500;

/// Where the live log's lines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// The tailed file.
    File,
    /// The server's event stream.
    Server,
}

impl LogSource {
    fn bit(self) -> u8 {
        match self {
            LogSource::File => 1,
            LogSource::Server => 2,
        }
    }
}

/// The sources a live-log line came from: a line the server both streams
/// and writes to the tailed file arrives from each, and is kept once with
/// both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Sources(u8);

impl Sources {
    pub(crate) fn of(s: LogSource) -> Sources {
        Sources(s.bit())
    }

    pub(crate) fn has(self, s: LogSource) -> bool {
        self.0 & s.bit() != 0
    }

    pub(crate) fn insert(&mut self, s: LogSource) {
        self.0 |= s.bit();
    }

    /// Whether `s` is the only source.
    pub(crate) fn only(self, s: LogSource) -> bool {
        self.0 == s.bit()
    }
}

/// Which sources the live log shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogView {
    File,
    Server,
    Both,
}

impl LogView {
    pub(crate) fn label(self) -> &'static str {
        match self {
            LogView::File => "log file",
            LogView::Server => "server stream",
            LogView::Both => "file + server",
        }
    }

    pub(crate) fn next(self) -> LogView {
        match self {
            LogView::Both => LogView::File,
            LogView::File => LogView::Server,
            LogView::Server => LogView::Both,
        }
    }

    pub(crate) fn shows(self, s: LogSource) -> bool {
        matches!(
            (self, s),
            (LogView::Both, _)
                | (LogView::File, LogSource::File)
                | (LogView::Server, LogSource::Server)
        )
    }

    /// Whether a line from `sources` is shown: it is when any of them is.
    pub(crate) fn shows_any(self, sources: Sources) -> bool {
        [LogSource::File, LogSource::Server]
            .into_iter()
            .any(|s| sources.has(s) && self.shows(s))
    }
}

/// One line of the live log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogLine {
    sources: Sources,
    /// The event's time, for merging the sources in order; `None` for a line
    /// that is not an event line (it stays where it arrived).
    time: Option<NaiveDateTime>,
    text: String,
    /// Hash of `text`, so that looking for a duplicate in the whole buffer
    /// compares integers, not strings that share a long prefix.
    hash: u64,
}

impl LogLine {
    pub(crate) fn sources(&self) -> Sources {
        self.sources
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// The log panel.
#[derive(Debug)]
pub(crate) struct LogPanel {
    /// In time order, at most [`LOG_LINES`].
    lines: VecDeque<LogLine>,
    /// Rows scrolled up from the bottom (0: follow the newest).
    scroll: usize,
    /// Why the panel may look stale (the file was truncated, the follower
    /// stopped); shown above the lines.
    note: Option<String>,
    /// The tailed file, for the title.
    tail_path: String,
}

impl LogPanel {
    pub(crate) fn new(tail_path: &str) -> LogPanel {
        LogPanel {
            lines: VecDeque::new(),
            scroll: 0,
            note: None,
            tail_path: tail_path.to_string(),
        }
    }

    #[cfg(test)]
    fn lines(&self) -> &VecDeque<LogLine> {
        &self.lines
    }

    pub(crate) fn scroll(&self) -> usize {
        self.scroll
    }

    pub(crate) fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    pub(crate) fn set_note(&mut self, note: String) {
        self.note = Some(note);
    }

    pub(crate) fn tail_path(&self) -> &str {
        &self.tail_path
    }

    pub(crate) fn follow(&mut self) {
        self.scroll = 0;
    }

    /// Scrolls up by `by` rows (down when negative).
    pub(crate) fn scroll_by(&mut self, by: isize) {
        self.scroll = scrolled(self.scroll, by);
    }

    /// Clamps the scroll to the rows that exist (known to the render only).
    pub(crate) fn clamp_scroll(&mut self, max: usize) {
        self.scroll = self.scroll.min(max);
    }

    /// Adds a line, keeping lines in time order across sources.
    pub(crate) fn push(&mut self, source: LogSource, text: String) {
        // With the server writing the file we tail, its lines come twice
        // (stream first, file a poll later): keep one line that has both
        // sources, so that each view still shows it. The whole buffer is
        // searched (by hash, newest first), since at high rates the copy
        // arrives hundreds of lines later.
        let hash = text_hash(&text);
        if let Some(l) = self
            .lines
            .iter_mut()
            .rev()
            .find(|l| l.hash == hash && !l.sources.has(source) && l.text == text)
        {
            l.sources.insert(source);
            return;
        }
        let time = eventlog::parse_line(&text).ok().map(|e| e.time);
        let line = LogLine {
            sources: Sources::of(source),
            time,
            text,
            hash,
        };
        // Lines arrive nearly in order; walk back from the end to the place.
        let mut at = self.lines.len();
        if let Some(t) = line.time {
            while at > 0 {
                match self.lines[at - 1].time {
                    Some(prev) if prev > t => at -= 1,
                    _ => break,
                }
            }
        }
        self.lines.insert(at, line);
        while self.lines.len() > LOG_LINES {
            self.lines.pop_front();
        }
        if self.scroll > 0 {
            self.scroll = self.scroll.saturating_add(1).min(MAX_SCROLL);
        }
    }

    /// The lines `view` shows, oldest first.
    pub(crate) fn visible(&self, view: LogView) -> impl DoubleEndedIterator<Item = &LogLine> {
        self.lines.iter().filter(move |l| view.shows_any(l.sources))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_line(i: usize) -> String {
        format!(
            "Message Sent: 2026-01-01 10:{:02}:{:02}.{:06} - #{i}",
            i / 60_000 % 60,
            i / 1000 % 60,
            i % 1000
        )
    }

    #[test]
    fn log_lines_merge_in_time_order() {
        let mut log = LogPanel::new("log.txt");
        log.push(
            LogSource::File,
            "Connection: 2026-01-01 10:00:02.000000 - b".into(),
        );
        log.push(
            LogSource::Server,
            "Connection: 2026-01-01 10:00:01.000000 - a".into(),
        );
        log.push(LogSource::File, "not a log line".into());
        let texts: Vec<_> = log.lines().iter().map(|l| l.text()).collect();
        assert!(texts[0].ends_with("- a"));
        assert!(texts[1].ends_with("- b"));
        assert_eq!(log.visible(LogView::Server).count(), 1);
    }

    #[test]
    fn a_line_from_both_sources_is_kept_once_and_shown_in_every_view() {
        let mut log = LogPanel::new("log.txt");
        let line = event_line(1);
        // The stream is first; the tailed file brings the same line later.
        log.push(LogSource::Server, line.clone());
        log.push(LogSource::File, line.clone());
        assert_eq!(log.lines().len(), 1);
        let l = &log.lines()[0];
        assert!(l.sources().has(LogSource::File) && l.sources().has(LogSource::Server));
        for view in [LogView::File, LogView::Server, LogView::Both] {
            assert_eq!(log.visible(view).count(), 1, "{view:?}");
        }
        // The same text again from a source it already has is a new line
        // (a log may repeat itself).
        log.push(LogSource::File, line);
        assert_eq!(log.lines().len(), 2);
        assert_eq!(log.visible(LogView::Server).count(), 1);
    }

    #[test]
    fn duplicates_are_found_anywhere_in_the_buffer() {
        let mut log = LogPanel::new("log.txt");
        // A poll of the file later than 400 streamed lines: far more than
        // the last few lines apart.
        for i in 0..400 {
            log.push(LogSource::Server, event_line(i));
        }
        for i in 0..400 {
            log.push(LogSource::File, event_line(i));
        }
        assert_eq!(log.lines().len(), 400);
        assert!(
            log.lines()
                .iter()
                .all(|l| l.sources().has(LogSource::File) && l.sources().has(LogSource::Server))
        );
        assert_eq!(log.visible(LogView::File).count(), 400);
    }
}
