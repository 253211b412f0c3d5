//! Faults against the real binary (issue 4): a log that cannot be opened, a
//! disk that is full, descriptor exhaustion (EMFILE) in the accept loop, and
//! SIGTERM while clients are sending.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatmon::eventlog::{self, EventKind};
use chatmon::protocol::{self, ClientMsg, PROTOCOL_VERSION, ServerMsg};

/// `chatmon serve` on an ephemeral loopback port, with its stderr collected
/// by a thread. Killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Serve {
    fn start(log: &Path, nofile: Option<u64>) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatmon"));
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--stats-interval", "0"])
            .arg("--log")
            .arg(log)
            .env_remove("CHATMON_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(n) = nofile {
            // SAFETY: setrlimit is async-signal-safe, and the closure touches
            // nothing but its own stack.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().expect("spawn chatmon serve");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        // Lines before the banner (a disk error, a warning) are kept too.
        let mut early = String::new();
        let mut banner = String::new();
        for _ in 0..20 {
            banner.clear();
            if err.read_line(&mut banner).expect("stderr") == 0 {
                break;
            }
            early.push_str(&banner);
            if banner.contains("listening on") {
                break;
            }
        }
        let stderr = Arc::new(Mutex::new(early));
        let s = stderr.clone();
        std::thread::spawn(move || {
            let mut rest = String::new();
            while err.read_line(&mut rest).unwrap_or(0) > 0 {
                s.lock().expect("lock").push_str(&rest);
                rest.clear();
            }
        });
        let addr = banner
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("no address in {banner:?}")
            });
        Serve {
            child,
            addr,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    fn sigterm(&mut self) -> ExitStatus {
        // SAFETY: kill with the pid of our own child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

fn ask(s: &mut TcpStream, text: &str) -> String {
    s.write_all(format!("{text}\n").as_bytes()).expect("send");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut l = String::new();
    r.read_line(&mut l).expect("reply");
    l
}

#[test]
fn unopenable_log_is_a_clear_startup_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        dir.path().join("no/such/dir/log.txt"),
        dir.path().to_path_buf(), // a directory
    ];
    for path in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_chatmon"))
            .args(["serve", "--bind", "127.0.0.1:0", "--log"])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert!(!out.status.success(), "{path:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("cannot open log file {}", path.display())),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn full_disk_is_reported_and_the_server_keeps_serving() {
    let mut srv = Serve::start(Path::new("/dev/full"), None);
    let mut c = connect(srv.addr);
    for i in 0..5 {
        assert_eq!(
            ask(&mut c, &format!("m{i}")),
            format!("Server received: m{i}\n")
        );
    }
    wait_for("for the stderr report", 5, || {
        srv.stderr().contains("cannot write the log")
    });
    let err = srv.stderr();
    assert_eq!(err.matches("cannot write the log").count(), 1, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    drop(c);
    let st = srv.sigterm();
    assert!(st.success(), "{st:?}");
    // And at exit it says the log is incomplete, instead of nothing.
    wait_for("for the exit report", 5, || {
        srv.stderr()
            .contains("lines could not be written to /dev/full")
    });
}

#[test]
fn emfile_never_kills_the_accept_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.txt");
    let mut srv = Serve::start(&log, Some(48));
    let addr = srv.addr;
    // More clients than descriptors: the first ones are served, the rest
    // wait in the accept queue while accept fails with EMFILE.
    let mut served = Vec::new();
    let mut waiting = Vec::new();
    for i in 0..60 {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(format!("ping {i}\n").as_bytes()).expect("send");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(n) if n > 0 => {
                assert_eq!(&buf[..n], format!("Server received: ping {i}\n").as_bytes());
                served.push(s);
            }
            _ => waiting.push((i, s)),
        }
        if waiting.len() >= 3 {
            break;
        }
    }
    assert!(served.len() >= 20, "only {} served", served.len());
    assert!(!waiting.is_empty(), "never ran out of descriptors");
    let accept_errors = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("Error: ") && l.contains("cannot accept connections"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    wait_for("for the accept error", 5, || !accept_errors().is_empty());
    // The accept loop keeps retrying with backoff, but says so once.
    std::thread::sleep(Duration::from_millis(1200));
    let errs = accept_errors();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].contains("Too many open files"), "{}", errs[0]);
    // Clients leave: the waiting ones are accepted and answered.
    drop(served);
    for (i, s) in &mut waiting {
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).expect("answered after recovery");
        assert_eq!(&buf[..n], format!("Server received: ping {i}\n").as_bytes());
    }
    let mut late = connect(addr);
    assert_eq!(ask(&mut late, "after"), "Server received: after\n");
    assert!(accept_errors().len() <= 2, "{:#?}", accept_errors());
    drop((late, waiting));
    assert!(srv.sigterm().success());
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.lines().all(|l| eventlog::parse_line(l).is_ok()));
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.starts_with("Server Stop: "))
    );
}

/// One chat client sending as fast as its replies come back; returns the
/// texts of the replies it received.
fn chat_load(addr: SocketAddr, n: usize) -> Vec<String> {
    let s = connect(addr);
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let hello = protocol::encode(&ClientMsg::Hello {
        v: PROTOCOL_VERSION,
        name: format!("load{n}"),
        token: None,
        subscribe: false,
    });
    if w.write_all(hello.as_bytes()).is_err() {
        return Vec::new();
    }
    let mut got = Vec::new();
    let mut line = String::new();
    for id in 0..100_000u64 {
        let msg = protocol::encode(&ClientMsg::Msg {
            id,
            text: format!("load-{n}-{id}"),
        });
        if w.write_all(msg.as_bytes()).is_err() {
            break;
        }
        // Read until our reply (relays from the others come in between).
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return got,
                Ok(_) => {}
            }
            match protocol::decode::<ServerMsg>(line.trim_end().as_bytes()) {
                Ok(ServerMsg::Reply { text, .. }) => {
                    got.push(text);
                    break;
                }
                Ok(ServerMsg::Shutdown { .. }) | Err(_) => return got,
                Ok(_) => {}
            }
        }
    }
    got
}

/// One plain client doing the same.
fn plain_load(addr: SocketAddr, n: usize) -> Vec<String> {
    let s = connect(addr);
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut got = Vec::new();
    let mut line = String::new();
    for id in 0..100_000u64 {
        if w.write_all(format!("plain-{n}-{id}\n").as_bytes()).is_err() {
            break;
        }
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        match line.trim_end().strip_prefix("Server received: ") {
            Some(_) => got.push(line.trim_end().to_string()),
            None => break, // the goodbye
        }
    }
    got
}

#[test]
fn sigterm_under_load_loses_no_reply_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.txt");
    let mut srv = Serve::start(&log, None);
    let addr = srv.addr;
    let mut workers = Vec::new();
    for n in 0..6 {
        workers.push(std::thread::spawn(move || {
            if n % 2 == 0 {
                chat_load(addr, n)
            } else {
                plain_load(addr, n)
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    let st = srv.sigterm();
    let mut replies = Vec::new();
    for w in workers {
        replies.extend(w.join().expect("client thread"));
    }
    assert_eq!(st.code(), Some(0), "exit {st:?} (signal {:?})", st.signal());
    assert!(
        replies.len() > 100,
        "only {} replies under load",
        replies.len()
    );

    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.ends_with('\n'), "the last line is torn");
    let mut sent = BTreeSet::new();
    let mut last_kind = None;
    for (i, l) in text.lines().enumerate() {
        let e = eventlog::parse_line(l).unwrap_or_else(|e| panic!("line {}: {e}: {l:?}", i + 1));
        if e.kind() == EventKind::MessageSent
            && let Some(reply) = e.message.split_once(": ").map(|(_, r)| r)
        {
            sent.insert(reply.to_string());
        }
        last_kind = Some(e.kind());
    }
    assert_eq!(last_kind, Some(EventKind::ServerStop));
    let missing: Vec<_> = replies.iter().filter(|r| !sent.contains(*r)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} replies missing from the log, e.g. {:?}",
        missing.len(),
        replies.len(),
        missing.first()
    );
    eprintln!(
        "SIGTERM under load: {} replies received, all in the log",
        replies.len()
    );
}
