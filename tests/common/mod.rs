//! Helpers shared by the integration tests: a real server on an ephemeral
//! loopback port, and blocking plain and chat clients with bounded waits.
#![allow(dead_code)]

pub mod pty;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chatmon::eventlog::{self, EventLog};
use chatmon::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};
use chatmon::server::{Server, ServerConfig};

/// Every blocking read in the tests gives up after this long.
pub const WAIT: Duration = Duration::from_secs(5);

/// A server on 127.0.0.1:0 logging to a file in its own temp dir.
pub struct TestServer {
    pub server: Option<Server>,
    pub addr: SocketAddr,
    pub log_path: PathBuf,
    pub log: EventLog,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
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
            dir,
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
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.log_lines().into_iter().find(|l| pred(l)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no log line {what}: {:#?}",
                self.log_lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Opens a connection with read and write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s.set_write_timeout(Some(WAIT)).expect("timeout");
    s
}

/// A line-oriented plain client.
pub struct Plain {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Plain {
    pub fn new(addr: SocketAddr) -> Plain {
        let s = connect(addr);
        Plain {
            w: s.try_clone().expect("clone"),
            r: BufReader::new(s),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write");
    }

    /// Reads one line, without its newline.
    pub fn line(&mut self) -> String {
        let mut s = String::new();
        self.r.read_line(&mut s).expect("read line");
        s.trim_end_matches('\n').to_string()
    }
}

/// A chat-protocol client.
pub struct Chat {
    pub plain: Plain,
    pub name: String,
    pub users: Vec<String>,
}

impl Chat {
    /// Connects, says hello, waits for the welcome.
    pub fn join(addr: SocketAddr, name: &str) -> Chat {
        Self::join_with(addr, name, None, false)
    }

    pub fn join_with(addr: SocketAddr, name: &str, token: Option<&str>, subscribe: bool) -> Chat {
        let mut plain = Plain::new(addr);
        plain.send(
            protocol::encode(&ClientMsg::Hello {
                v: PROTOCOL_VERSION,
                name: name.into(),
                token: token.map(str::to_string),
                subscribe,
            })
            .as_bytes(),
        );
        let mut c = Chat {
            plain,
            name: String::new(),
            users: Vec::new(),
        };
        match c.recv() {
            ServerMsg::Welcome { name, users, .. } => {
                c.name = name;
                c.users = users;
            }
            other => panic!("expected welcome, got {other:?}"),
        }
        c
    }

    pub fn send(&mut self, msg: &ClientMsg) {
        self.plain.send(protocol::encode(msg).as_bytes());
    }

    pub fn say(&mut self, id: u64, text: &str) {
        self.send(&ClientMsg::Msg {
            id,
            text: text.into(),
        });
    }

    pub fn recv(&mut self) -> ServerMsg {
        let line = self.plain.line();
        protocol::decode(line.as_bytes()).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"))
    }

    /// Receives until a message matches (skipping others), bounded.
    pub fn recv_until(&mut self, pred: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        for _ in 0..10_000 {
            let m = self.recv();
            if pred(&m) {
                return m;
            }
        }
        panic!("no matching message");
    }
}

/// Parses every line of a log with the one parser; panics on a bad line.
pub fn assert_log_parses(lines: &[String]) {
    for (i, l) in lines.iter().enumerate() {
        if let Err(e) = eventlog::parse_line(l) {
            panic!("log line {} does not parse ({e}): {l:?}", i + 1);
        }
    }
}

/// Waits (bounded by [`WAIT`] × 2) until `cond` holds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT * 2;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sets SO_LINGER to zero, so that dropping the socket sends RST: a peer
/// that vanishes mid-conversation.
pub fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads one linger struct from a valid pointer.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}
