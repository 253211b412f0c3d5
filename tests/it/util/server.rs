//! The in-process server of most tests: a real `Server` on 127.0.0.1:0,
//! logging to a file in its own temp dir, stopped when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chatmon::eventlog::EventLog;
use chatmon::server::{Server, ServerConfig};

/// A server on 127.0.0.1:0 logging to a file in its own temp dir.
pub struct TestServer {
    /// `None` once stopped, so that a test can stop it and still read the log.
    pub server: Option<Server>,
    pub addr: SocketAddr,
    pub log_path: PathBuf,
    pub log: EventLog,
    /// Held so that the log file lives as long as the server.
    _dir: tempfile::TempDir,
    /// Held while the server runs: a storm test waits for it.
    _share: super::Share,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let share = super::Share::take();
        let dir = tempfile::tempdir().expect("tempdir");
        let log_path = dir.path().join("log.txt");
        let log = EventLog::open(&log_path).expect("open log");
        let mut cfg = ServerConfig {
            bind: "127.0.0.1:0".parse().expect("addr"),
            stats_interval: None,
            ..ServerConfig::default()
        };
        tweak(&mut cfg);
        let server = Server::start(cfg, log.clone()).expect("server starts");
        let addr = server.local_addr();
        TestServer {
            server: Some(server),
            addr,
            log_path,
            log,
            _dir: dir,
            _share: share,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    /// Stops the server (it logs `Server Stop` and flushes).
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_secs(2));
        }
    }

    /// The log's lines so far (after a flush).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.flush();
        std::fs::read_to_string(&self.log_path)
            .expect("read log")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits (bounded) until some log line satisfies `pred`.
    pub fn wait_log(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let mut last = Vec::new();
        super::poll(super::WAIT, || {
            last = self.log_lines();
            last.iter().find(|l| pred(l)).cloned()
        })
        .unwrap_or_else(|| panic!("no log line {what}: {last:#?}"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
