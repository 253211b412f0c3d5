//! The live panel's I/O, done by the run loop: writing an export file and
//! leaving the reset marker in the event log.

use std::io::Write;
use std::path::Path;

use crate::eventlog::{EventKind, EventLog, LogMessage};

use super::app::App;

/// Writes an export next to the event log, under a name no earlier export
/// has (the time to the second, then a counter); returns the path.
pub(super) fn export(dir: &Path, text: &str) -> Result<String, String> {
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    for n in 0..100u32 {
        let name = if n == 0 {
            format!("chatmon-latency-{stamp}.jsonl")
        } else {
            format!("chatmon-latency-{stamp}-{n}.jsonl")
        };
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                return f
                    .write_all(text.as_bytes())
                    .map(|()| path.display().to_string())
                    .map_err(|e| format!("{}: {e}", path.display()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Err(format!("too many exports this second in {}", dir.display()))
}

/// The marker a reset leaves in the log, so that figures read from the log
/// later can tell where the panel started again.
pub(super) fn log_reset(log: &EventLog, app: &App) {
    log.record(
        EventKind::Probe,
        &LogMessage::ClientFiguresReset {
            name: app.status().name(),
            server: app.status().server(),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_never_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = export(dir.path(), "{\"a\":1}\n").expect("first");
        let b = export(dir.path(), "{\"b\":2}\n").expect("second");
        assert_ne!(a, b);
        assert_eq!(std::fs::read_to_string(&a).expect("read"), "{\"a\":1}\n");
        assert!(a.contains("chatmon-latency-") && a.ends_with(".jsonl"));
        assert!(export(&dir.path().join("missing"), "x").is_err());
    }
}
