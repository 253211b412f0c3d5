//! Several writers appending to one log file at once: every line arrives
//! whole, none is lost, none interleaves with another.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatmon::eventlog::{self, EventKind, EventLog};
use common::{Plain, assert_log_parses};

#[test]
fn writers_in_one_process_never_tear_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shared.txt");
    const WRITERS: usize = 4;
    const LINES: usize = 2000;
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let path = path.clone();
            std::thread::spawn(move || {
                // A separate open (its own descriptor) per writer, as in
                // separate processes.
                let log = EventLog::open(&path).expect("open");
                for i in 0..LINES {
                    let pad = "x".repeat((i * 37) % 3000);
                    log.log(EventKind::MessageSent, &format!("w{w} n{i} {pad}"));
                }
                log.flush();
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer");
    }
    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), WRITERS * LINES);
    assert_log_parses(&lines);
    let mut next: HashMap<String, usize> = HashMap::new();
    for l in &lines {
        let e = eventlog::parse_line(l).expect("parses");
        let mut parts = e.message.splitn(3, ' ');
        let w = parts.next().expect("writer").to_string();
        let n: usize = parts
            .next()
            .expect("n")
            .trim_start_matches('n')
            .parse()
            .expect("n");
        let pad = parts.next().unwrap_or("");
        assert_eq!(pad.len(), (n * 37) % 3000, "line content damaged: {l}");
        let want = next.entry(w).or_insert(0);
        assert_eq!(n, *want, "lines of one writer out of order or lost");
        *want += 1;
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `chatmon serve` on an ephemeral port and returns it with its address.
fn serve(log: &std::path::Path) -> (Proc, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatmon"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--stats-interval",
            "0",
            "--log",
        ])
        .arg(log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn chatmon serve");
    let stderr = child.stderr.take().expect("stderr");
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(stderr)
        .read_line(&mut line)
        .expect("read banner");
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (proc, addr)
}

fn sigterm(p: &mut Proc) -> std::process::ExitStatus {
    // SAFETY: kill with a pid we own.
    unsafe {
        libc::kill(p.0.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = p.0.try_wait().expect("wait") {
            return st;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_server_processes_share_one_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.txt");
    let (mut s1, a1) = serve(&log);
    let (mut s2, a2) = serve(&log);
    const PER: usize = 300;
    let clients: Vec<_> = [a1, a2, a1, a2]
        .into_iter()
        .enumerate()
        .map(|(k, addr)| {
            std::thread::spawn(move || {
                let mut c = Plain::new(addr);
                for i in 0..PER {
                    let msg = format!("c{k}-{i}-{}", "z".repeat(i % 500));
                    c.send(format!("{msg}\n").as_bytes());
                    assert_eq!(c.line(), format!("Server received: {msg}"));
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    assert!(sigterm(&mut s1).success());
    assert!(sigterm(&mut s2).success());
    let text = std::fs::read_to_string(&log).expect("read log");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_log_parses(&lines);
    let count = |kind: &str| lines.iter().filter(|l| l.starts_with(kind)).count();
    assert_eq!(count("Message Received: "), 4 * PER);
    assert_eq!(count("Message Sent: "), 4 * PER);
    assert_eq!(count("Server Start: "), 2);
    assert_eq!(count("Server Stop: "), 2);
}
