//! A private `nats-server` for the cluster tests: found on PATH or in
//! /usr/sbin, started on a free loopback port (never 4222) with JetStream on
//! and its store in a temp dir, stopped by its PID when dropped.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `nats-server` on PATH, else Debian's /usr/sbin one.
pub fn find_nats_server() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("nats-server"))
            .find(|f| f.is_file())
    });
    on_path.or_else(|| {
        let f = PathBuf::from("/usr/sbin/nats-server");
        f.is_file().then_some(f)
    })
}

/// A free loopback port other than NATS's default, which a developer's own
/// NATS may be using.
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        if port != 4222 {
            return port;
        }
    }
}

/// A running private NATS server.
pub struct Nats {
    child: Option<Child>,
    bin: PathBuf,
    pub port: u16,
    dir: tempfile::TempDir,
    /// Extra arguments (e.g. `--auth TOKEN`), kept for restarts.
    args: Vec<String>,
}

impl Nats {
    /// A server, or `None` (with a note) when `nats-server` is not
    /// installed. Under CI a missing server fails the test instead.
    pub fn start() -> Option<Nats> {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Option<Nats> {
        let Some(bin) = find_nats_server() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "nats-server not found on PATH or in /usr/sbin: the cluster tests need it \
                     (apt-get install nats-server)"
                );
            }
            eprintln!("note: nats-server not found on PATH or in /usr/sbin; cluster test skipped");
            return None;
        };
        let mut n = Nats {
            child: None,
            bin,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        n.spawn();
        Some(n)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .expect("nats log");
        let child = Command::new(&self.bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path().join("store"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < until,
                "nats-server did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server by its PID (SIGTERM, then SIGKILL if it lingers).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: kill(2) on the PID of our own child, not yet reaped.
            // SIGCONT first: a frozen server would not act on SIGTERM.
            unsafe {
                libc::kill(pid, libc::SIGCONT);
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts it again (after [`Nats::stop`]) on the same port and store.
    pub fn resume(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
    }

    /// Sends `sig` to the server (SIGSTOP freezes it: a link that takes
    /// nothing, without closing).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok()) {
            // SAFETY: kill(2) on the PID of our own child, not yet reaped.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
