//! Where the log writer's bytes go: [`LogSink`], a trait so that tests can
//! make the disk fail and recover, and its file, memory and null sinks.
//! Knows nothing of lines, only of bytes.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

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

/// A sink that throws lines away, behind [`super::EventLog::null`] (servers
/// that must not log, such as benchmark references).
pub(crate) struct NullSink;

impl LogSink for NullSink {
    fn append(&mut self, _bytes: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that keeps lines in memory, for tests (the integration tests use it
/// too, so it is public).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sink_keeps_every_byte_in_order() {
        let mut m = MemorySink::default();
        m.append(b"one\n").expect("append");
        assert_eq!(m.append_some(b"two\n").0, 4);
        assert_eq!(*m.0.lock().expect("lock"), b"one\ntwo\n");
    }

    #[test]
    fn file_sink_appends_whole_writes() {
        let path =
            std::env::temp_dir().join(format!("chatmon-sink-test-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        for part in [&b"a\n"[..], b"b\n"] {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .expect("open");
            let (n, r) = f.append_some(part);
            assert_eq!(n, 2);
            assert!(r.is_ok(), "{r:?}");
        }
        assert_eq!(std::fs::read(&path).expect("read"), b"a\nb\n");
        let _ = std::fs::remove_file(&path);
    }
}
