//! The server `chatmon bench` starts when given no `--server`: a real chatmon
//! server with its full logging, on an ephemeral loopback port. Starting and
//! stopping it is all this file knows; the bench talks to it over TCP as to
//! any other server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{BenchConfig, BenchError, io_err};
use crate::eventlog::EventLog;
use crate::server::{Server, ServerConfig};

/// Client slots beyond the largest row, as headroom: the bench measures the
/// server, not its client limit (the previous row's connections may still be
/// closing when the next row connects).
const SPARE_SLOTS: usize = 16;
/// How often the in-process server logs its `Stats` line (the log is then
/// worth a `chatmon report`).
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// How long the server may take to close its sessions at the end.
const STOP_WAIT: Duration = Duration::from_secs(1);

pub(crate) struct LocalServer {
    server: Server,
    addr: SocketAddr,
    /// Flushed at the end, so a kept `--server-log` is complete.
    log: EventLog,
    /// Deleted at the end: the user asked for no log.
    temp_log: Option<PathBuf>,
}

impl LocalServer {
    pub(crate) fn start(
        config: &BenchConfig,
        max_clients: usize,
    ) -> Result<LocalServer, BenchError> {
        let (path, temp) = match &config.server_log {
            Some(p) => (p.clone(), false),
            None => (
                std::env::temp_dir().join(format!("chatmon-bench-{}.log", std::process::id())),
                true,
            ),
        };
        let log = EventLog::open(&path).map_err(io_err("cannot open the server's log"))?;
        let cfg = ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_clients: max_clients + SPARE_SLOTS,
            stats_interval: Some(STATS_INTERVAL),
            ..ServerConfig::default()
        };
        let server = Server::start(cfg, log.clone()).map_err(io_err("cannot start the server"))?;
        let addr = server.local_addr();
        Ok(LocalServer {
            server,
            addr,
            log,
            temp_log: temp.then_some(path),
        })
    }

    /// The loopback address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn stop(self) {
        self.server.shutdown(STOP_WAIT);
        self.log.flush();
        if let Some(p) = self.temp_log {
            // A temporary file someone else removed is no failure of the bench.
            let _ = std::fs::remove_file(p);
        }
    }
}
