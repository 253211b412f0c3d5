//! Several writers appending to one log file at once: every line arrives
//! whole, none is lost, none interleaves with another.

use std::collections::HashMap;

use chatmon::eventlog::{self, EventKind, EventLog};

use crate::util::process::ServeCmd;
use crate::util::{Plain, assert_log_parses};

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

#[test]
fn two_server_processes_share_one_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log.txt");
    let mut s1 = ServeCmd::new(&log).start();
    let mut s2 = ServeCmd::new(&log).start();
    let (a1, a2) = (s1.addr, s2.addr);
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
    assert!(s1.sigterm().success());
    assert!(s2.sigterm().success());
    let text = std::fs::read_to_string(&log).expect("read log");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    assert_log_parses(&lines);
    let count = |kind: &str| lines.iter().filter(|l| l.starts_with(kind)).count();
    assert_eq!(count("Message Received: "), 4 * PER);
    assert_eq!(count("Message Sent: "), 4 * PER);
    assert_eq!(count("Server Start: "), 2);
    assert_eq!(count("Server Stop: "), 2);
}
